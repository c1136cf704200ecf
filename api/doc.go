// Package api owns jobrunner's HTTP surface for operators: the JSON API
// under /api/v1, the server-rendered web dashboard at /, authentication
// with API tokens (roles viewer, operator, admin), dashboard sessions and
// CSRF protection, /healthz and /readyz, /metrics (the handler of package
// metrics behind authentication) and the OpenAPI document served at
// /openapi.yaml (checked in as api/openapi.yaml; a test fails when a route
// and the document disagree). Templates, CSS and the small script are
// embedded: nothing is built to run it.
//
// # Mounting
//
//	srv, err := api.New(api.Config{Store: store, Definitions: defs, Registry: reg, Tokens: tokens, ...})
//	if err := api.CheckListen(addr, tokens); err != nil { ... }  // before listening
//	http.Server{Addr: addr, Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
//
// Followed logs (server-sent events) clear the write deadline of their own
// connection, so a WriteTimeout on the http.Server does not cut them.
//
// # Authentication
//
// API requests carry "Authorization: Bearer <token>". Tokens come from
// JOBRUNNER_API_TOKENS ("name:role:token,…", ParseTokens); only their
// SHA-256 hashes are kept and a presented token is compared with every
// hash in constant time. Viewers read; operators also trigger, cancel and
// retry; admins also reload definitions. Runs record who acted as
// "api:<token name>" (triggered_by, cancelled_by). /healthz, /readyz and
// /openapi.yaml need no token; /metrics needs a viewer token (Prometheus:
// authorization.credentials).
//
// With no tokens configured the server serves loopback peers only, as the
// anonymous admin ("api:anonymous"), and the dashboard shows a "no
// authentication" warning; any other peer gets 401. CheckListen refuses a
// non-loopback listen address without tokens, so that mode is only ever
// reachable from the machine itself.
//
// The dashboard logs in with the same tokens: the login form (protected
// by a double-submit CSRF cookie) creates a server-side session whose
// random id is the only thing in the cookie (HttpOnly, SameSite=Strict,
// Secure over TLS, 12 h). Sessions live in this process's memory: a
// restart logs everyone out, and several instances behind one address
// need sticky sessions. Every dashboard form carries the session's CSRF
// token, and a POST whose Origin is another host is refused.
//
// # API behaviours
//
//   - Errors are {"error":{"code","message","fields"}}; statusByKind is the
//     one table from error kinds to statuses. Parameter errors are 400
//     with one entry per parameter in "fields".
//   - Bodies are at most MaxBodyBytes (64 KiB, else 413), JSON with unknown
//     fields rejected; query strings are validated too (unknown keys 400).
//   - POST /api/v1/jobs/{name}/runs answers 202 with the new run. Parameter
//     values may be JSON strings, numbers or booleans: numbers are passed
//     to the parameter's parser as written (1e309 or a 40-digit decimal
//     are never rounded through float64), null means "absent" (the
//     default applies), objects and arrays are 400. When an existing run
//     is returned instead of a new one, the answer is 200 with the same
//     run and "existing": true, "existingReason": "idempotencyKey" (same
//     key and same parameters; a key reused with other parameters is 422)
//     or "active" (the job's uniqueBy parameters, e.g. OrderCancel per
//     OrderNumber, match a queued or running run). Concurrent requests
//     with one key are serialised by the database (the key's row in
//     run_keys): they all get the same run, never a second one. Nothing is stored when the
//     parameters are invalid or the processor cannot run (409
//     job_not_runnable) or cannot preview (400 preview_unsupported).
//   - Any database failure is 503 with Retry-After: the store writes a
//     run in one transaction, so nothing was accepted.
//   - GET /api/v1/runs filters literally (job, status, trigger, since,
//     until, param.NAME=VALUE; "%" and "_" are not wildcards), newest
//     first; limit is clamped to 1..500 (default 50); "nextCursor" in the
//     answer is passed back as ?cursor= for the next (older) page.
//   - GET /api/v1/runs/{id}/logs pages lines by id (?after=, ?limit=
//     clamped to 1..5000); "complete" says the run is final and no line
//     will follow. ?follow=1 streams instead as server-sent events (see
//     followLogs) until the run is final, resumable with Last-Event-ID.
//   - POST /api/v1/runs/{id}/cancel: 200 with the run when it is now
//     cancelled (it was queued), 202 when it is running (cancellation was
//     requested; its worker stops it), 409 when it had already finished.
//   - POST /api/v1/runs/{id}/retry (body optional, {"parameters":{…}}
//     overriding some parameters, null resetting one to its default): 202
//     with the new run linked by retryOfRunId; 409 while the run is still
//     active.
//   - POST /api/v1/admin/reload calls Config.Reload (501 when nil).
//
// # Dashboard
//
// Jobs page (each definition, its schedule and next fire time, last run,
// and a "Run now" form generated from the typed parameters), runs page
// (filters, status colours), run page (parameters, trigger and who,
// attempts, ERP error, result, counts, progress, logs, Cancel and Retry)
// and logs page. Everything works without JavaScript; static/app.js only
// polls /runs/{id}/live to update an active run's status and logs in
// place, and refreshes the runs table while a listed run is active. A
// "Run now" form carries a random idempotency key, so submitting it twice
// (reload, double click) starts one run. datetime parameters are entered
// and shown in UTC.
package api
