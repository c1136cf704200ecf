#!/bin/sh
# huge.sh BYTES: prints a JSON string of about BYTES bytes.
printf '"'
head -c "$1" /dev/zero | tr '\0' 'a'
printf '"'
