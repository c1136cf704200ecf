// Package jobs owns runs: the run records and their store (gorm, MySQL and
// SQLite), the front door that starts them, the claim and completion path
// with leases fenced by a lease token, the [Executor] that runs one attempt
// and the [Pool] that runs many.
//
// # A tour
//
//   - Starting a run: [Starter] is the one front door (`run`, `trigger`,
//     the API and dashboard, hooks, the scheduler, the bench): it resolves
//     the job, checks that this binary can run it, types the parameters,
//     stores the run and wakes the local workers. [Starter.StartMany] does
//     it for many at once, [Starter.StartTx] inside the caller's own
//     transaction (River's InsertTx). Links (inside their parent's
//     completion), retries ([Store.Retry]) and bulk files
//     ([Store.EnqueueKeyed]) are the documented exceptions.
//   - The life cycle: lifecycle.go holds every status change and is the
//     only writer of status (a test reads the package's source to prove
//     it); the diagram is below.
//   - One attempt: [Executor] decodes the parameters, resolves the
//     processors and secrets, runs the steps under a timeout with panic
//     recovery and a heartbeat, and decides the outcome ([Finish]).
//     [Executor.Execute] runs an attempt of a claimed run and records its
//     outcome, [Executor.RunInline] starts and runs one in this process
//     (`jobrunner run`); in a pool the executor hands the outcome back and
//     the pool records it with others.
//   - Many attempts: [Pool] claims due runs in batches under one lease
//     token, executes them on its workers, commits their outcomes in
//     groups, and claims the next runs inside those same commits when
//     more are due (one transaction instead of two per batch). It keeps a
//     connection's bulkhead share, the claim limits (maxRunning,
//     maxConcurrency: lock rows in the database, so they hold across
//     instances), pauses and maintenance windows, and rescues runs whose
//     lease expired.
//   - Time: the database's clock decides whether a run is due and whether
//     a lease expired; [Executor.Clock] and [PoolConfig.Clock] (clockwork)
//     drive everything the process waits for, so tests advance a fake
//     clock instead of sleeping.
//   - Errors: [ErrLeaseLost] (the run was taken away), [ErrUnknownJob] and
//     [ErrNotRunnable] (the front door), [ErrIdempotencyMismatch].
//
// # Run life cycle
//
//	            enqueue (Starter, EnqueueKeyed, Retry, links)
//	               │
//	               ▼
//	┌─────────► queued ──────────── cancel ────────────────────┐
//	│              │                                           │
//	│            claim                                         │
//	│              ▼                                           ▼
//	│  ┌──────── running ───── finish: cancel ──────────► cancelled
//	│  │          │  │  └────── rescue: cancel requested ───────▲
//	│  │          │  └───────── finish: succeed ──► succeeded / succeeded_with_warnings
//	│  │          └──────────── finish: fail, rescue: no attempts left ──► failed
//	└──┴─ finish: retry, snooze, release; rescue: attempts left
//
// A claim moves a run to running and gives it a new lease token; every
// later write for that attempt (heartbeat, log lines, completion) names
// the token and fails with [ErrLeaseLost] when the run was taken away.
// Final statuses are never left. Each transition is one transaction that
// also writes the attempt row and the attempt's remaining log lines (a
// one-step run whose first attempt succeeds has no attempt row: its run
// row records that attempt, see attemptInRun).
package jobs
