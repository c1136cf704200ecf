#!/bin/sh
# exit.sh CODE STDOUT [STDERR]: prints STDOUT and STDERR, exits with CODE.
cat > /dev/null
printf '%s' "$2"
if [ -n "$3" ]; then echo "$3" >&2; fi
exit "$1"
