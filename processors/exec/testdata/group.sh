#!/bin/sh
# group.sh PIDFILE [ignore-term]: starts a background sleep, writes
# "LEADER_PID CHILD_PID" to PIDFILE and waits. With ignore-term, SIGTERM is
# ignored (by the child too), so only SIGKILL ends them.
if [ "$2" = "ignore-term" ]; then trap '' TERM; fi
sleep 1000 &
echo "$$ $!" > "$1.tmp"
mv "$1.tmp" "$1"
wait
