#!/usr/bin/env python3
"""Greet, written as an exec-connection processor (see README.md).

jobrunner runs this script once per attempt. It reads the run as one JSON
object on stdin, writes its result as JSON on stdout, logs on stderr, and says
what happens next with its exit status: 0 success, 3 permanent failure (no
retry), 75 come back later, anything else: a failed attempt that is retried.
"""

import hashlib
import hmac
import json
import os
import sys


def log(msg):
    print(msg, file=sys.stderr, flush=True)  # each line is a run log line


run = json.load(sys.stdin)
name = run["parameters"]["Name"]
greeting = run["connection"]["settings"].get("greeting", "Hello")
key = os.environ["JOBRUNNER_SECRET_KEY"]  # secret "key" of the connection; never print it

log(f"DEBUG: attempt {run['attempt']} of {run['maxAttempts']}, run {run['runId']}")
if name == "nobody":
    # Retrying cannot fix this: exit 3 with a code and message.
    log("ERROR: there is nobody to greet")
    print(json.dumps({"code": "UNKNOWN_PERSON", "message": "there is nobody to greet"}))
    sys.exit(3)

text = f"{greeting}, {name}!"
signature = hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
log("jobrunner:progress 100")  # a directive: updates the run instead of being logged
log(f"greeted {name}")
print(json.dumps({"text": text, "signature": signature}))  # the run's result
