#!/bin/sh
# success.sh STDIN_FILE ARG: saves stdin, logs at each level, prints a JSON
# result echoing its argument count and first argument.
cat > "$1"
echo "hello from stderr" >&2
echo "WARN: careful" >&2
echo "ERROR: bad record 7" >&2
echo "DEBUG: details" >&2
echo "jobrunner:progress 40" >&2
echo "jobrunner:read 5" >&2
echo "jobrunner:changed 2" >&2
printf '{"ok": true, "argc": %d, "arg": "%s"}\n' "$(($# - 1))" "$2"
