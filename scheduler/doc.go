// Package scheduler owns when scheduled jobs fire: it turns the schedules of
// job definitions into queued runs, applies the misfire and overlap
// policies, records what it did per job in the database, and measures this
// process's clock against the database's. It never runs a processor; the
// workers of package jobs do.
//
// # Tour
//
//   - [New] prepares a [Scheduler] from a [Config]: the run store, the
//     definitions, an injectable clock (clockwork; gocron uses it too),
//     the evaluation Resolution (default 1s), the MisfireGrace and an
//     optional OnFire hook for the "scheduler lag" metric (fired − scheduled)
//     and for waking local workers.
//   - [Scheduler.Start] evaluates once, then runs ONE gocron v2 job that
//     evaluates every scheduled job each Resolution, one evaluation at a
//     time (an evaluation due while the previous one still runs is skipped;
//     the next one finds its ticks still due); [Scheduler.Stop] shuts gocron
//     down and waits for every goroutine.
//     [Scheduler.Tick] is one evaluation at a given time (tests, one-shot).
//   - [Scheduler.Reload] swaps the definitions atomically (SIGHUP, API).
//   - [NextTimes] lists a job's next fire times (package cronspec computes
//     them, with the DST rules below).
//   - [Status] reads a job's last tick, latest gap of missed ticks ([Gap])
//     and latest skipped tick ([Skip]) for the API and dashboard.
//   - [ClockSkew] reports this process's clock minus the database's.
//
// # Ticks: one run per scheduled instant, on any number of instances
//
// A tick is identified by (job, nominal time): the instant the cron spec
// names, never the time an instance happened to notice it. Each tick is
// enqueued as a run with Trigger "schedule", TriggeredBy "scheduler" and
// ScheduledFor = the nominal time, which the database keeps unique (the key
// of table run_ticks). Every
// instance evaluates every schedule; when several fire the same tick, the
// first insert wins and the others get the existing run back (a normal
// outcome, logged at debug level). Instances whose clocks differ by up to
// a second therefore still produce exactly one run per tick.
//
// Nothing about the next tick lives only in memory. The last handled tick
// of a job is derived from the database each time a tick is due: the later
// of the greatest tick of the job's runs (run_ticks) and the job_state value
// "scheduler.lastTick" (jobs.StateLastTick), which every evaluation moves
// forward (never back) past the ticks it enqueued, skipped or recorded as
// missed. A restarted instance, or a new one, continues exactly where the
// cluster left off. The first evaluation ever of a job (no runs, no state)
// records the current time and fires from then on: nothing is caught up.
// A job added by Reload behaves the same; a job removed and re-added later
// resumes from its stored last tick, so the time in between is a gap.
//
// Each scheduled job's parameters are its defaults: a scheduled job with a
// required parameter that has no default is refused by New and Reload.
//
// # Misfires (schedule.misfire)
//
// A tick is on time while it is at most MisfireGrace old when evaluated
// (default 5s, at least 2×Resolution+1s); on-time ticks are all enqueued.
// Older, never-handled ticks are misfires: the scheduler was down, stalled,
// or could not reach the database. Then, per definition:
//
//   - skip (the default): no catch-up. The gap is logged at warning level
//     with the number of missed ticks and stored as the job_state value
//     "scheduler.missedTicks" (a [Gap]: count, first and last missed tick,
//     when it was found).
//   - runOnce: exactly one catch-up run, for the latest missed tick, never
//     one per missed tick. Its TriggeredBy reads
//     "scheduler (catch-up, N missed)", where N counts every missed tick
//     including the one it stands for, and the gap is stored as for skip
//     with CatchUp set. Instances that find the same gap share an
//     idempotency key derived from the last tick before it, so the cluster
//     enqueues one catch-up run. With clocks that differ, a tick that an
//     instance behind still counts as on time is enqueued as an ordinary
//     tick: after a gap the cluster enqueues at most one catch-up run plus
//     the ticks in (earliest clock − MisfireGrace, latest clock], each once.
//     The stored Gap is the one the last writer saw; under skew it may
//     count a tick or two differently from another instance's log line.
//
// Ticks newer than MisfireGrace are enqueued as usual in both cases. So
// after one hour of downtime an hourly job under runOnce gets one catch-up
// run, and a job due again within the grace also gets that on-time run.
// MisfireGrace must exceed the largest clock skew between instances plus
// Resolution; the default covers a skew of a second.
//
// # Overlap (concurrency.overlap)
//
// Before enqueueing a tick the scheduler counts the job's other runs that
// are queued or running (the tick's own run, if another instance created
// it, does not count):
//
//   - forbid (the default for scheduled jobs): the tick is skipped while
//     any run of the job is queued or running;
//   - queue: the tick is skipped only while a run is already waiting
//     (queued), so at most one run waits behind a running one;
//   - allow: the tick is always enqueued.
//
// A skipped tick is logged with its reason and stored as the job_state
// value "scheduler.lastSkip" (a [Skip]). A skipped tick is not retried
// later: it counts as handled. A job's uniqueBy parameters, when the
// defaults match an active run, skip the tick the same way. The check and
// the insert are not one transaction: when a run ends at the moment two
// instances evaluate the same tick, one may record a skip while the other
// enqueues the tick; the tick still gets at most one run, and forbid still
// never enqueues next to an active run seen by the enqueuing instance.
//
// # Daylight saving time (schedule.timezone)
//
// A schedule without a time zone runs in UTC, never in the server's zone.
// In a zone with DST, cronspec's rules apply (see its package
// documentation):
//
//   - a fixed time inside the spring-forward gap fires once, at the end of
//     the gap: "30 2 * * *" in Europe/Amsterdam fires at 03:00 CEST on
//     2026-03-29;
//   - a fixed time inside the repeated fall-back hour fires once, at its
//     first occurrence;
//   - interval specs ("0 * * * *", "*/15 * * * *", @hourly, @every) follow
//     real elapsed time: 23 hourly runs on the short day, 25 on the long
//     one.
//
// Ticks are stored in UTC, so the repeated fall-back hour's two 02:00 ticks
// of an hourly job are two distinct instants and two runs.
//
// # Lag and skew
//
// OnFire receives each enqueued tick's nominal and actual fire time; with
// the default Resolution, an on-time tick is enqueued within about a second
// of its nominal time (evaluations are aligned to whole multiples of
// Resolution). [ClockSkew] compares this process's clock with the
// database's; it is only reported (on /readyz), since skew does not double
// runs.
package scheduler
