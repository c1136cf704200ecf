package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/migrations"
)

// claimOptions tune claimBatch.
type claimOptions struct {
	// Owner names the claiming process in the lease.
	Owner string
	// Max is the most runs to claim; default 1.
	Max int
	// TTL is the lease length; default 30s.
	TTL time.Duration
	// Limits caps how many runs may be running at once, across all
	// instances, per limit group ("job:NAME" for a job's
	// concurrency.maxRunning, "conn:NAME" for a connection's
	// maxConcurrency); Groups maps a job to its groups. Claims that touch a
	// limited group are serialised on a lock row per group, so two
	// instances cannot both take the last slot. See claimLimits.
	Limits map[string]int
	Groups map[string][]string
	// Skip lists jobs whose runs this claimer must not take (it cannot
	// run them: see Executor.Unrunnable); another instance may.
	Skip []string
	// Floor, when not nil, is where this claimer's scans of the queue
	// resume (see dueFloor); nil scans from the head every time.
	Floor *dueFloor
	// Token is the batch's lease token; default a fresh one. A caller
	// that gets an error back passes it to claimsByToken once the database
	// answers again: the COMMIT may have landed although its answer was
	// lost with the connection.
	Token string
}

// claimBatch claims up to opts.Max due queued runs, oldest due first, in
// one transaction: on MySQL with SELECT … FOR UPDATE SKIP LOCKED under READ
// COMMITTED, so concurrent claimers never wait on or take each other's
// rows. All runs of one batch share a fresh lease token. It returns no
// claims and no error when nothing is due.
func (s *Store) claimBatch(ctx context.Context, opts claimOptions) ([]*Claim, error) {
	n := min(max(opts.Max, 1), s.batchRows())
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	token := opts.Token
	if token == "" {
		token = newToken()
	}
	var runs []Run
	claim := func(tx *gorm.DB) error {
		var err error
		runs, err = s.claimIn(tx, n, opts, token, ttl)
		return err
	}
	err := s.db.WithContext(ctx).Transaction(claim)
	// A deadlock (claimers of limited jobs meeting on the limit rows) rolls
	// the whole claim back: take it again, a few times.
	for try := 0; try < 3 && err != nil && isDeadlock(err) && ctx.Err() == nil; try++ {
		err = s.db.WithContext(ctx).Transaction(claim)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: claim runs: %w", err)
	}
	return claimsOf(runs, opts.Owner, token, ttl), nil
}

// claimIn claims up to n due runs within tx under token (see claimBatch)
// and returns them as they were read.
func (s *Store) claimIn(tx *gorm.DB, n int, opts claimOptions, token string, ttl time.Duration) ([]Run, error) {
	runs, err := s.claimable(tx, n, opts)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	ids := make([]int64, len(runs))
	for i := range runs {
		ids[i] = runs[i].ID
	}
	res := tx.Model(&Run{}).Where("id IN ?", ids).Updates(s.claimedFields(opts.Owner, token, ttl))
	if res.Error != nil {
		return nil, fmt.Errorf("mark runs running: %w", res.Error)
	}
	return runs, nil
}

// claimsOf turns runs claimed under token (as read before the claim) into
// claims.
func claimsOf(runs []Run, owner, token string, ttl time.Duration) []*Claim {
	now := time.Now()
	claims := make([]*Claim, len(runs))
	for i := range runs {
		r := claimedCopy(&runs[i], owner, token, now)
		claims[i] = &Claim{Run: r, Token: token, Owner: owner, TTL: ttl, Started: now}
	}
	return claims
}

// claimable selects (and locks, on MySQL) up to n due runs for a claim
// within tx, within the claim limits. The limits are taken (a lock row per
// limited group, which serialises the claimers that take such runs) only
// when the due runs include one of a limited job, so claims of unlimited
// jobs run side by side on every instance. A run locked by the first
// selection and not kept stays queued (the lock ends with tx).
func (s *Store) claimable(tx *gorm.DB, n int, opts claimOptions) ([]Run, error) {
	runs, err := s.selectDue(tx, n, opts.Skip, opts.Floor)
	if err != nil || !touchesLimits(runs, opts.Limits, opts.Groups) {
		return runs, err
	}
	saturated, room, err := s.lockLimits(tx, opts.Limits, opts.Groups)
	if err != nil {
		return nil, err
	}
	if hasJob(runs, saturated) {
		// Select again without the saturated jobs, so that a queue head
		// full of their runs does not starve the others.
		if runs, err = s.selectDue(tx, n, append(append([]string{}, opts.Skip...), saturated...), nil); err != nil {
			return nil, err
		}
	}
	kept := runs[:0] // drop what would exceed a limit within this batch
next:
	for _, r := range runs {
		for _, g := range opts.Groups[r.Job] {
			if left, limited := room[g]; limited && left <= 0 {
				continue next
			}
		}
		for _, g := range opts.Groups[r.Job] {
			if _, limited := room[g]; limited {
				room[g]--
			}
		}
		kept = append(kept, r)
	}
	return kept, nil
}

// selectDue selects (and on MySQL locks, skipping rows other claimers
// hold) up to n due queued runs, oldest due first, except those of the
// jobs in skip. With a floor (MySQL only) it first reads from just past
// the last run the claimer selected, and from the head of the queue when
// that finds fewer than n (see dueFloor).
func (s *Store) selectDue(tx *gorm.DB, n int, skip []string, floor *dueFloor) ([]Run, error) {
	if floor == nil || s.dialect != migrations.MySQL {
		return s.selectDueFrom(tx, n, skip, nil)
	}
	if from, ok := floor.start(); ok {
		runs, err := s.selectDueFrom(tx, n, skip, &from)
		if err != nil || len(runs) == n {
			floor.advance(runs, false)
			return runs, err
		}
	}
	// The rows the floored read locked stay locked by this transaction,
	// so SKIP LOCKED does not skip them here: the read from the head
	// returns them again if they are among the first n.
	runs, err := s.selectDueFrom(tx, n, skip, nil)
	if err == nil {
		floor.advance(runs, true)
	}
	return runs, err
}

// selectDueFrom is selectDue's read, past from when not nil. On MySQL it
// reads in two steps, so that no locking read walks a range of the claim
// index: a plain read of the ids of up to twice n due runs (it stops at
// the end of the due range), then locking reads of those rows by primary
// key, skipping rows other claimers hold and rows no longer queued, until n
// are held. A locking range read cannot stop at the end of the due range
// on InnoDB: it locks and skips every delete-marked entry after it (the
// entries of runs that just left "running", not purged yet), which cost
// 26,000 pages per claim on an idle queue after a drain of 20,000 runs.
func (s *Store) selectDueFrom(tx *gorm.DB, n int, skip []string, from *floorMark) ([]Run, error) {
	now := s.now(0)
	cond := "status = ? AND not_before <= " + now.SQL
	args := append([]any{StatusQueued}, now.Vars...)
	if from != nil {
		// Two ranges of the claim index (status, not_before, id): the
		// rest of the floor's instant after its id, and every later one.
		cond += " AND (not_before > ? OR (not_before = ? AND id > ?))"
		args = append(args, from.notBefore, from.notBefore, from.id)
	}
	if len(skip) > 0 {
		cond += " AND job NOT IN ?"
		args = append(args, skip)
	}
	if s.dialect != migrations.MySQL {
		return scanRuns(tx.Raw("SELECT "+runColumns+" FROM runs WHERE "+cond+" ORDER BY not_before, id LIMIT ?", append(args, n)...))
	}
	var ids []int64
	if err := tx.Raw("SELECT id FROM runs WHERE "+cond+" ORDER BY not_before, id LIMIT ?", append(args, 2*n)...).Scan(&ids).Error; err != nil {
		return nil, fmt.Errorf("select due runs: %w", err)
	}
	var runs []Run
	for len(ids) > 0 && len(runs) < n {
		chunk := ids[:min(n-len(runs), len(ids))]
		ids = ids[len(chunk):]
		held, err := scanRuns(tx.Raw("SELECT "+runColumns+" FROM runs FORCE INDEX (PRIMARY) WHERE id IN ? AND status = ? AND not_before <= "+now.SQL+" FOR UPDATE SKIP LOCKED",
			append([]any{chunk, StatusQueued}, now.Vars...)...))
		if err != nil {
			return nil, err
		}
		runs = append(runs, held...)
	}
	sort.Slice(runs, func(i, j int) bool {
		if !runs[i].NotBefore.Equal(runs[j].NotBefore) {
			return runs[i].NotBefore.Before(runs[j].NotBefore)
		}
		return runs[i].ID < runs[j].ID
	})
	return runs, nil
}

// scanRuns runs q and reads its rows (runColumns) as due runs.
func scanRuns(q *gorm.DB) ([]Run, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, fmt.Errorf("select due runs: %w", err)
	}
	defer rows.Close()
	var runs []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("read due run: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read due runs: %w", err)
	}
	return runs, nil
}

// floorScans is how many claims in a row may read from a claimer's floor
// before one reads from the head of the queue again.
const floorScans = 16

// floorMark is a position in the claim index: a due time and a run id.
type floorMark struct {
	notBefore time.Time
	id        int64
}

// dueFloor is where one claimer's next read of the queue starts: just past
// the last run it selected. On InnoDB a claim changes the run's status, so
// its entry in the claim index (status, not_before, id) is delete-marked
// and stays at the head of the queued range until purge removes it; under
// a drain of tens of thousands of runs a second, purge falls behind and a
// read from the head walks every claimed run before the first it can take.
// Reading from the floor skips them (measured with the two-step read of
// selectDueFrom, 30,000 runs, 1,000 workers, batch 500: 20,649 runs/s with
// the floor, 16,448 without).
//
// The floor is a hint, never a rule: a run can be due before it (released
// at shutdown, held by a pause, left by a claim that rolled back, queued
// by a clock that lags), so a read from the floor that finds fewer runs
// than asked reads again from the head at once, and every floorScans-th
// claim reads from the head: such a run waits at most that many claims
// while the queue is busy, and none while it is not. The zero value has no
// floor. Its methods are safe for concurrent use.
type dueFloor struct {
	mu   sync.Mutex
	at   floorMark
	set  bool
	uses int
}

// start returns the floor to read from, and false when the next read must
// start at the head of the queue.
func (f *dueFloor) start() (floorMark, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set || f.uses >= floorScans {
		return floorMark{}, false
	}
	f.uses++
	return f.at, true
}

// advance moves the floor past runs (as selected, oldest due first);
// fromHead says they were read from the head of the queue, which starts
// the count of floored reads again. No runs from the head clear it.
func (f *dueFloor) advance(runs []Run, fromHead bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fromHead {
		f.uses = 0
		f.set = false
	}
	if len(runs) == 0 {
		return
	}
	last := runs[len(runs)-1]
	m := floorMark{notBefore: last.NotBefore, id: last.ID}
	if !f.set || m.notBefore.After(f.at.notBefore) || (m.notBefore.Equal(f.at.notBefore) && m.id > f.at.id) {
		f.at, f.set = m, true
	}
}

// touchesLimits reports whether a run of runs belongs to a limited group.
func touchesLimits(runs []Run, limits map[string]int, groups map[string][]string) bool {
	if len(limits) == 0 {
		return false
	}
	for _, r := range runs {
		for _, g := range groups[r.Job] {
			if limits[g] > 0 {
				return true
			}
		}
	}
	return false
}

// hasJob reports whether a run of runs is of one of jobs.
func hasJob(runs []Run, jobs []string) bool {
	if len(jobs) == 0 {
		return false
	}
	for _, r := range runs {
		if slices.Contains(jobs, r.Job) {
			return true
		}
	}
	return false
}

// claimsByToken returns as claims the runs still running under token, with
// their lease renewed: the runs of a claimBatch that returned an error
// although its COMMIT reached the database (the connection was lost before
// the answer came back). Nothing has executed them; the caller does, so
// they neither wait for their lease to lapse nor lose an attempt to the
// rescue. It returns none when the claim did not commit.
func (s *Store) claimsByToken(ctx context.Context, owner, token string, ttl time.Duration) ([]*Claim, error) {
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	var runs []Run
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Run{}).Where("lease_token = ? AND status = ?", token, StatusRunning).
			Updates(map[string]any{"lease_expires_at": s.now(ttl), "updated_at": s.now(0)})
		if res.Error != nil {
			return fmt.Errorf("renew leases: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		rows, err := tx.Raw("SELECT "+runColumns+" FROM runs WHERE lease_token = ? AND status = ? ORDER BY id", token, StatusRunning).Rows()
		if err != nil {
			return fmt.Errorf("select claimed runs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				return fmt.Errorf("read claimed run: %w", err)
			}
			runs = append(runs, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: resolve unconfirmed claim: %w", err)
	}
	now := time.Now()
	claims := make([]*Claim, len(runs))
	for i := range runs {
		claims[i] = &Claim{Run: &runs[i], Token: token, Owner: owner, TTL: ttl, Started: now}
	}
	return claims, nil
}

// lockLimits takes the lock rows of the limit groups (in name order, so
// claimers cannot deadlock) and counts the running runs of each group. It
// returns the jobs that belong to a group already at its limit and the room
// left in each group.
func (s *Store) lockLimits(tx *gorm.DB, limits map[string]int, groups map[string][]string) (saturated []string, room map[string]int, err error) {
	if len(limits) == 0 {
		return nil, nil, nil
	}
	names := make([]string, 0, len(limits))
	for g, l := range limits {
		if l > 0 {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return nil, nil, nil
	}
	sort.Strings(names)
	if s.dialect == migrations.MySQL {
		var sql strings.Builder
		args := make([]any, 0, 2*len(names))
		// ON DUPLICATE KEY UPDATE takes each existing row's lock exclusively,
		// in name order (INSERT IGNORE would take a shared lock first, and
		// two claimers upgrading it deadlock).
		sql.WriteString("INSERT INTO job_state (job, name, value, updated_at) VALUES ")
		for i, g := range names {
			if i > 0 {
				sql.WriteString(",")
			}
			sql.WriteString("(?, '_claim_lock', '', ?)")
			args = append(args, g, time.Now().UTC())
		}
		sql.WriteString(" ON DUPLICATE KEY UPDATE job = job")
		if err := tx.Exec(sql.String(), args...).Error; err != nil {
			return nil, nil, fmt.Errorf("create claim locks: %w", err)
		}
		var got []string
		if err := tx.Table("job_state").Select("job").Where("name = ? AND job IN ?", "_claim_lock", names).
			Order("job").Clauses(clause.Locking{Strength: "UPDATE"}).Find(&got).Error; err != nil {
			return nil, nil, fmt.Errorf("take claim locks: %w", err)
		}
	}
	// Jobs in a limited group, and the running count of each.
	var jobsIn []string
	for job, gs := range groups {
		for _, g := range gs {
			if limits[g] > 0 {
				jobsIn = append(jobsIn, job)
				break
			}
		}
	}
	var counts []struct {
		Job string
		N   int
	}
	if len(jobsIn) > 0 {
		if err := tx.Model(&Run{}).Select("job, COUNT(*) AS n").Where("status = ? AND job IN ?", StatusRunning, jobsIn).
			Group("job").Find(&counts).Error; err != nil {
			return nil, nil, fmt.Errorf("count running runs: %w", err)
		}
	}
	room = map[string]int{}
	for _, g := range names {
		room[g] = limits[g]
	}
	for _, c := range counts {
		for _, g := range groups[c.Job] {
			if _, ok := room[g]; ok {
				room[g] -= c.N
			}
		}
	}
	for _, job := range jobsIn {
		for _, g := range groups[job] {
			if left, ok := room[g]; ok && left <= 0 {
				saturated = append(saturated, job)
				break
			}
		}
	}
	sort.Strings(saturated)
	return saturated, room, nil
}

// claimLimits returns the claim limits of a definition set: a group per
// job with concurrency.maxRunning and per connection with maxConcurrency
// (a job's steps on other connections count against those too).
func claimLimits(set *definitions.Set) (limits map[string]int, groups map[string][]string) {
	if set == nil {
		return nil, nil
	}
	connLimit := map[string]int{}
	for _, c := range set.Connections {
		if c.MaxConcurrency > 0 {
			connLimit[c.Name] = c.MaxConcurrency
		}
	}
	for _, j := range set.Jobs {
		var gs []string
		if j.Concurrency.MaxRunning > 0 {
			gs = append(gs, "job:"+j.Name)
			if limits == nil {
				limits = map[string]int{}
			}
			limits["job:"+j.Name] = j.Concurrency.MaxRunning
		}
		conns := []string{j.Connection}
		for _, st := range j.Steps {
			if st.Connection != "" {
				conns = append(conns, st.Connection)
			}
		}
		seen := map[string]bool{}
		for _, c := range conns {
			if l, ok := connLimit[c]; ok && !seen[c] {
				seen[c] = true
				gs = append(gs, "conn:"+c)
				if limits == nil {
					limits = map[string]int{}
				}
				limits["conn:"+c] = l
			}
		}
		if len(gs) > 0 {
			if groups == nil {
				groups = map[string][]string{}
			}
			groups[j.Name] = gs
		}
	}
	return limits, groups
}

// finishBatch records the outcomes of several executions in one
// transaction (one commit for all). It returns one error per item: nil,
// ErrLeaseLost for an execution whose run was taken away (nothing recorded
// for it), or the transaction's error for all.
func (s *Store) finishBatch(ctx context.Context, items []finishItem) []error {
	errs, _, _ := s.finishAndClaim(ctx, items, nil)
	return errs
}

// finishAndClaim is finishBatch that, when ahead is not nil, also claims
// up to ahead.Max due runs under ahead.Token in the same transaction (see
// claimBatch): a pool's next runs ride on the commit of its last outcomes
// instead of taking a transaction of their own. It returns the claims,
// and claimErr when the transaction failed after the claim was asked for:
// its COMMIT may have landed all the same (pass the token to
// claimsByToken). A claim that fails (a deadlock with another claimer, a
// lock row it cannot take) is dropped and the outcomes are committed
// without it.
func (s *Store) finishAndClaim(ctx context.Context, items []finishItem, ahead *claimOptions) (errs []error, claims []*Claim, claimErr error) {
	errs = make([]error, len(items))
	if len(items) == 0 {
		return errs, nil, nil
	}
	for i, it := range items {
		if !it.Finish.Status.Final() && it.Finish.Status != StatusQueued {
			errs[i] = fmt.Errorf("jobs: finish run %d: bad status %q", it.Claim.Run.ID, it.Finish.Status)
		}
	}
	type group struct {
		upd   map[string]any
		token string
		inRun bool // attemptInRun: no attempt row
		idx   []int
	}
	now := time.Now().UTC()
	groups := map[string]*group{}
	var order []string
	for i, it := range items {
		if errs[i] != nil {
			continue
		}
		inRun := attemptInRun(it.Claim, it.Finish)
		key := finishKey(it.Finish, it.Claim.Token, inRun, now)
		g := groups[key]
		if g == nil {
			g = &group{upd: s.finishUpdate(it.Finish, inRun, now), token: it.Claim.Token, inRun: inRun}
			groups[key] = g
			order = append(order, key)
		}
		g.idx = append(g.idx, i)
	}
	var claimed []Run
	// claimFailed: the claim's own statements failed (nothing committed);
	// committing: the body succeeded, so an error came from the COMMIT.
	claimFailed, committing := false, false
	record := func(tx *gorm.DB) error {
		claimed, committing = nil, false
		var atts, logs [][]any
		var stepRuns, requeued []int64
		var steps []RunStep
		for _, key := range order {
			g := groups[key]
			ids := make([]int64, len(g.idx))
			for k, i := range g.idx {
				ids[k] = items[i].Claim.Run.ID
			}
			// lease_token is set exactly while a run is running, so it
			// implies the status; leaving status out keeps the primary key
			// the only usable index.
			res := tx.Model(&Run{}).Where("id IN ? AND lease_token = ?", ids, g.token).Updates(g.upd)
			if res.Error != nil {
				return fmt.Errorf("update runs: %w", res.Error)
			}
			if int(res.RowsAffected) != len(ids) {
				return errPartial
			}
			for _, i := range g.idx {
				it := &items[i]
				if !g.inRun {
					atts = append(atts, attemptValues(attemptRow(it.Claim, it.Finish, now)))
				}
				for _, l := range it.Finish.Logs {
					logs = append(logs, logValues(l))
				}
				// Multi-step runs and linked jobs only: one-step runs
				// without links add no statement here.
				if it.Finish.Steps != nil {
					stepRuns = append(stepRuns, it.Claim.Run.ID)
					steps = append(steps, stepsOf(it.Claim.Run.ID, it.Finish.Steps)...)
				}
				if it.Finish.Status == StatusQueued {
					requeued = append(requeued, it.Claim.Run.ID)
				}
				if len(it.Finish.Links) > 0 && it.Finish.Status.Final() {
					lines, err := s.insertLinks(tx, it.Claim, &it.Finish, now)
					if err != nil {
						return err
					}
					for _, l := range lines {
						logs = append(logs, logValues(l))
					}
				}
			}
		}
		if err := s.replaceSteps(tx, stepRuns, steps); err != nil {
			return fmt.Errorf("record steps: %w", err)
		}
		if err := insertRows(tx, s.batchRows(), "run_attempts", attemptCols, atts); err != nil {
			return fmt.Errorf("record attempts: %w", err)
		}
		if err := insertRows(tx, s.batchRows(), "run_logs", logCols, logs); err != nil {
			return fmt.Errorf("store logs: %w", err)
		}
		if len(requeued) > 0 {
			if err := s.cancelRequeued(tx, requeued); err != nil {
				return err
			}
		}
		if ahead != nil {
			var err error
			if claimed, err = s.claimIn(tx, min(max(ahead.Max, 1), s.batchRows()), *ahead, ahead.Token, ahead.TTL); err != nil {
				claimFailed = true
				return fmt.Errorf("claim the next runs: %w", err)
			}
		}
		committing = true
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(record)
	if err != nil && ahead != nil && (claimFailed || isDeadlock(err)) && ctx.Err() == nil {
		// Rolled back whole: nothing was claimed. Record the outcomes alone.
		ahead, claimed = nil, nil
		err = s.db.WithContext(ctx).Transaction(record)
	}
	if err == nil && ahead != nil {
		claims = claimsOf(claimed, ahead.Owner, ahead.Token, ahead.TTL)
	}
	if err != nil && ahead != nil && committing {
		claimErr = err // only a COMMIT that failed may have landed
	}
	if errors.Is(err, errPartial) {
		if len(items) == 1 {
			errs[0] = fmt.Errorf("jobs: finish run %d: %w", items[0].Claim.Run.ID, ErrLeaseLost)
			return errs, claims, claimErr
		}
		// Some runs were taken away: record the others one by one.
		for i, it := range items {
			if errs[i] == nil {
				errs[i] = s.Finish(ctx, it.Claim, it.Finish)
			}
		}
		return errs, claims, claimErr
	}
	if err != nil {
		err = fmt.Errorf("jobs: finish %d runs: %w", len(items), err)
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs, claims, claimErr
}

var errPartial = errors.New("jobs: some runs were not held")

// finishItem is one execution's outcome for finishBatch.
type finishItem struct {
	Claim  *Claim
	Finish Finish
}

// finishKey returns a key that is equal for outcomes whose runs-row
// updates (finishUpdate) are equal and whose claims share token: such runs
// share one UPDATE statement. It allocates only the key.
func finishKey(f Finish, token string, inRun bool, now time.Time) string {
	b := make([]byte, 0, 96+len(f.ErrorCode)+len(f.ErrorMessage)+len(f.Result)+len(token))
	b = append(append(b, f.Status...), 0)
	b = append(append(b, f.ErrorCode...), 0)
	b = append(append(b, f.ErrorMessage...), 0)
	for _, n := range [...]int64{int64(f.Progress.Progress), f.Progress.Read, f.Progress.Changed, f.Progress.Errors, f.Progress.Warnings} {
		b = append(strconv.AppendInt(b, n, 10), 0)
	}
	b = append(strconv.AppendBool(b, f.Snoozed), 0)
	b = append(strconv.AppendBool(b, inRun), 0)
	b = append(append(b, token...), 0)
	if f.Result != nil {
		b = append(append(b, 'r'), f.Result...)
	}
	if !f.Status.Final() {
		nb := f.NotBefore
		if nb.IsZero() {
			nb = now
		}
		b = strconv.AppendInt(append(b, 0, 'n', 'b'), nb.UnixNano(), 10)
	}
	return string(b)
}

// finishUpdate returns the runs-row update of f; with inRun
// (attemptInRun) the run keeps lease_owner, the row recording who ran it.
func (s *Store) finishUpdate(f Finish, inRun bool, now time.Time) map[string]any {
	upd := make(map[string]any, 16)
	upd["error_code"] = f.ErrorCode
	upd["error_message"] = f.ErrorMessage
	upd["progress"] = f.Progress.Progress
	upd["records_read"] = f.Progress.Read
	upd["records_changed"] = f.Progress.Changed
	upd["record_errors"] = f.Progress.Errors
	upd["record_warnings"] = f.Progress.Warnings
	upd["updated_at"] = s.now(0)
	if f.Result != nil {
		upd["result"] = string(f.Result)
	}
	if f.Snoozed {
		upd["snoozes"] = gorm.Expr("snoozes + 1")
	}
	if f.Status.Final() {
		s.finalFields(upd, f.Status)
		if inRun {
			delete(upd, "lease_owner")
		}
	} else {
		nb := f.NotBefore.UTC()
		if nb.IsZero() {
			nb = now
		}
		s.requeuedFields(upd, &nb)
	}
	return upd
}

func attemptRow(c *Claim, f Finish, now time.Time) Attempt {
	var retryAt *time.Time
	if !f.Status.Final() {
		nb := f.NotBefore.UTC()
		if nb.IsZero() {
			nb = now
		}
		retryAt = &nb
	}
	// An attempt never starts before its run was created, whichever
	// clocks (instances', the database's) took the two times.
	started := now.Add(-time.Since(c.Started))
	if created := c.Run.CreatedAt; !created.IsZero() && started.Before(created) {
		started = created.UTC()
	}
	return Attempt{
		RunID:        c.Run.ID,
		Attempt:      c.Run.Attempt,
		Owner:        c.Owner,
		StepIndex:    f.StepIndex,
		Status:       f.AttemptStatus,
		StartedAt:    started,
		FinishedAt:   now,
		ErrorCode:    f.ErrorCode,
		ErrorMessage: f.ErrorMessage,
		RetryAt:      retryAt,
	}
}

// Release puts a claimed run that was never started back in the queue
// without consuming an attempt (used at shutdown).
func (s *Store) Release(ctx context.Context, c *Claim, reason string) error {
	return s.Finish(ctx, c, Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true, ErrorMessage: reason,
		NotBefore: time.Now()})
}

// RescueExpired takes back up to limit runs whose lease expired (their
// worker died or lost the database for longer than the lease): each is
// queued again when attempts remain — the lost execution counts as an
// attempt — or failed with code LEASE_EXPIRED. It returns how many runs it
// rescued. Any instance may call it; concurrent callers skip each other's
// rows.
func (s *Store) RescueExpired(ctx context.Context, limit int) (int, error) {
	return s.RescueExpiredWithin(ctx, limit, 0)
}

// ErrRescueTooSlow is returned by RescueExpiredWithin when its look-up of
// expired leases took longer than allowed: the database was slow or
// frozen, so the owners of those leases may have outcomes queued behind
// it; nothing was rescued.
var ErrRescueTooSlow = errors.New("jobs: the database answered the rescue too slowly; nothing rescued")

// RescueExpiredWithin is RescueExpired that rescues nothing (and returns
// ErrRescueTooSlow) when the look-up of expired leases takes longer than
// maxSelect (0: no bound): a rescue that waited in a frozen server must
// not overtake the lease owners' own heartbeats and outcomes waiting
// there too.
func (s *Store) RescueExpiredWithin(ctx context.Context, limit int, maxSelect time.Duration) (int, error) {
	if limit <= 0 {
		limit = 100
	}
	n := 0
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var runs []Run
		q := tx.Where("status = ? AND lease_expires_at < ?", StatusRunning, s.now(0))
		if s.dialect == migrations.MySQL {
			q = q.Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"})
		}
		began := time.Now()
		if err := q.Order("lease_expires_at").Limit(limit).Find(&runs).Error; err != nil {
			return fmt.Errorf("select expired leases: %w", err)
		}
		if took := time.Since(began); maxSelect > 0 && took > maxSelect && len(runs) > 0 {
			return fmt.Errorf("%w (the look-up took %s)", ErrRescueTooSlow, took.Round(time.Millisecond))
		}
		now := time.Now().UTC()
		for _, r := range runs {
			owner := ""
			if r.LeaseOwner != nil {
				owner = *r.LeaseOwner
			}
			msg := fmt.Sprintf("the worker %s stopped renewing its lease (killed, hung or cut off from the database)", owner)
			upd := map[string]any{"error_code": "LEASE_EXPIRED", "error_message": msg}
			att := Attempt{RunID: r.ID, Attempt: r.Attempt, Owner: owner, Status: AttemptLeaseExpired, StartedAt: now,
				FinishedAt: now, ErrorCode: "LEASE_EXPIRED", ErrorMessage: msg}
			if r.StartedAt != nil {
				att.StartedAt = r.StartedAt.UTC()
			}
			if r.CancelRequested {
				s.finalFields(upd, StatusCancelled)
				upd["error_code"], upd["error_message"] = "CANCELLED", "cancelled by an operator; "+msg
			} else if r.AttemptsUsed() < r.MaxAttempts {
				// not_before is left as it was: the run keeps its place in
				// the queue instead of going to the back.
				s.requeuedFields(upd, nil)
				att.RetryAt = &now
			} else {
				s.finalFields(upd, StatusFailed)
				upd["error_message"] = msg + "; no attempts left"
				att.ErrorMessage = msg + "; no attempts left"
			}
			res := tx.Model(&Run{}).Where("id = ? AND status = ? AND lease_token = ?", r.ID, StatusRunning, r.LeaseToken).Updates(upd)
			if res.Error != nil {
				return fmt.Errorf("rescue run %d: %w", r.ID, res.Error)
			}
			if res.RowsAffected == 0 {
				continue
			}
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&att).Error; err != nil {
				return fmt.Errorf("rescue run %d: record attempt: %w", r.ID, err)
			}
			line := LogLine{RunID: r.ID, Attempt: r.Attempt, Ts: now, Level: "error", Message: "lease expired: " + att.ErrorMessage}
			if err := tx.Create(&line).Error; err != nil {
				return fmt.Errorf("rescue run %d: log: %w", r.ID, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("jobs: rescue expired leases: %w", err)
	}
	return n, nil
}
