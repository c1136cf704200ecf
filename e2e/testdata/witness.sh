#!/bin/sh
# witness.sh: an exec-protocol command (processors/exec) that records each
# execution in the file named by $OUT, one line per event, so a test can
# count executions independently of the database:
#
#   start RUNID ATTEMPT PID
#   done RUNID ATTEMPT PID      (after sleeping $SLEEP seconds, if set)
#
# Each line is written by one echo (one write(2) with O_APPEND), so lines of
# concurrent executions never interleave. The result is {}.
req=$(cat)
id=$(printf '%s\n' "$req" | sed -n 's/.*"runId":\([0-9][0-9]*\).*/\1/p')
attempt=$(printf '%s\n' "$req" | sed -n 's/.*"attempt":\([0-9][0-9]*\).*/\1/p')
echo "start $id $attempt $$" >> "$OUT"
if [ -n "$SLEEP" ]; then
	sleep "$SLEEP"
fi
echo "done $id $attempt $$" >> "$OUT"
echo '{}'
