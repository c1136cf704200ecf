#!/usr/bin/env python3
"""OrderCancel as an exec-connection processor (jobrunner's exec protocol).

The same job as the built-in http OrderCancel processor, against the same
"Reference ERP REST contract" (DESIGN.md), written as a script: a job
definition switches between the two by changing only its connection (see
http/erp.yaml and exec/erp.yaml next to this file). Standard library only.

Input (stdin, one JSON object): parameters.OrderNumber, parameters.Reason,
preview, idempotencyKey, connection.settings:
    baseURL              the ERP's base URL (required)
    timeout              seconds per ERP call (default 10)
    cancellableStatuses  ERP statuses that allow cancellation (required)
Secret: the bearer token in JOBRUNNER_SECRET_TOKEN (connection secret "token").

Output, as the exec protocol wants it:
    exit 0   success; stdout the result {"orderNumber","previousErpStatus",
             "erpStatus","alreadyCancelled"[,"preview","wouldSend"]}
    exit 3   permanent failure; stdout {"code","message"} with the same codes
             as the http processor: ORDER_NOT_FOUND, ORDER_NOT_CANCELLABLE,
             STATUS_LOCKED, ERP_UNAUTHORIZED, ERP_REJECTED, ERP_CONFIG, or the
             ERP's own 409 code (e.g. ORDER_STATE) with its message verbatim
    exit 75  come back later (425/429/503); stdout {"retryAfter","message"}
    exit 1   failed attempt, retried with the job's backoff (other 5xx,
             network errors, timeouts, answers that are not JSON)
stderr lines are the run's log ("ERROR:"/"WARN:" prefixes set the level);
"jobrunner:read N" / "jobrunner:changed N" update the run's counters.
The token is only ever put in the Authorization header: never printed.
"""

import email.utils
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

EXIT_PERMANENT = 3
EXIT_TEMPFAIL = 75
MAX_RETRY_AFTER = 600  # seconds, as the http processor caps it
MAX_BODY = 1 << 20


def log(msg, level=""):
    print(f"{level}: {msg}" if level else msg, file=sys.stderr, flush=True)


def permanent(code, message):
    log(f"{code}: {message}", "ERROR")
    sys.stdout.write(json.dumps({"code": code, "message": message}))
    sys.exit(EXIT_PERMANENT)


def come_back_later(retry_after, message):
    log(message, "WARN")
    out = {"message": message}
    if retry_after is not None:
        out["retryAfter"] = f"{retry_after}s"
    sys.stdout.write(json.dumps(out))
    sys.exit(EXIT_TEMPFAIL)


def failed(message):
    log(message, "ERROR")
    sys.exit(1)


def retry_after_seconds(value):
    """Retry-After in seconds or as an HTTP date, capped; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0, min(int(when - time.time() + 0.999), MAX_RETRY_AFTER))


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are answers, not followed (as the http connection does)."""

    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(method, url, path, token, timeout, body=None, idempotency_key=None):
    """One ERP call: returns (status, headers, JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Accept", "application/json")
    req.add_header("User-Agent", "jobrunner-exec-ordercancel")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if idempotency_key:
        req.add_header("Idempotency-Key", idempotency_key)
    started = time.monotonic()
    try:
        resp = OPENER.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        resp = e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        failed(f"ERP_UNAVAILABLE: {method} {path}: {reason}")
    with resp:
        status, headers = resp.status, resp.headers
        try:
            raw = resp.read(MAX_BODY + 1)
        except (OSError, ValueError) as e:
            failed(f"ERP_UNAVAILABLE: {method} {path}: reading the answer: {e}")
    log(f"{method} {path} → {status} ({(time.monotonic() - started) * 1000:.0f} ms)")
    if len(raw) > MAX_BODY:
        failed(f"ERP_BAD_RESPONSE: {method} {path}: answer over {MAX_BODY} bytes")
    parsed = None
    if raw.strip():
        try:
            parsed = json.loads(raw)
        except ValueError:
            if 200 <= status < 300:
                failed(f"ERP_BAD_RESPONSE: {method} {path}: {status} answer is not JSON: {raw[:200]!r}")
    return status, headers, parsed if isinstance(parsed, dict) else {}


def check(order_number, status, headers, body, what):
    """Classify a non-2xx answer like the http processor; returns only on 2xx."""
    if 200 <= status < 300:
        return
    code, message = body.get("code"), body.get("message")
    if status == 404:
        permanent("ORDER_NOT_FOUND", message or f"order {order_number} not found in the ERP")
    if status == 409:
        permanent(code or "ERP_CONFLICT", message or f"the ERP refused to {what} order {order_number}")
    if status == 423:
        permanent("STATUS_LOCKED", message or f"the status of order {order_number} is locked")
    if status in (401, 403):
        permanent("ERP_UNAUTHORIZED", f"the ERP answered {status}: check the connection's token")
    if status in (425, 429, 503):
        come_back_later(retry_after_seconds(headers.get("Retry-After")),
                        f"the ERP answered {status} to {what} {order_number}: come back later")
    if 400 <= status < 500:
        permanent(code or "ERP_REJECTED", message or f"the ERP answered {status}")
    failed(f"ERP_UNAVAILABLE: the ERP answered {status} to {what} {order_number}")


def main():
    req = json.load(sys.stdin)
    params = req.get("parameters") or {}
    settings = (req.get("connection") or {}).get("settings") or {}
    order_number = params.get("OrderNumber") or ""
    reason = params.get("Reason") or "customerRequest"
    base_url = (settings.get("baseURL") or "").rstrip("/")
    token = os.environ.get("JOBRUNNER_SECRET_TOKEN", "")
    cancellable = settings.get("cancellableStatuses")
    try:
        timeout = float(settings.get("timeout", 10))
    except (TypeError, ValueError):
        permanent("ERP_CONFIG", "setting timeout: want a number of seconds")
    if not base_url.startswith(("http://", "https://")):
        permanent("ERP_CONFIG", "setting baseURL: want an http(s) URL (is JOBRUNNER_ERP_URL set?)")
    if not token:
        permanent("ERP_CONFIG", "secret token is empty")
    if not isinstance(cancellable, list):
        permanent("ERP_CONFIG", "setting cancellableStatuses: want a list of ERP statuses")
    if not order_number:
        permanent("INVALID_PARAMETER", "parameter OrderNumber is empty")
    path = "/orders/" + urllib.parse.quote(order_number, safe="")

    status, headers, order = call("GET", base_url, path, token, timeout)
    check(order_number, status, headers, order, "read")
    print("jobrunner:read 1", file=sys.stderr, flush=True)
    erp_status = order.get("status") or ""
    result = {"orderNumber": order_number, "previousErpStatus": erp_status,
              "erpStatus": erp_status, "alreadyCancelled": False}
    if erp_status == "Cancelled":
        log(f"order {order_number} is already cancelled in the ERP (ERP status {erp_status}): nothing to do")
        result["alreadyCancelled"] = True
        print(json.dumps(result))
        return
    if erp_status not in cancellable:
        permanent("ORDER_NOT_CANCELLABLE",
                  f"order {order_number} has ERP status {erp_status}, which does not allow cancellation")
    if req.get("preview"):
        log(f"would cancel {order_number}: ERP status {erp_status}, cancellable")
        result.update(preview=True, wouldSend=True)
        print(json.dumps(result))
        return

    key = (req.get("idempotencyKey") or "") + ":cancel"
    status, headers, answer = call("POST", base_url, path + "/cancel", token, timeout,
                                   body={"reason": reason}, idempotency_key=key)
    check(order_number, status, headers, answer, "cancel")
    print("jobrunner:changed 1", file=sys.stderr, flush=True)
    result["erpStatus"] = answer.get("status") or "Cancelled"
    log(f"cancelled {order_number}: ERP status {erp_status} → {result['erpStatus']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
