// Package recordsync owns record-by-record syncs: reading the changes of a
// source page by page (oldest first), pushing each to a target with
// bounded concurrency, judging each record on its own, and keeping what a
// resumed or later run needs so that no change is lost and none is pushed
// twice.
//
// A sync keeps, per job, in a [Store]:
//
//   - the mark: the source change time up to which every change is
//     resolved; the next run reads the source from it (inclusive);
//   - the done set: the keys of the changes at or after the mark that are
//     already resolved (pushed and accepted, refused, skipped), so that a
//     run resumed after a crash, kill -9, timeout or retry skips them;
//   - the pending set: the changes the target asked to send later (a 429,
//     VTEX EOI011) that were still not accepted when their in-run tries ran
//     out, carried to the next run until delivered or superseded by a newer
//     change of the same subject.
//
// The mark only moves over a contiguous prefix of resolved (or carried)
// changes: a failed or interrupted run never moves it past a change it did
// not deliver. That needs a source that lists oldest first. A source that
// does not is detected when it lists a change older than one before it,
// and from then on the mark moves only once the whole listing is
// resolved; the mark follows a record only once a later one was read, so
// an inversion between neighbours is caught before the mark passes it,
// but one further apart may already have been passed (a crash then could
// miss that older change): list oldest first. Everything is written in group commits as the run advances
// (one transaction per batch of resolved records), so a crash re-pushes at
// most the changes in flight and the last unwritten batch; each push
// carries the same idempotency key every time ([ChangeKey]), so a target
// that honours it applies each change once.
//
// [Run] is the engine; OrderStatusSync (processors/httperp) is its user.
// *jobs.Store implements [Store]; [MemStore] keeps it in memory for tests.
package recordsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Change is one record of a sync: one change of one subject at the source.
type Change struct {
	// Key identifies the change, stable across runs ([ChangeKey]).
	Key string `json:"key"`
	// Subject is what the change changes at the target (an order number);
	// at most one change per subject is pending.
	Subject string `json:"subject"`
	// Time is the source's change time; the mark follows it. Zero when
	// the source did not say.
	Time time.Time `json:"time"`
	// Data is the record as the pusher needs it (JSON).
	Data json.RawMessage `json:"data,omitempty"`
}

// ChangeKey returns the key of a change: 32 hex digits of the SHA-256 of
// its parts (e.g. order number, status, change time), joined unambiguously.
func ChangeKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Pending is a change carried to a later run.
type Pending struct {
	Change
	// Attempts counts the pushes tried so far (all runs).
	Attempts int
	// Code and Message are the target's last answer.
	Code, Message string
	// First is when it was first carried.
	First time.Time
}

// Commit is what one group commit writes, in one transaction.
type Commit struct {
	// Mark, when not zero, is the new mark; done keys with an earlier
	// change time are forgotten.
	Mark time.Time
	// Done are changes resolved for good; any pending change of the same
	// key is removed.
	Done []Change
	// Park are changes to carry (inserted or updated by key).
	Park []Pending
	// Drop are keys of pending changes to remove (superseded).
	Drop []string
}

// Empty reports whether c writes nothing.
func (c *Commit) Empty() bool {
	return c.Mark.IsZero() && len(c.Done) == 0 && len(c.Park) == 0 && len(c.Drop) == 0
}

// Store keeps the state of syncs by job name. Every method takes the
// caller's context; errors are the store's, wrapped.
type Store interface {
	// SyncMark returns the job's mark, false when none is stored.
	SyncMark(ctx context.Context, job string) (time.Time, bool, error)
	// SyncDone returns which of keys are resolved for the job: in its done
	// set or pending.
	SyncDone(ctx context.Context, job string, keys []string) (map[string]bool, error)
	// SyncPending returns up to limit pending changes of the job whose key
	// is greater than after, in key order.
	SyncPending(ctx context.Context, job, after string, limit int) ([]Pending, error)
	// SyncCommit writes c for the job in one transaction.
	SyncCommit(ctx context.Context, job string, c Commit) error
}

// Source lists the changes to sync, oldest first.
type Source interface {
	// NextPage returns the next page of changes; an empty page ends the
	// listing. total is the number of changes the source announced for
	// the whole listing, -1 when it does not say.
	NextPage(ctx context.Context) (page []Change, total int, err error)
}

// Verdict is what became of one record.
type Verdict int

// Verdicts.
const (
	Pushed  Verdict = iota + 1 // the target accepted it
	Refused                    // the target (or the mapping) refused it for good: a record error
	Carried                    // still pending: carried to the next run
	Skipped                    // already resolved, or superseded by a newer change
	Aborted                    // not resolved (the run stopped): read again next time
)

// String returns the verdict's lower-case name.
func (v Verdict) String() string {
	switch v {
	case Pushed:
		return "pushed"
	case Refused:
		return "refused"
	case Carried:
		return "carried"
	case Skipped:
		return "skipped"
	case Aborted:
		return "aborted"
	}
	return "unknown"
}

// Outcome is what a [Pusher] says of one push.
type Outcome struct {
	// Verdict is Pushed, Refused, or Carried for "send it again later"
	// (the engine retries within the run first, then carries it).
	Verdict Verdict
	// Code and Message are the target's (or the mapping's) for a refused
	// or later record.
	Code, Message string
	// After is the delay the target asked for before the next try (0: the
	// engine's backoff).
	After time.Duration
}

// Pusher pushes one change to the target. It must stop promptly when ctx
// is done; an outcome returned after ctx is done is taken as Aborted.
type Pusher func(ctx context.Context, c Change, attempt int) Outcome

// Result is one record's final verdict, as reported to Config.OnRecord.
type Result struct {
	Change   Change
	Verdict  Verdict
	Code     string
	Message  string
	Attempts int
	// Carried is true for a change that came from the pending set.
	Carried bool
}

// Counts are a sync's record counts.
type Counts struct {
	// Read counts changes read from the source; Retried the pending
	// changes from earlier runs tried again.
	Read, Retried int
	// Pushed, Refused, Carried, Skipped count final verdicts (pending
	// retries included).
	Pushed, Refused, Carried, Skipped int
	// Total is what the source announced (-1: unknown).
	Total int
}

// Defaults of [Config].
const (
	DefaultConcurrency   = 4
	DefaultLaterAttempts = 3
	DefaultLaterBackoff  = time.Second
	DefaultWindow        = 1024
	// MaxInRunDelay caps one in-run wait for a record the target asked
	// to send later; a longer Retry-After carries the record at once.
	MaxInRunDelay = 30 * time.Second
)

// Config configures one [Run].
type Config struct {
	// Job names the sync's state in the Store (required).
	Job string
	// Store keeps the state (required).
	Store Store
	// Start is the mark to use when the Store has none (e.g. a lookback).
	Start time.Time
	// From, when not zero, overrides the stored mark for this run (a
	// backfill from a given time).
	From time.Time
	// Concurrency bounds the pushes in flight (default DefaultConcurrency).
	Concurrency int
	// LaterAttempts is how many times, in all, a record the target asks
	// to send later is tried within the run before it is carried
	// (default DefaultLaterAttempts); LaterBackoff the first wait between
	// them, doubled each time (default DefaultLaterBackoff).
	LaterAttempts int
	LaterBackoff  time.Duration
	// MaxErrors stops the sync once more records than this are refused
	// (negative: no limit); Run then returns an error wrapping
	// ErrTooManyErrors.
	MaxErrors int
	// Window bounds the records read but not yet resolved (default
	// DefaultWindow): memory stays flat however long the listing.
	Window int
	// Guard is called before every push and every commit; an error stops
	// the run (e.g. the run's lease is no longer certain).
	Guard func(ctx context.Context) error
	// OnRecord is told every record's final verdict, from one goroutine
	// at a time. Optional.
	OnRecord func(Result)
	// OnUnsorted is told the first change the source listed out of order
	// (older than one before it): the mark then moves only when the whole
	// listing is resolved. Optional.
	OnUnsorted func(Change)
	// OnProgress is told the records resolved so far and the announced
	// total (-1 unknown) after each commit. Optional.
	OnProgress func(done, total int)
	// Sleep waits d or until ctx is done (default: a timer); tests inject
	// it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Errors of [Run].
var (
	ErrTooManyErrors = errors.New("recordsync: more refused records than allowed")
	ErrBadConfig     = errors.New("recordsync: bad config")
)

// Summary is what [Run] returns.
type Summary struct {
	Counts
	// From is where reading started; Mark the mark stored at the end.
	From, Mark time.Time
}

func (c *Config) defaults() error {
	if c.Job == "" || c.Store == nil {
		return fmt.Errorf("%w: Job and Store are required", ErrBadConfig)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LaterAttempts <= 0 {
		c.LaterAttempts = DefaultLaterAttempts
	}
	if c.LaterBackoff <= 0 {
		c.LaterBackoff = DefaultLaterBackoff
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Window < c.Concurrency {
		c.Window = c.Concurrency
	}
	if c.Sleep == nil {
		c.Sleep = sleep
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Mark returns where a sync of cfg would start reading: cfg.From, else
// the stored mark, else cfg.Start.
func Mark(ctx context.Context, cfg Config) (time.Time, error) {
	if !cfg.From.IsZero() {
		return cfg.From.UTC(), nil
	}
	m, ok, err := cfg.Store.SyncMark(ctx, cfg.Job)
	if err != nil {
		return time.Time{}, fmt.Errorf("recordsync: reading the mark of %s: %w", cfg.Job, err)
	}
	if ok {
		return m.UTC(), nil
	}
	return cfg.Start.UTC(), nil
}

// Run syncs: first it tries again the job's pending changes (each once),
// then it reads src from the mark (src must have been opened at the time
// [Mark] returns), pushing each change not yet done. It commits as it
// goes and returns the counts. It returns early with an error — after
// committing what was resolved — when the source fails, the guard
// refuses, ctx is done, the store fails, or (ErrTooManyErrors) more than
// MaxErrors records were refused.
func Run(ctx context.Context, cfg Config, src Source, push Pusher) (Summary, error) {
	if err := cfg.defaults(); err != nil {
		return Summary{}, err
	}
	from, err := Mark(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	e := &engine{cfg: cfg, push: push, sum: Summary{From: from, Mark: from, Counts: Counts{Total: -1}}, mark: from, pctx: ctx}
	e.ctx, e.stop = context.WithCancelCause(ctx)
	defer e.stop(nil)
	e.pendingSubjects = map[string][]Pending{}
	if err := e.retryPending(); err != nil {
		if ferr := e.flushWith(context.WithoutCancel(ctx)); ferr != nil {
			err = errors.Join(err, ferr)
		}
		return e.summary(), err
	}
	err = e.stream(src)
	return e.summary(), err
}

func (e *engine) summary() Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sum
}

// engine is one Run.
type engine struct {
	cfg  Config
	push Pusher
	// pctx is the caller's context, which pushes use: a push in flight
	// when the engine stops (too many errors, a source error) is let
	// finish. ctx is cancelled when the engine stops: no new push starts.
	pctx context.Context
	ctx  context.Context
	stop context.CancelCauseFunc

	mu     sync.Mutex // guards below (results come from the workers)
	sum    Summary
	mark   time.Time
	batch  Commit
	errs   int
	failed error // first reason to stop

	// maxSeen is the latest change time read; unsorted is set once the
	// source listed a change older than one before it: the mark then
	// moves only when the whole listing was resolved.
	maxSeen  time.Time
	unsorted bool
	complete bool // the listing was read to its end and every record resolved
	// candidate is the latest change time of the resolved prefix, not yet
	// confirmed as the mark by a later record read.
	candidate time.Time

	// pendingSubjects are the pending changes of earlier runs still
	// pending after the retry phase, by subject: a newer change of the
	// subject supersedes them.
	pendingSubjects map[string][]Pending
}

// fail records the first reason to stop and stops dispatching.
func (e *engine) fail(err error) {
	e.mu.Lock()
	if e.failed == nil {
		e.failed = err
	}
	e.mu.Unlock()
	e.stop(err)
}

func (e *engine) err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failed
}

// attempt pushes c once (its attempt number is prior+1). It reports
// Aborted, pushing nothing, when the run stopped or the guard refuses;
// an outcome without a usable verdict counts as Carried. The caller
// retries a Carried record (runTask) or carries it (retryPending).
func (e *engine) attempt(c Change, prior int) Outcome {
	if e.ctx.Err() != nil {
		return Outcome{Verdict: Aborted}
	}
	if e.cfg.Guard != nil {
		if err := e.cfg.Guard(e.ctx); err != nil {
			e.fail(fmt.Errorf("recordsync: before pushing %s: %w", c.Subject, err))
			return Outcome{Verdict: Aborted}
		}
	}
	out := e.push(e.pctx, c, prior+1)
	if e.pctx.Err() != nil {
		return Outcome{Verdict: Aborted}
	}
	switch out.Verdict {
	case Pushed, Refused, Carried, Skipped:
	default: // a pusher that says nothing usable: keep the record, try it again later
		out = Outcome{Verdict: Carried, Code: out.Code, Message: strings.TrimSpace("the pusher gave no verdict (" + out.Verdict.String() + ") " + out.Message)}
	}
	return out
}

// retryPending tries each pending change of earlier runs once, with the
// run's concurrency, and commits. Only the newest pending change of a
// subject is pushed; older ones are dropped as superseded.
func (e *engine) retryPending() error {
	var all []Pending
	after := ""
	for {
		page, err := e.cfg.Store.SyncPending(e.ctx, e.cfg.Job, after, 500)
		if err != nil {
			return fmt.Errorf("recordsync: reading the pending changes of %s: %w", e.cfg.Job, err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Key
		all = append(all, page...)
	}
	if len(all) == 0 {
		return nil
	}
	newest := map[string]Pending{}
	for _, p := range all {
		if q, ok := newest[p.Subject]; !ok || p.Time.After(q.Time) || (p.Time.Equal(q.Time) && p.Key > q.Key) {
			newest[p.Subject] = p
		}
	}
	e.mu.Lock()
	for _, p := range all {
		if newest[p.Subject].Key != p.Key {
			e.batch.Drop = append(e.batch.Drop, p.Key)
			e.sum.Skipped++
			e.report(Result{Change: p.Change, Verdict: Skipped, Message: "superseded by a newer pending change", Carried: true})
		}
	}
	e.mu.Unlock()
	sem := make(chan struct{}, e.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, p := range all {
		if newest[p.Subject].Key != p.Key {
			continue
		}
		if e.ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(p Pending) {
			defer func() { <-sem; wg.Done() }()
			out := e.attempt(p.Change, p.Attempts)
			e.resolvePending(p, out, 1)
		}(p)
	}
	wg.Wait()
	if err := e.flush(); err != nil {
		return err
	}
	if err := e.err(); err != nil {
		return err
	}
	return e.ctx.Err()
}

func (e *engine) resolvePending(p Pending, out Outcome, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if out.Verdict == Aborted {
		return // still pending as stored
	}
	e.sum.Retried++
	r := Result{Change: p.Change, Verdict: out.Verdict, Code: out.Code, Message: out.Message, Attempts: p.Attempts + n, Carried: true}
	switch out.Verdict {
	case Pushed:
		e.sum.Pushed++
		e.batch.Done = append(e.batch.Done, p.Change)
	case Refused:
		e.sum.Refused++
		e.errs++
		e.batch.Done = append(e.batch.Done, p.Change)
	case Skipped:
		e.sum.Skipped++
		e.batch.Done = append(e.batch.Done, p.Change)
	case Carried:
		e.sum.Carried++
		p.Attempts += n
		p.Code, p.Message = out.Code, out.Message
		e.batch.Park = append(e.batch.Park, p)
		e.pendingSubjects[p.Subject] = append(e.pendingSubjects[p.Subject], p)
	}
	e.report(r)
	e.checkErrors()
}

// report passes r to OnRecord (under e.mu: one at a time).
func (e *engine) report(r Result) {
	if e.cfg.OnRecord != nil {
		e.cfg.OnRecord(r)
	}
}

func (e *engine) checkErrors() {
	if e.cfg.MaxErrors >= 0 && e.errs > e.cfg.MaxErrors && e.failed == nil {
		e.failed = fmt.Errorf("%w: %d refused, more than maxErrors %d", ErrTooManyErrors, e.errs, e.cfg.MaxErrors)
		e.stop(e.failed)
	}
}

// slot is one record of the stream between its read and its commit.
type slot struct {
	c        Change
	resolved bool
}

// task is one streamed record on its way through the workers.
type task struct {
	s     *slot
	tries int           // attempts made
	wait  chan struct{} // closed when the subject's previous change is resolved
	mine  chan struct{} // closed when this one is
}

// stream reads src and pushes its changes: the reader hands records, in
// order, to Concurrency workers; a record the target asks to send later
// waits off the workers and comes back ahead of new ones. The mark
// advances over the contiguous prefix of resolved records.
func (e *engine) stream(src Source) error {
	window := make(chan struct{}, e.cfg.Window)
	work := make(chan *task)
	retry := make(chan *task, e.cfg.Window)
	quit := make(chan struct{})
	var (
		tasks   sync.WaitGroup // records read and not yet final
		workers sync.WaitGroup
		order   []*slot // read, in stream order, not yet below the mark
		last    = map[string]chan struct{}{}
	)
	committerDone := make(chan struct{})
	kick := make(chan struct{}, 1)
	// The committer writes batches as results arrive (group commit).
	var commitErr error
	go func() {
		defer close(committerDone)
		for range kick {
			if err := e.advanceAndFlush(&order, window); err != nil && commitErr == nil {
				commitErr = err
				e.fail(err)
			}
		}
	}()
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	finish := func(t *task, out Outcome) {
		e.resolve(t.s, out, t.tries)
		e.mu.Lock()
		if last[t.s.c.Subject] == t.mine {
			delete(last, t.s.c.Subject)
		}
		e.mu.Unlock()
		close(t.mine)
		signal()
		tasks.Done()
	}
	runTask := func(t *task) {
		if w := t.wait; w != nil {
			t.wait = nil
			select {
			case <-w:
			default: // wait off the workers: the earlier change may need one
				go func() {
					select {
					case <-w:
						retry <- t
					case <-e.ctx.Done():
						finish(t, Outcome{Verdict: Aborted})
					}
				}()
				return
			}
		}
		out := e.attempt(t.s.c, t.tries)
		if out.Verdict != Aborted {
			t.tries++
		}
		if out.Verdict != Carried || t.tries >= e.cfg.LaterAttempts {
			finish(t, out)
			return
		}
		d := e.cfg.LaterBackoff << (t.tries - 1)
		if out.After > 0 {
			d = out.After
		}
		if d > MaxInRunDelay {
			finish(t, out) // carried now: the target wants more time than a run waits
			return
		}
		go func() {
			if e.cfg.Sleep(e.ctx, d) != nil {
				finish(t, Outcome{Verdict: Aborted})
				return
			}
			retry <- t // never blocks: at most Window tasks exist
		}()
	}
	for range e.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select { // a retry comes before new records
				case t := <-retry:
					runTask(t)
					continue
				default:
				}
				select {
				case t := <-retry:
					runTask(t)
				case t := <-work:
					runTask(t)
				case <-quit:
					return
				}
			}
		}()
	}

	var readErr error
read:
	for {
		if e.ctx.Err() != nil {
			break
		}
		page, total, err := src.NextPage(e.ctx)
		if err != nil {
			if e.ctx.Err() == nil {
				readErr = err
			}
			break
		}
		if len(page) == 0 {
			break
		}
		e.mu.Lock()
		if total >= 0 {
			e.sum.Total = total
		}
		e.mu.Unlock()
		keys := make([]string, len(page))
		for i, c := range page {
			keys[i] = c.Key
		}
		done, err := e.cfg.Store.SyncDone(e.ctx, e.cfg.Job, keys)
		if err != nil {
			if e.ctx.Err() == nil {
				readErr = fmt.Errorf("recordsync: reading the done set of %s: %w", e.cfg.Job, err)
			}
			break
		}
		for _, c := range page {
			select {
			case window <- struct{}{}:
			case <-e.ctx.Done():
				break read
			}
			s := &slot{c: c}
			e.mu.Lock()
			e.sum.Read++
			order = append(order, s)
			if !c.Time.IsZero() {
				if c.Time.Before(e.maxSeen) && !e.unsorted {
					e.unsorted = true // from now on the mark waits for the end of the listing
					if e.cfg.OnUnsorted != nil {
						e.cfg.OnUnsorted(c)
					}
				}
				if c.Time.After(e.maxSeen) {
					e.maxSeen = c.Time
				}
			}
			if done[c.Key] || (!c.Time.IsZero() && c.Time.Before(e.sum.From)) {
				e.sum.Skipped++
				s.resolved = true
				e.report(Result{Change: c, Verdict: Skipped, Message: "already resolved"})
				e.mu.Unlock()
				signal()
				continue
			}
			if newer := e.newerPending(c); newer != "" {
				e.sum.Skipped++
				s.resolved = true
				e.batch.Done = append(e.batch.Done, doneOf(c))
				e.report(Result{Change: c, Verdict: Skipped, Message: "superseded by the newer pending change " + newer})
				e.mu.Unlock()
				signal()
				continue
			}
			t := &task{s: s, wait: last[c.Subject], mine: make(chan struct{})} // an earlier change of the subject: pushed after it
			last[c.Subject] = t.mine
			e.mu.Unlock()
			tasks.Add(1)
			select {
			case work <- t:
			case <-e.ctx.Done():
				finish(t, Outcome{Verdict: Aborted})
				break read
			}
		}
	}
	tasks.Wait()
	close(quit)
	workers.Wait()
	e.mu.Lock()
	e.complete = readErr == nil && e.ctx.Err() == nil && e.failed == nil
	e.mu.Unlock()
	signal()
	close(kick)
	<-committerDone
	// The final flush: written even when ctx is done, if the guard allows.
	if err := e.advanceAndFlushFinal(&order); err != nil && commitErr == nil {
		commitErr = err
	}
	if readErr != nil {
		return fmt.Errorf("recordsync: reading the source: %w", readErr)
	}
	if err := e.err(); err != nil {
		return err
	}
	if commitErr != nil {
		return commitErr
	}
	return e.ctx.Err()
}

// newerPending returns the key of a pending change of c's subject newer
// than c ("" for none); e.mu must be held.
func (e *engine) newerPending(c Change) string {
	for _, p := range e.pendingSubjects[c.Subject] {
		if !c.Time.IsZero() && p.Time.After(c.Time) {
			return p.Key
		}
	}
	return ""
}

// resolve records a streamed record's final outcome.
func (e *engine) resolve(s *slot, out Outcome, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if out.Verdict == Aborted {
		return
	}
	r := Result{Change: s.c, Verdict: out.Verdict, Code: out.Code, Message: out.Message, Attempts: n}
	switch out.Verdict {
	case Pushed:
		e.sum.Pushed++
		e.batch.Done = append(e.batch.Done, doneOf(s.c))
	case Refused:
		e.sum.Refused++
		e.errs++
		e.batch.Done = append(e.batch.Done, doneOf(s.c))
	case Skipped:
		e.sum.Skipped++
		e.batch.Done = append(e.batch.Done, doneOf(s.c))
	case Carried:
		e.sum.Carried++
		e.batch.Park = append(e.batch.Park, Pending{Change: s.c, Attempts: n, Code: out.Code, Message: out.Message, First: time.Now().UTC()})
	}
	// A resolved newer change supersedes the subject's older pending ones
	// (of earlier runs, or carried earlier in this one).
	if olds, ok := e.pendingSubjects[s.c.Subject]; ok {
		for _, p := range olds {
			if p.Key != s.c.Key && (p.Time.IsZero() || !p.Time.After(s.c.Time)) {
				e.batch.Drop = append(e.batch.Drop, p.Key)
				e.sum.Carried--
				e.sum.Skipped++
			}
		}
		delete(e.pendingSubjects, s.c.Subject)
	}
	if out.Verdict == Carried {
		e.pendingSubjects[s.c.Subject] = []Pending{e.batch.Park[len(e.batch.Park)-1]}
	}
	s.resolved = true
	e.report(r)
	e.checkErrors()
}

// doneOf is what a done change needs to keep: its key and time. A change
// without a time is kept as done for good (NeverForgotten): no mark
// passes it, so it is not pushed again when listed again.
func doneOf(c Change) Change {
	t := c.Time
	if t.IsZero() {
		t = NeverForgotten
	}
	return Change{Key: c.Key, Subject: c.Subject, Time: t}
}

// NeverForgotten is the done time of a change the source gave no time:
// later than any mark.
var NeverForgotten = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// advance moves the mark over the resolved prefix of order and frees
// returns how many window slots they free once committed. It must be
// called with e.mu held.
func (e *engine) advance(order *[]*slot) int {
	i := 0
	for i < len(*order) && (*order)[i].resolved {
		if t := (*order)[i].c.Time; !t.IsZero() && t.After(e.candidate) {
			e.candidate = t
		}
		i++
	}
	*order = (*order)[i:]
	// The candidate becomes the mark once a later record was read (or the
	// listing ended): a source that lists out of order is caught before
	// the mark passes the older record.
	switch {
	case e.unsorted:
		if e.complete && len(*order) == 0 && e.maxSeen.After(e.mark) {
			e.mark = e.maxSeen
			e.batch.Mark = e.maxSeen
		}
	case e.candidate.After(e.mark) && (len(*order) > 0 || e.complete):
		e.mark = e.candidate
		e.batch.Mark = e.candidate
	}
	return i
}

// advanceAndFlush commits the resolved prefix; its window slots are
// freed only once it is written, so that records resolved but not yet
// committed stay bounded by the window too.
func (e *engine) advanceAndFlush(order *[]*slot, window chan struct{}) error {
	e.mu.Lock()
	n := e.advance(order)
	e.mu.Unlock()
	var err error
	if e.ctx.Err() == nil { // stopped: the final flush writes it
		err = e.flush()
	}
	for range n {
		<-window
	}
	return err
}

// advanceAndFlushFinal is the last commit of a run: it is written even
// when the run's context is done (what was pushed must be remembered),
// within a short timeout, unless the guard refuses.
func (e *engine) advanceAndFlushFinal(order *[]*slot) error {
	e.mu.Lock()
	e.advance(order)
	e.mu.Unlock()
	return e.flushWith(context.WithoutCancel(e.ctx))
}

func (e *engine) flush() error { return e.flushWith(e.ctx) }

// finalCommitTimeout bounds the last commit of a stopped run.
const finalCommitTimeout = 15 * time.Second

func (e *engine) flushWith(ctx context.Context) error {
	e.mu.Lock()
	empty := e.batch.Empty()
	e.mu.Unlock()
	if empty {
		return nil
	}
	if ctx != e.ctx {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, finalCommitTimeout)
		defer cancel()
	}
	if e.cfg.Guard != nil { // refused: the batch stays for a later flush
		if err := e.cfg.Guard(ctx); err != nil {
			return fmt.Errorf("recordsync: before committing %s: %w", e.cfg.Job, err)
		}
	}
	e.mu.Lock()
	c := e.batch
	e.batch = Commit{}
	total, done := e.sum.Total, e.sum.Pushed+e.sum.Refused+e.sum.Carried+e.sum.Skipped
	e.mu.Unlock()
	if err := e.cfg.Store.SyncCommit(ctx, e.cfg.Job, c); err != nil {
		// Not written: keep it for the next flush (the final one retries).
		e.mu.Lock()
		e.batch = mergeCommits(c, e.batch)
		e.mu.Unlock()
		return fmt.Errorf("recordsync: committing %s: %w", e.cfg.Job, err)
	}
	if !c.Mark.IsZero() {
		e.mu.Lock()
		e.sum.Mark = c.Mark
		e.mu.Unlock()
	}
	if e.cfg.OnProgress != nil {
		e.cfg.OnProgress(done, total)
	}
	return nil
}

func mergeCommits(a, b Commit) Commit {
	out := Commit{Mark: a.Mark, Done: append(a.Done, b.Done...), Park: append(a.Park, b.Park...), Drop: append(a.Drop, b.Drop...)}
	if b.Mark.After(out.Mark) {
		out.Mark = b.Mark
	}
	return out
}

// MemStore is an in-memory [Store], safe for concurrent use; the zero
// value is ready. State is lost with the process: for tests and for a
// processor registered without a store.
type MemStore struct {
	mu      sync.Mutex
	marks   map[string]time.Time
	done    map[string]map[string]time.Time
	pending map[string]map[string]Pending
}

func (m *MemStore) init() {
	if m.marks == nil {
		m.marks = map[string]time.Time{}
		m.done = map[string]map[string]time.Time{}
		m.pending = map[string]map[string]Pending{}
	}
}

// SyncMark implements [Store].
func (m *MemStore) SyncMark(_ context.Context, job string) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	t, ok := m.marks[job]
	return t, ok, nil
}

// SyncDone implements [Store].
func (m *MemStore) SyncDone(_ context.Context, job string, keys []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	out := map[string]bool{}
	for _, k := range keys {
		_, done := m.done[job][k]
		_, pending := m.pending[job][k]
		if done || pending {
			out[k] = true
		}
	}
	return out, nil
}

// SyncPending implements [Store].
func (m *MemStore) SyncPending(_ context.Context, job, after string, limit int) ([]Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	var out []Pending
	for k, p := range m.pending[job] {
		if k > after {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// SyncCommit implements [Store].
func (m *MemStore) SyncCommit(_ context.Context, job string, c Commit) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if m.done[job] == nil {
		m.done[job] = map[string]time.Time{}
		m.pending[job] = map[string]Pending{}
	}
	for _, d := range c.Done {
		m.done[job][d.Key] = d.Time
		delete(m.pending[job], d.Key)
	}
	for _, p := range c.Park {
		m.pending[job][p.Key] = p
	}
	for _, k := range c.Drop {
		delete(m.pending[job], k)
	}
	if !c.Mark.IsZero() {
		m.marks[job] = c.Mark
		for k, t := range m.done[job] {
			if t.Before(c.Mark) {
				delete(m.done[job], k)
			}
		}
	}
	return nil
}

// PendingCount returns how many changes of job are pending.
func (m *MemStore) PendingCount(job string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending[job])
}

// Describe returns a one-line summary of s for logs.
func (s Summary) Describe() string {
	parts := []string{fmt.Sprintf("%d read", s.Read)}
	if s.Retried > 0 {
		parts = append(parts, fmt.Sprintf("%d pending retried", s.Retried))
	}
	parts = append(parts, fmt.Sprintf("%d pushed", s.Pushed), fmt.Sprintf("%d refused", s.Refused),
		fmt.Sprintf("%d carried to the next run", s.Carried), fmt.Sprintf("%d skipped", s.Skipped))
	return strings.Join(parts, ", ")
}
