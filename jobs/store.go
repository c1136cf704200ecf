package jobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/migrations"
)

// Errors of the store.
var (
	// ErrNotFound: no run with that id.
	ErrNotFound = errors.New("jobs: run not found")
	// ErrLeaseLost: the run is no longer held under the caller's lease
	// token (rescued by another instance, cancelled, or already finished).
	// The caller must stop and record nothing more for the attempt.
	ErrLeaseLost = errors.New("jobs: lease lost")
	// ErrIdempotencyMismatch: an idempotency key was reused with other
	// parameters.
	ErrIdempotencyMismatch = errors.New("jobs: idempotency key reused with different parameters")
	// ErrOutcomeUnknown: a write's commit was sent but its answer was lost
	// and what happened could not be found out (the database stayed
	// unreachable): the run may or may not be stored.
	ErrOutcomeUnknown = errors.New("jobs: outcome unknown")
	// ErrFinished: the run is already in a final status.
	ErrFinished = errors.New("jobs: run already finished")
	// ErrNotQueued: the run cannot be claimed because it is not queued.
	ErrNotQueued = errors.New("jobs: run is not queued")
	// ErrNotFinished: the run is still queued or running.
	ErrNotFinished = errors.New("jobs: run has not finished")
)

// Store keeps runs, attempts and logs in MySQL or SQLite. It is safe for
// concurrent use. Create it with Open.
type Store struct {
	db      *gorm.DB
	dialect string
	dsn     *DSN

	instMu sync.Mutex
	inst   string                 // installation id, once read
	instID atomic.Pointer[string] // the same, read without the lock

	// commitHook replaces Enqueue's commit in tests (a lost answer).
	commitHook func(tx *gorm.DB) error
}

// batchRows is the most rows one multi-row INSERT carries: the SQLite
// driver binds parameters in time quadratic in their number, so it gets
// small statements.
func (s *Store) batchRows() int {
	if s.dialect == migrations.SQLite {
		return 50
	}
	return 1000
}

// Dialect returns migrations.MySQL or migrations.SQLite.
func (s *Store) Dialect() string { return s.dialect }

// DSN returns the store's address without password.
func (s *Store) DSN() string { return s.dsn.String() }

// DB returns the underlying gorm handle (for tests and migrations).
func (s *Store) DB() *gorm.DB { return s.db }

// Close closes the database connections.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Migrate applies pending schema migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := migrations.Apply(ctx, s.db, s.dialect); err != nil {
		return fmt.Errorf("jobs: migrate %s: %s", s.dsn, redactErr(err, s.dsn))
	}
	return nil
}

// now returns an SQL expression for the database's current time in UTC
// (MySQL: the server's clock; SQLite, a single-host embedded database: this
// process's clock), plus d.
func (s *Store) now(d time.Duration) clause.Expr {
	if s.dialect == migrations.MySQL {
		if d == 0 {
			return clause.Expr{SQL: "UTC_TIMESTAMP(6)"}
		}
		return clause.Expr{SQL: "UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND", Vars: []any{d.Microseconds()}}
	}
	return clause.Expr{SQL: "?", Vars: []any{time.Now().UTC().Add(d)}}
}

// greatest is the dialect's two-argument maximum function.
func (s *Store) greatest() string {
	if s.dialect == migrations.MySQL {
		return "GREATEST"
	}
	return "MAX"
}

// NewRun describes a run to enqueue.
type NewRun struct {
	Job    *definitions.Job
	Params definitions.Values
	// Trigger and TriggeredBy record what and who created the run.
	Trigger     Trigger
	TriggeredBy string
	// IdempotencyKey, when set, makes Enqueue return the existing run of
	// that key instead of a second one (ErrIdempotencyMismatch when its
	// parameters differ).
	IdempotencyKey string
	// ScheduledFor is the nominal time of a schedule tick; (job,
	// ScheduledFor) is unique.
	ScheduledFor *time.Time
	// NotBefore delays the run; zero means now.
	NotBefore time.Time
	Preview   bool
	// ParentRunID links a linked job's run to its parent; RetryOfRunID an
	// operator's retry to the run it retries.
	ParentRunID  *int64
	RetryOfRunID *int64
	// Steps are step rows stored with the run in its transaction (the
	// reused steps of a retry from a failed step); RunID is set by Enqueue.
	Steps []RunStep
}

// Enqueued says what Enqueue did.
type Enqueued struct {
	Run *Run
	// Created is false when an existing run was returned instead.
	Created bool
	// Reason says why an existing run was returned: "idempotencyKey",
	// "active" (job's uniqueBy parameters) or "tick" (same schedule tick).
	Reason string
}

// Enqueue stores a queued run. It returns an existing run instead of
// creating one when the idempotency key, the active uniqueness key (the
// job's UniqueBy parameters while a run is queued or running) or the
// schedule tick is already taken.
func (s *Store) Enqueue(ctx context.Context, nr NewRun) (*Enqueued, error) {
	r, text, err := newRunRow(nr, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	tx := s.db.WithContext(ctx).Begin()
	if tx.Error != nil {
		return nil, fmt.Errorf("jobs: enqueue %s: %w", nr.Job.Name, tx.Error)
	}
	if err := insertRun(tx, r, text, nr.Steps); err != nil {
		tx.Rollback()
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, fmt.Errorf("jobs: enqueue %s: %w", nr.Job.Name, err)
		}
		return s.existing(ctx, r)
	}
	cerr := s.commit(tx)
	if cerr == nil {
		return &Enqueued{Run: r, Created: true}, nil
	}
	// The COMMIT was sent but its answer did not arrive: the run may be
	// stored. Find out before saying anything (a client told "nothing was
	// stored" retries and makes a second run).
	got, found, rerr := s.resolveInsert(ctx, r)
	switch {
	case rerr != nil:
		return nil, fmt.Errorf("jobs: enqueue %s: %w: the commit's answer was lost (%v) and the run could not be looked up (%v)",
			nr.Job.Name, ErrOutcomeUnknown, cerr, rerr)
	case found:
		return &Enqueued{Run: got, Created: true}, nil
	}
	return nil, fmt.Errorf("jobs: enqueue %s: %w", nr.Job.Name, cerr)
}

// EnqueueTx stores a queued run inside the caller's transaction tx (a
// *gorm.DB from Store.DB().Begin() or Transaction): the run exists only
// if the caller's own changes commit, and is claimable once they do (as
// River's InsertTx). Duplicates are handled as by Enqueue (the existing
// run is returned) without aborting tx: the insert runs under a savepoint.
// Workers of this process are not woken (call Pool.Wake after the
// commit, or they find the run within their poll interval).
func (s *Store) EnqueueTx(ctx context.Context, tx *gorm.DB, nr NewRun) (*Enqueued, error) {
	r, text, err := newRunRow(nr, time.Now().UTC())
	if err != nil {
		return nil, err
	}
	tx = tx.WithContext(ctx)
	if err := tx.SavePoint("jobrunner_enqueue").Error; err != nil {
		return nil, fmt.Errorf("jobs: enqueue %s: savepoint: %w", nr.Job.Name, err)
	}
	if err := insertRun(tx, r, text, nr.Steps); err != nil {
		tx.Error = nil // the handle keeps the error otherwise
		if rerr := tx.RollbackTo("jobrunner_enqueue").Error; rerr != nil {
			return nil, fmt.Errorf("jobs: enqueue %s: %w (and rolling back to the savepoint: %v)", nr.Job.Name, err, rerr)
		}
		if !errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, fmt.Errorf("jobs: enqueue %s: %w", nr.Job.Name, err)
		}
		return existingIn(tx, r)
	}
	return &Enqueued{Run: r, Created: true}, nil
}

// commit commits tx; a test may make it fail after (or instead of)
// committing, as a dropped connection does.
func (s *Store) commit(tx *gorm.DB) error {
	if s.commitHook != nil {
		return s.commitHook(tx)
	}
	return tx.Commit().Error
}

// resolveTimeout bounds the look-up of an insert whose commit's answer
// was lost (a variable for tests).
var resolveTimeout = 5 * time.Second

// resolveInsert finds out whether run r, whose commit's answer was lost,
// was stored. MySQL: a locking read of its id waits while the inserting
// transaction is still undecided (the server rolls back the transaction
// of a connection it saw drop), so the answer is final. The row must be
// r's own (same job, creator and creation time), not a later run that
// reused the id.
func (s *Store) resolveInsert(ctx context.Context, r *Run) (*Run, bool, error) {
	if r.ID == 0 {
		return nil, false, errors.New("the insert returned no id")
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), resolveTimeout)
	defer cancel()
	var last error
	for {
		var got Run
		q := s.db.WithContext(rctx)
		if s.dialect != migrations.SQLite {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		err := q.Where("id = ?", r.ID).Take(&got).Error
		switch {
		case err == nil:
			d := got.CreatedAt.Sub(r.CreatedAt)
			mine := got.Job == r.Job && got.TriggeredBy == r.TriggeredBy && d > -2*time.Microsecond && d < 2*time.Microsecond
			return &got, mine, nil
		case errors.Is(err, gorm.ErrRecordNotFound):
			return nil, false, nil
		}
		last = err
		select {
		case <-rctx.Done():
			return nil, false, last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// newRunRow returns the queued run row of nr and its parameters as text.
func newRunRow(nr NewRun, now time.Time) (*Run, map[string]string, error) {
	params, err := json.Marshal(nr.Params)
	if err != nil {
		return nil, nil, fmt.Errorf("jobs: enqueue %s: encode parameters: %w", nr.Job.Name, err)
	}
	nb := nr.NotBefore
	if nb.IsZero() {
		nb = now
	}
	r := enqueued(&Run{
		Job:               nr.Job.Name,
		DefinitionVersion: nr.Job.Version,
		Parameters:        JSONText(params),
		TriggerKind:       nr.Trigger,
		TriggeredBy:       nr.TriggeredBy,
		ScheduledFor:      utcPtr(nr.ScheduledFor),
		Preview:           nr.Preview,
		MaxAttempts:       max(nr.Job.Retry.MaxAttempts, 1),
		NotBefore:         nb.UTC(),
		ParentRunID:       nr.ParentRunID,
		RetryOfRunID:      nr.RetryOfRunID,
		CreatedAt:         now,
		UpdatedAt:         now,
	})
	if nr.IdempotencyKey != "" {
		k := nr.IdempotencyKey
		h := requestHash(nr.Job.Name, params, nr.Preview)
		r.IdempotencyKey, r.RequestHash = &k, &h
	}
	if uk := uniqueKey(nr.Job, nr.Params); uk != "" {
		r.UniqueKey = &uk
	}
	return r, nr.Params.Text(), nil
}

// insertRun inserts r with its parameter index rows and initial step rows
// inside tx.
func insertRun(tx *gorm.DB, r *Run, text map[string]string, steps []RunStep) error {
	if err := tx.Create(r).Error; err != nil {
		return err
	}
	if err := insertKeys(tx, r); err != nil {
		return err
	}
	if len(text) > 0 {
		rows := make([]runParam, 0, len(text))
		for k, v := range text {
			rows = append(rows, runParam{RunID: r.ID, Name: k, Value: indexValue(v)})
		}
		if err := tx.Create(&rows).Error; err != nil {
			return err
		}
	}
	if len(steps) > 0 {
		rows := make([]RunStep, len(steps))
		for i, st := range steps {
			st.ID, st.RunID = 0, r.ID
			rows[i] = st
		}
		if err := tx.Create(&rows).Error; err != nil {
			return err
		}
	}
	return nil
}

// existing finds the run that made an insert of r collide.
func (s *Store) existing(ctx context.Context, r *Run) (*Enqueued, error) {
	return existingIn(s.db.WithContext(ctx), r)
}

// existingIn is existing, read through db (the caller's transaction).
func existingIn(db *gorm.DB, r *Run) (*Enqueued, error) {
	var got Run
	if r.IdempotencyKey != nil {
		ok, err := keyRun(db, idemKey(*r.IdempotencyKey), false, &got)
		if err != nil {
			return nil, fmt.Errorf("jobs: enqueue %s: find idempotency key: %w", r.Job, err)
		}
		if ok {
			if got.RequestHash == nil || *got.RequestHash != *r.RequestHash {
				return nil, fmt.Errorf("%w (run %d)", ErrIdempotencyMismatch, got.ID)
			}
			return &Enqueued{Run: &got, Reason: "idempotencyKey"}, nil
		}
	}
	if r.UniqueKey != nil {
		ok, err := keyRun(db, activeKey(*r.UniqueKey), true, &got)
		if err != nil {
			return nil, fmt.Errorf("jobs: enqueue %s: find active run: %w", r.Job, err)
		}
		if ok {
			return &Enqueued{Run: &got, Reason: "active"}, nil
		}
	}
	if r.ScheduledFor != nil {
		ok, err := tickRun(db, r.Job, *r.ScheduledFor, &got)
		if err != nil {
			return nil, fmt.Errorf("jobs: enqueue %s: find tick: %w", r.Job, err)
		}
		if ok {
			return &Enqueued{Run: &got, Reason: "tick"}, nil
		}
	}
	// The colliding run finished between the insert and the lookup (its
	// unique key was released): the caller may simply try again.
	return nil, fmt.Errorf("jobs: enqueue %s: conflicting run finished meanwhile, try again", r.Job)
}

// requestHash identifies an enqueue request's payload for idempotency.
func requestHash(job string, params []byte, preview bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%t", job, params, preview)
	return hex.EncodeToString(h.Sum(nil))
}

// uniqueKey returns the active-run key of a job's UniqueBy parameters, or
// "" when the job has none.
func uniqueKey(job *definitions.Job, params definitions.Values) string {
	if len(job.UniqueBy) == 0 {
		return ""
	}
	text := params.Text()
	names := append([]string(nil), job.UniqueBy...)
	sort.Strings(names)
	h := sha256.New()
	h.Write([]byte(job.Name))
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s=%s", n, text[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// indexValue caps a parameter value to the index column's width; longer
// values are still stored whole in the run's parameters.
func indexValue(v string) string {
	r := []rune(v)
	if len(r) > 255 {
		return string(r[:255])
	}
	return v
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// Claim is a run held under a lease by this process.
type Claim struct {
	Run   *Run
	Token string
	Owner string
	TTL   time.Duration
	// Started is when this execution started (this process's clock).
	Started time.Time

	// slotted: the pool counted it on its connections (the bulkhead).
	slotted bool
	// watch, set by a pool, registers the execution's cancel function so
	// that an operator's cancel reaches it within a second; it returns the
	// function that unregisters it.
	watch func(id int64, cancel context.CancelCauseFunc) func()
}

// newToken returns a random lease token.
func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ClaimRun claims the queued run id for owner with a lease of ttl,
// regardless of its not-before time (for `jobrunner run`, which waits for
// it itself). It returns ErrNotQueued when the run is not queued (or is
// being cancelled) and ErrNotFound when it does not exist.
func (s *Store) ClaimRun(ctx context.Context, id int64, owner string, ttl time.Duration) (*Claim, error) {
	token := newToken()
	res := s.db.WithContext(ctx).Model(&Run{}).
		Where("id = ? AND status = ? AND cancel_requested = ?", id, StatusQueued, false).
		Updates(s.claimedFields(owner, token, ttl))
	if res.Error != nil {
		return nil, fmt.Errorf("jobs: claim run %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		if _, err := s.Get(ctx, id); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("jobs: claim run %d: %w", id, ErrNotQueued)
	}
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Claim{Run: r, Token: token, Owner: owner, TTL: ttl, Started: time.Now()}, nil
}

// Progress is what a heartbeat records of a running attempt.
type Progress struct {
	Progress                        int
	Read, Changed, Errors, Warnings int64
}

// Heartbeat extends c's lease by its TTL and records progress. It returns
// cancel=true when an operator asked to cancel the run, and ErrLeaseLost
// when the run is no longer held under c's token.
func (s *Store) Heartbeat(ctx context.Context, c *Claim, p Progress) (cancel bool, err error) {
	res := s.db.WithContext(ctx).Model(&Run{}).
		Where("id = ? AND lease_token = ? AND status = ?", c.Run.ID, c.Token, StatusRunning).
		Updates(map[string]any{
			"lease_expires_at": s.now(c.TTL),
			"progress":         p.Progress,
			"records_read":     p.Read,
			"records_changed":  p.Changed,
			"record_errors":    p.Errors,
			"record_warnings":  p.Warnings,
			"updated_at":       s.now(0),
		})
	if res.Error != nil {
		return false, fmt.Errorf("jobs: heartbeat run %d: %w", c.Run.ID, res.Error)
	}
	if res.RowsAffected == 0 {
		return false, fmt.Errorf("jobs: heartbeat run %d: %w", c.Run.ID, ErrLeaseLost)
	}
	var flag struct{ CancelRequested bool }
	if err := s.db.WithContext(ctx).Model(&Run{}).Select("cancel_requested").Where("id = ?", c.Run.ID).Take(&flag).Error; err != nil {
		return false, fmt.Errorf("jobs: heartbeat run %d: read cancel flag: %w", c.Run.ID, err)
	}
	return flag.CancelRequested, nil
}

// AppendLogs stores log lines of c's attempt, fenced by its lease token
// (ErrLeaseLost when the run was taken away).
func (s *Store) AppendLogs(ctx context.Context, c *Claim, lines []LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := fence(tx, c); err != nil {
			return err
		}
		if err := tx.CreateInBatches(lines, s.batchRows()).Error; err != nil {
			return fmt.Errorf("jobs: append logs of run %d: %w", c.Run.ID, err)
		}
		return nil
	})
}

// fence locks c's run row inside tx and fails with ErrLeaseLost unless it
// is still held under c's token.
func fence(tx *gorm.DB, c *Claim) error {
	var n int64
	q := tx.Model(&Run{}).Where("id = ? AND lease_token = ? AND status = ?", c.Run.ID, c.Token, StatusRunning)
	if tx.Dialector.Name() == "mysql" {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	if err := q.Count(&n).Error; err != nil {
		return fmt.Errorf("jobs: check lease of run %d: %w", c.Run.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("jobs: run %d: %w", c.Run.ID, ErrLeaseLost)
	}
	return nil
}

// Finish is the recorded end of one execution.
type Finish struct {
	// Status is the run's new status: a final one, or StatusQueued to run
	// again at NotBefore.
	Status    Status
	NotBefore time.Time
	// AttemptStatus is the execution's outcome (Attempt* constants).
	AttemptStatus string
	// Snoozed marks an execution that does not consume an attempt.
	Snoozed      bool
	ErrorCode    string
	ErrorMessage string
	// Result is the JSON result (nil: keep none).
	Result   []byte
	Progress Progress
	// Logs are the attempt's log lines not yet stored.
	Logs []LogLine
	// StepIndex is the step the execution ended in (recorded on the
	// attempt row); 0 for a one-step job.
	StepIndex int
	// Steps, for a multi-step run, are all its step rows as they now are;
	// they replace the stored ones in the same transaction. Nil for a
	// one-step run (which has no step rows).
	Steps []RunStep
	// Links are linked runs to enqueue in the same transaction (only with
	// a final Status), each with an idempotency key link:PARENT:INDEX.
	Links []NewRun
}

// Finish records the end of c's execution in one transaction: the run's new
// status, the attempt row and the remaining log lines. It returns
// ErrLeaseLost (and records nothing) when the run is no longer held under
// c's token.
func (s *Store) Finish(ctx context.Context, c *Claim, f Finish) error {
	return s.finishBatch(ctx, []finishItem{{Claim: c, Finish: f}})[0]
}

// cancelRequeued ends as cancelled the runs among ids that were just put
// back in the queue although an operator asked to cancel them while they
// ran (the worker's heartbeat had not seen the request yet): a cancelled
// run is never executed again.
func (s *Store) cancelRequeued(tx *gorm.DB, ids []int64) error {
	err := tx.Model(&Run{}).Where("id IN ? AND status = ? AND cancel_requested = ?", ids, StatusQueued, true).Updates(s.finalFields(map[string]any{
		"error_code":    "CANCELLED",
		"error_message": "cancelled by an operator while it ran",
	}, StatusCancelled)).Error
	if err != nil {
		return fmt.Errorf("cancel requeued runs: %w", err)
	}
	return nil
}

// Finished reports whether c's execution was already recorded: used to
// resolve an ambiguous commit (connection lost after COMMIT was sent)
// without running the processor again. It reads run_attempts_all, which
// also holds the attempt a run row records itself (attemptInRun).
func (s *Store) Finished(ctx context.Context, c *Claim) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Table("run_attempts_all").Where("run_id = ? AND attempt = ? AND owner = ? AND status <> ?",
		c.Run.ID, c.Run.Attempt, c.Owner, AttemptLeaseExpired).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("jobs: check attempt %d of run %d: %w", c.Run.Attempt, c.Run.ID, err)
	}
	return n > 0, nil
}

// EverStarted reports whether any run in the database ever started: false
// means no worker has used it (a `trigger --wait` on the wrong database).
func (s *Store) EverStarted(ctx context.Context) (bool, error) {
	var ids []int64
	if err := s.db.WithContext(ctx).Raw("SELECT id FROM runs WHERE started_at IS NOT NULL LIMIT 1").Scan(&ids).Error; err != nil {
		return false, fmt.Errorf("jobs: looking for started runs: %w", err)
	}
	return len(ids) > 0, nil
}

// notFoundError is ErrNotFound naming the id: "jobs: run 9999 not found".
type notFoundError struct{ id int64 }

func (e notFoundError) Error() string        { return fmt.Sprintf("jobs: run %d not found", e.id) }
func (e notFoundError) Is(target error) bool { return target == ErrNotFound }

func notFound(id int64) error { return notFoundError{id} }

// Get returns the run id, ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, id int64) (*Run, error) {
	var r Run
	err := s.db.WithContext(ctx).Take(&r, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: get run %d: %w", id, err)
	}
	return &r, nil
}

// Attempts returns the run's executions in order, the one its run row
// records itself included (a one-step run whose first attempt succeeded
// has no run_attempts row; see attemptInRun). It does not read the view
// run_attempts_all: SQLite gives a compound view's columns no declared
// type, so its times would come back as text.
func (s *Store) Attempts(ctx context.Context, runID int64) ([]Attempt, error) {
	var out []Attempt
	if err := s.db.WithContext(ctx).Where("run_id = ?", runID).Order("attempt, step_index").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: attempts of run %d: %w", runID, err)
	}
	if len(out) > 0 {
		return out, nil // a run with attempt rows records none itself
	}
	r, err := s.Get(ctx, runID)
	if errors.Is(err, ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: attempts of run %d: %w", runID, err)
	}
	if a, ok := runAttempt(r); ok {
		out = append(out, a)
	}
	return out, nil
}

// Logs returns up to limit (clamped to 1..5000, default 1000) log lines of
// the run with id > afterID, oldest first.
func (s *Store) Logs(ctx context.Context, runID, afterID int64, limit int) ([]LogLine, error) {
	if limit <= 0 || limit > 5000 {
		limit = min(max(limit, 1000), 5000)
	}
	var out []LogLine
	if err := s.db.WithContext(ctx).Where("run_id = ? AND id > ?", runID, afterID).Order("id").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: logs of run %d: %w", runID, err)
	}
	return out, nil
}

// Filter selects runs for List. Every filter matches literally (no
// wildcards).
type Filter struct {
	Job     string
	Status  Status
	Trigger Trigger
	// ErrorCode matches runs whose (last) error code is exactly this.
	ErrorCode string
	// Params matches runs whose parameter has exactly this canonical text
	// value (e.g. OrderNumber=WEB000123).
	Params map[string]string
	// Since/Until bound the creation time.
	Since, Until time.Time
	// BeforeID pages: only runs with a smaller id.
	BeforeID int64
	// Limit is clamped to 1..1000; default 50.
	Limit int
}

// List returns runs matching f, newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Run, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	q := s.db.WithContext(ctx).Model(&Run{})
	if f.Job != "" {
		q = q.Where("job = ?", f.Job)
	}
	if f.ErrorCode != "" {
		q = q.Where("error_code = ?", f.ErrorCode)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Trigger != "" {
		q = q.Where("trigger_kind = ?", f.Trigger)
	}
	names := make([]string, 0, len(f.Params))
	for k := range f.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		q = q.Where("id IN (SELECT run_id FROM run_params WHERE name = ? AND value = ?)", k, indexValue(f.Params[k]))
	}
	if !f.Since.IsZero() {
		q = q.Where("created_at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("created_at < ?", f.Until.UTC())
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	var out []Run
	if err := q.Order("id DESC").Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("jobs: list runs: %w", err)
	}
	return out, nil
}

// Cancel cancels run id on behalf of who: a queued run ends cancelled at
// once; a running run is flagged and its worker cancels the processor's
// context and records it cancelled (on whichever instance holds it). It
// returns the run as it now is, ErrFinished for a run already finished and
// ErrNotFound for an unknown id.
func (s *Store) Cancel(ctx context.Context, id int64, who string) (*Run, error) {
	db := s.db.WithContext(ctx)
	// A run may move between queued and running while we look; try again
	// until one of the two updates applies or the run is final.
	for try := 0; ; try++ {
		queued := func(where, msg string) *gorm.DB {
			return db.Model(&Run{}).Where("id = ? AND status = ? AND "+where, id, StatusQueued).Updates(s.finalFields(map[string]any{
				"cancelled_by":  who,
				"error_code":    "CANCELLED",
				"error_message": "cancelled by " + orUnknown(who) + " " + msg,
			}, StatusCancelled))
		}
		res := queued("attempt = 0", "before it started")
		if res.Error == nil && res.RowsAffected == 0 {
			// Queued again after executions (a retry's backoff, a snooze).
			res = queued("attempt > 0", "while it waited for its next execution")
		}
		if res.Error != nil {
			return nil, fmt.Errorf("jobs: cancel run %d: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			res = db.Model(&Run{}).Where("id = ? AND status = ?", id, StatusRunning).Updates(map[string]any{
				"cancel_requested": true,
				"cancelled_by":     who,
				"updated_at":       s.now(0),
			})
			if res.Error != nil {
				return nil, fmt.Errorf("jobs: cancel run %d: %w", id, res.Error)
			}
		}
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		switch {
		case res.RowsAffected > 0:
			return r, nil
		case r.Status.Final():
			return r, fmt.Errorf("jobs: cancel run %d (%s): %w", id, r.Status, ErrFinished)
		case try >= 10:
			return r, fmt.Errorf("jobs: cancel run %d: it kept changing status (%s); try again", id, r.Status)
		}
	}
}

func orUnknown(who string) string {
	if strings.TrimSpace(who) == "" {
		return "an operator"
	}
	return who
}

// JobState returns a per-job stored value (e.g. a sync's high-water mark),
// "" and false when unset.
func (s *Store) JobState(ctx context.Context, job, name string) (string, bool, error) {
	var row struct{ Value string }
	err := s.db.WithContext(ctx).Table("job_state").Select("value").Where("job = ? AND name = ?", job, name).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("jobs: read state %s/%s: %w", job, name, err)
	}
	return row.Value, true, nil
}

// installationJob and installationKey name the job_state row that holds
// the installation id.
const installationJob, installationKey = "_jobrunner", "installationId"

// InstallationID returns the id of this installation (this database): 16
// random hex digits created on first use and kept in job_state, so that
// the idempotency keys runs send to ERPs ("jobrunner-<id>-run-<n>") are
// unique across installations that share a platform. Every instance on
// the same database gets the same id. Errors are the database's.
func (s *Store) InstallationID(ctx context.Context) (string, error) {
	if p := s.instID.Load(); p != nil { // every execution asks: no lock once known
		return *p, nil
	}
	s.instMu.Lock()
	defer s.instMu.Unlock()
	if s.inst != "" {
		return s.inst, nil
	}
	v, ok, err := s.JobState(ctx, installationJob, installationKey)
	if err != nil {
		return "", fmt.Errorf("jobs: reading the installation id: %w", err)
	}
	if !ok || v == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("jobs: creating the installation id: %w", err)
		}
		// Two instances starting at once: the first insert wins, both read it.
		ignore := "INSERT IGNORE"
		if s.dialect == migrations.SQLite {
			ignore = "INSERT OR IGNORE"
		}
		err := s.db.WithContext(ctx).Exec(ignore+" INTO job_state (job, name, value, updated_at) VALUES (?, ?, ?, ?)",
			installationJob, installationKey, hex.EncodeToString(b[:]), time.Now().UTC()).Error
		if err != nil {
			return "", fmt.Errorf("jobs: storing the installation id: %w", err)
		}
		if v, ok, err = s.JobState(ctx, installationJob, installationKey); err != nil || !ok {
			return "", fmt.Errorf("jobs: reading the installation id: %w", err)
		}
	}
	s.inst = v
	s.instID.Store(&v)
	return v, nil
}

// SetJobState stores a per-job value.
func (s *Store) SetJobState(ctx context.Context, job, name, value string) error {
	row := map[string]any{"job": job, "name": name, "value": value, "updated_at": time.Now().UTC()}
	err := s.db.WithContext(ctx).Table("job_state").Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "job"}, {Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"}),
	}).Create(row).Error
	if err != nil {
		return fmt.Errorf("jobs: write state %s/%s: %w", job, name, err)
	}
	return nil
}

// EnqueueBatch stores many queued runs in one transaction with multi-row
// inserts (bulk loads, benchmarks). Runs with an idempotency key, a
// uniqueness key or a schedule tick must go through Enqueue, which handles
// their conflicts; EnqueueBatch refuses them.
func (s *Store) EnqueueBatch(ctx context.Context, nrs []NewRun) ([]*Run, error) {
	now := time.Now().UTC()
	runs := make([]*Run, len(nrs))
	texts := make([]map[string]string, len(nrs))
	for i, nr := range nrs {
		if nr.IdempotencyKey != "" || nr.ScheduledFor != nil || uniqueKey(nr.Job, nr.Params) != "" {
			return nil, fmt.Errorf("jobs: enqueue batch: run %d of %s needs Enqueue (idempotency, uniqueness or tick)", i, nr.Job.Name)
		}
		params, err := nr.Params.MarshalJSON() // compact already: no json.Marshal pass over it
		if err != nil {
			return nil, fmt.Errorf("jobs: enqueue batch: encode parameters: %w", err)
		}
		nb := nr.NotBefore
		if nb.IsZero() {
			nb = now
		}
		runs[i] = enqueued(&Run{Job: nr.Job.Name, DefinitionVersion: nr.Job.Version, Parameters: JSONText(params), TriggerKind: nr.Trigger,
			TriggeredBy: nr.TriggeredBy, Preview: nr.Preview, MaxAttempts: max(nr.Job.Retry.MaxAttempts, 1),
			NotBefore: nb.UTC(), ParentRunID: nr.ParentRunID, RetryOfRunID: nr.RetryOfRunID, CreatedAt: now, UpdatedAt: now})
		texts[i] = nr.Params.Text()
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := insertRunRows(tx, s.dialect, s.batchRows()/2, runs); err != nil {
			return err
		}
		var rows [][]any
		for i, r := range runs {
			for k, v := range texts[i] {
				rows = append(rows, []any{r.ID, k, indexValue(v)})
			}
		}
		return insertRows(tx, s.batchRows(), "run_params", paramCols, rows)
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: enqueue batch of %d: %w", len(nrs), err)
	}
	return runs, nil
}
