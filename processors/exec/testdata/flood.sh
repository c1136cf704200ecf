#!/bin/sh
# flood.sh N: N short stderr lines after one 20000-byte line.
cat > /dev/null
head -c 20000 /dev/zero | tr '\0' 'x' >&2
echo >&2
i=0
while [ "$i" -lt "$1" ]; do echo "line $i" >&2; i=$((i + 1)); done
echo null
