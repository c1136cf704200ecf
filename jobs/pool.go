package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	// Executor runs the claimed runs (its ReleaseOnShutdown is set by the
	// pool).
	Executor *Executor
	// Workers caps runs executing at once in this process; default 8.
	Workers int
	// BatchSize caps runs claimed per query; default min(Workers,
	// DefaultBatch).
	BatchSize int
	// PollInterval is how often the pool looks for due runs when nothing
	// woke it (runs of other instances, retries coming due); default 1s.
	PollInterval time.Duration
	// RescueInterval is how often expired leases are rescued; default
	// half the executor's lease TTL.
	RescueInterval time.Duration
	// Observer receives metrics; may be nil.
	Observer Observer
	// Clock, when set, replaces the Executor's Clock: poll and rescue
	// intervals, cancel checks, heartbeats and the grace period follow it
	// (tests advance a clockwork.FakeClock instead of sleeping).
	Clock clockwork.Clock
	// ConnectionShare caps the runs of one connection executing at once
	// in this pool (a bulkhead: a hung ERP holds at most its share, the
	// other connections' runs still start, and no ERP gets every worker's
	// requests at once). Default: three quarters of Workers, at most
	// MaxDefaultConnectionShare, when Workers is at least 4 (else no cap);
	// negative: no cap.
	// Connections of type noop call nothing and are not capped. It adds to
	// a connection's maxConcurrency, which counts across instances.
	ConnectionShare int
}

// DefaultWorkers is serve's and bench's default worker count. Runs
// executing at once are few in practice — MaxDefaultConnectionShare keeps
// any one connection at 16 per instance — but by Little's law a pool
// drains at most Workers runs per claim-to-start round trip, and on a
// two-core host with MariaDB that trip takes 10–15 ms: 64 workers capped
// no-op runs near 4,000/s, 512 let them reach 7,000–8,000/s (see
// docs/performance.md). An idle worker is a parked goroutine.
const DefaultWorkers = 512

// DefaultBatch caps the default BatchSize: runs claimed per query.
const DefaultBatch = 256

// MaxDefaultConnectionShare caps the default ConnectionShare: by default
// no connection has more than this many runs executing at once in one
// instance, whatever the worker count (set ConnectionShare, or a
// connection's maxConcurrency, to choose otherwise).
const MaxDefaultConnectionShare = 16

// Pool claims due runs in batches and executes them on up to Workers
// goroutines, keeping their leases, committing their outcomes in groups,
// and rescuing runs whose worker died. Start it once; Stop it once.
type Pool struct {
	cfg  PoolConfig
	ex   *Executor
	comp *completer

	wake  chan struct{}
	freed chan struct{}
	// shareForOthers: the share is the default that only leaves workers
	// for other connections (off when there is one).
	shareForOthers bool
	// pausesStale asks the claim loop to read pauses again before its
	// next claim (PausesChanged).
	pausesStale atomic.Bool
	busy        atomic.Int64
	// reserved counts worker slots held for claims in flight (reserve).
	reserved atomic.Int64
	slotMu   sync.Mutex
	// threshold is the least batch worth a claim once runs end (half the
	// batch size or worker count): smaller ones wait for a wake-up, the
	// poll tick or an idle pool, so latency stays low.
	threshold int
	// moreDue: the last claim took all it asked for, so more runs are
	// probably due; claims ride on outcome commits only then.
	moreDue atomic.Bool
	claims  claimState
	// floor is where this pool's claims resume reading the queue.
	floor dueFloor
	// unconfirmed are the tokens of claims that failed: their COMMIT may
	// have reached the database all the same (claimsByToken finds out).
	unconfMu    sync.Mutex
	unconfirmed []string
	// claimMu makes claims one at a time from the bulkhead's look at a
	// connection's room to handing the runs to workers.
	claimMu sync.Mutex
	// dispatchMu guards handing claims to workers against Stop closing
	// their queue (workClosed).
	dispatchMu sync.Mutex
	workClosed bool
	fetchCtx   context.Context
	// pending counts executions whose outcome awaits its commit.
	pending    atomic.Int64
	maxPending int

	// work hands claims to the Workers goroutines; claims are only taken
	// when a worker is free, so sends never block for long.
	work        chan *Claim
	workers     sync.WaitGroup
	fetchCancel context.CancelFunc
	runCancel   context.CancelFunc
	runCtx      context.Context
	loops       sync.WaitGroup
	// runs counts claims whose outcome is not recorded yet.
	runs    sync.WaitGroup
	started atomic.Bool
	// unrunnable are the jobs this pool does not claim (see skipList).
	unrunnable atomic.Pointer[map[string]string]

	// The bulkhead (ConnectionShare): the connections each job's runs
	// call (capped types only), and how many runs of each connection are
	// executing here.
	jobConns atomic.Pointer[map[string][]string]
	connMu   sync.Mutex
	connBusy map[string]int
	// cancels are the running executions' cancel functions, by run id.
	cancelMu  sync.Mutex
	cancels   map[int64]context.CancelCauseFunc
	saturated atomic.Int64 // connections at their share
	// now, closed by StopNow, ends Stop's wait at once.
	now     chan struct{}
	nowOnce sync.Once
}

// LastTry is how long, once the grace period is over, Stop keeps trying
// to record the outcomes of runs that finished (a database that is down
// or frozen); then it returns and their leases lapse: another instance
// rescues them after the lease TTL.
const LastTry = 5 * time.Second

// ErrBadPoolConfig is returned by NewPoolSafely for a configuration it
// refuses.
var ErrBadPoolConfig = errors.New("jobs: bad pool configuration")

// Validate reports a configuration NewPool refuses: no Executor or Store,
// or a negative Workers, BatchSize, PollInterval or RescueInterval (zero
// means the default; a negative value is a mistake, not a default).
func (c PoolConfig) Validate() error {
	switch {
	case c.Executor == nil || c.Executor.Store == nil:
		return fmt.Errorf("%w: it needs an Executor with a Store", ErrBadPoolConfig)
	case c.Workers < 0:
		return fmt.Errorf("%w: Workers %d is negative", ErrBadPoolConfig, c.Workers)
	case c.BatchSize < 0:
		return fmt.Errorf("%w: BatchSize %d is negative", ErrBadPoolConfig, c.BatchSize)
	case c.PollInterval < 0:
		return fmt.Errorf("%w: PollInterval %s is negative", ErrBadPoolConfig, c.PollInterval)
	case c.RescueInterval < 0:
		return fmt.Errorf("%w: RescueInterval %s is negative", ErrBadPoolConfig, c.RescueInterval)
	case c.ConnectionShare > 0 && c.Workers > 0 && c.ConnectionShare > c.Workers:
		return fmt.Errorf("%w: ConnectionShare %d is more than Workers %d", ErrBadPoolConfig, c.ConnectionShare, c.Workers)
	}
	return nil
}

// NewPoolSafely is NewPool that returns an error wrapping
// ErrBadPoolConfig instead of panicking on a configuration Validate
// refuses.
func NewPoolSafely(cfg PoolConfig) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return NewPool(cfg), nil
}

// NewPool returns a pool. Zero fields take their defaults (see
// PoolConfig); like database/sql's Register it panics on a configuration
// Validate refuses (use NewPoolSafely to get an error).
func NewPool(cfg PoolConfig) *Pool {
	if err := cfg.Validate(); err != nil {
		panic(err.Error())
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = min(cfg.Workers, DefaultBatch)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	// The default share only leaves workers for other connections, unless
	// MaxDefaultConnectionShare cut it (then it also spares the ERP).
	forOthers := false
	switch {
	case cfg.ConnectionShare < 0:
		cfg.ConnectionShare = 0
	case cfg.ConnectionShare == 0 && cfg.Workers >= 4:
		cfg.ConnectionShare = min(cfg.Workers*3/4, MaxDefaultConnectionShare)
		forOthers = cfg.Workers*3/4 <= MaxDefaultConnectionShare
	}
	ex := *cfg.Executor
	if cfg.Clock != nil {
		ex.Clock = cfg.Clock
	}
	ex.ReleaseOnShutdown = true
	ex.giveUp = new(atomic.Int64)
	ex.quietSuccess = true
	if ex.Observer == nil {
		ex.Observer = cfg.Observer
	}
	if cfg.RescueInterval <= 0 {
		cfg.RescueInterval = ex.ttl() / 2
	}
	p := &Pool{cfg: cfg, ex: &ex, wake: make(chan struct{}, 1), freed: make(chan struct{}, 1), now: make(chan struct{}),
		maxPending: max(cfg.Workers, 2*maxCompleteBatch), work: make(chan *Claim, cfg.Workers), connBusy: map[string]int{}, cancels: map[int64]context.CancelCauseFunc{}}
	p.shareForOthers = forOthers
	p.threshold = max(1, min(cfg.BatchSize, cfg.Workers)/2)
	p.comp = &completer{store: ex.Store, ch: make(chan *pending, 4*cfg.Workers), ahead: p.claimAhead, took: p.tookAhead}
	ex.finish = p.comp.finish
	return p
}

// Executor returns the executor the pool runs runs with.
func (p *Pool) Executor() *Executor { return p.ex }

// Start starts claiming. Cancelling ctx stops claiming like Stop does, but
// only Stop waits for running runs and releases them.
func (p *Pool) Start(ctx context.Context) {
	if !p.started.CompareAndSwap(false, true) {
		panic("jobs: Pool started twice")
	}
	p.fetchCtx, p.fetchCancel = context.WithCancel(ctx)
	fetchCtx := p.fetchCtx
	p.runCtx, p.runCancel = context.WithCancel(context.WithoutCancel(ctx))
	p.comp.start(2)
	for i := 0; i < p.cfg.Workers; i++ {
		p.workers.Add(1)
		go p.worker()
	}
	p.loops.Add(3)
	go p.fetchLoop(fetchCtx)
	go p.rescueLoop(fetchCtx)
	go p.cancelLoop(fetchCtx)
}

// CancelInterval is how often a pool asks the database whether an
// operator cancelled one of its running runs (one query for all of them):
// a cancel reaches the processor within about this long, not only at the
// next heartbeat.
const CancelInterval = 500 * time.Millisecond

// watch registers a running execution's cancel function (see Claim.watch).
func (p *Pool) watch(id int64, cancel context.CancelCauseFunc) func() {
	p.cancelMu.Lock()
	p.cancels[id] = cancel
	p.cancelMu.Unlock()
	return func() {
		p.cancelMu.Lock()
		delete(p.cancels, id)
		p.cancelMu.Unlock()
	}
}

// cancelLoop cancels the running runs an operator cancelled.
func (p *Pool) cancelLoop(ctx context.Context) {
	defer p.loops.Done()
	tick := p.ex.clock().NewTicker(CancelInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
		}
		p.cancelMu.Lock()
		ids := make([]int64, 0, len(p.cancels))
		for id := range p.cancels {
			ids = append(ids, id)
		}
		p.cancelMu.Unlock()
		if len(ids) == 0 {
			continue
		}
		var hit []int64
		if err := p.ex.Store.db.WithContext(ctx).Table("runs").Where("id IN ? AND cancel_requested = ?", ids, true).Pluck("id", &hit).Error; err != nil {
			continue // the heartbeat still sees it
		}
		p.cancelMu.Lock()
		for _, id := range hit {
			if cancel, ok := p.cancels[id]; ok {
				cancel(errCancelRequested)
			}
		}
		p.cancelMu.Unlock()
	}
}

// Wake makes the pool look for due runs now (after a local enqueue).
func (p *Pool) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// PausesChanged tells the pool that a pause was set or lifted through
// this process (the API, the dashboard): it reads the pauses again before
// its next claim instead of within the poll interval, so a run triggered
// right after pausing its connection is not claimed here. Other
// instances see the change within their poll interval.
func (p *Pool) PausesChanged() {
	p.pausesStale.Store(true)
	p.Wake()
}

// Owner returns the lease owner name of this pool's runs (host:pid).
func (p *Pool) Owner() string { return p.ex.owner() }

// Busy returns how many runs this pool is executing.
func (p *Pool) Busy() int { return int(p.busy.Load()) }

// Stop stops claiming at once, lets running runs finish until ctx is done
// (the grace period), then cancels the rest, which go back to the queue
// without consuming an attempt so another instance starts them at once.
// It returns when every run's outcome is recorded.
func (p *Pool) Stop(ctx context.Context) {
	if !p.started.Load() {
		return
	}
	p.fetchCancel()
	p.loops.Wait()
	p.dispatchMu.Lock()
	p.workClosed = true
	close(p.work) // no more claims: workers end once the queue is empty
	p.dispatchMu.Unlock()
	done := make(chan struct{})
	go func() { p.runs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.ex.logger().WithField("running", p.busy.Load()).Warn("grace period over: releasing running runs back to the queue")
		p.ex.giveUp.Store(p.ex.clock().Now().Add(LastTry).UnixNano())
		p.runCancel()
		select {
		case <-done:
		case <-p.now:
			p.ex.logger().Warn("stopping now: outcomes not yet recorded are abandoned; their leases lapse")
			return
		case <-p.ex.clock().After(LastTry + time.Second):
			p.ex.logger().WithField("unrecorded", p.pending.Load()).
				Warn("stopping: the database did not take the last outcomes in time; their leases lapse and another instance takes the runs over")
			return
		}
	case <-p.now:
		p.ex.logger().WithField("running", p.busy.Load()).Warn("stopping now: running runs and unrecorded outcomes are abandoned; their leases lapse")
		p.ex.giveUp.Store(p.ex.clock().Now().UnixNano())
		p.runCancel()
		return
	}
	p.runCancel()
	p.workers.Wait()
	p.comp.stop()
	p.releaseAllUnconfirmed(p.ex.logger().WithField("owner", p.ex.owner()))
}

// skipList returns the jobs of set this pool cannot run (not claimed
// here), logging them once per definitions set.
func (p *Pool) skipList(log *logrus.Entry, set *definitions.Set) []string {
	un := p.ex.Unrunnable(set)
	p.unrunnable.Store(&un)
	if len(un) == 0 {
		return nil
	}
	names := make([]string, 0, len(un))
	for n := range un {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		log.WithField("job", n).Warnf("this instance does not claim runs of %s: %s (an instance that can run it will)", n, un[n])
	}
	return names
}

// tight returns the jobs of capped connections that have less room than
// want below their share (but some), and the least such room: a batch of
// want could take them past it.
func (p *Pool) tight(want int) ([]string, int) {
	if p.cfg.ConnectionShare <= 0 || want <= 0 {
		return nil, 0
	}
	m := p.jobConns.Load()
	if m == nil {
		return nil, 0
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	var jobs []string
	room := want
	for job, conns := range *m {
		for _, cn := range conns {
			if h := p.cfg.ConnectionShare - p.connBusy[cn]; h > 0 && h < want {
				jobs = append(jobs, job)
				room = min(room, h)
				break
			}
		}
	}
	sort.Strings(jobs)
	return jobs, room
}

// withFull adds to skip the jobs whose connection is at its share.
func (p *Pool) withFull(skip []string) []string {
	if p.saturated.Load() <= 0 {
		return skip
	}
	return append(append([]string{}, skip...), p.fullJobs()...)
}

// setJobConns records, for the bulkhead, the capped connections each job
// of set calls.
func (p *Pool) setJobConns(set *definitions.Set) {
	if p.cfg.ConnectionShare <= 0 || set == nil {
		return
	}
	m := map[string][]string{}
	used := map[string]bool{}
	for _, j := range set.Jobs {
		for _, cn := range jobConnections(j) {
			used[cn] = true
			if c, ok := set.Connection(cn); ok && c.Type == "noop" {
				continue
			}
			m[j.Name] = append(m[j.Name], cn)
		}
	}
	if len(used) < 2 && p.shareForOthers { // one connection: there is no other to leave workers for
		m = map[string][]string{}
	}
	p.jobConns.Store(&m)
}

// acquireConns counts a run of job on its connections, unless one of them
// is at its share: then it returns that connection and counts nothing.
func (p *Pool) acquireConns(job string) string {
	if p.cfg.ConnectionShare <= 0 {
		return ""
	}
	m := p.jobConns.Load()
	if m == nil {
		return ""
	}
	conns := (*m)[job]
	if len(conns) == 0 {
		return ""
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	for _, cn := range conns {
		if p.connBusy[cn] >= p.cfg.ConnectionShare {
			return cn
		}
	}
	for _, cn := range conns {
		p.connBusy[cn]++
		if p.connBusy[cn] == p.cfg.ConnectionShare {
			p.saturated.Add(1)
		}
	}
	return ""
}

// releaseConns undoes acquireConns.
func (p *Pool) releaseConns(job string) {
	if p.cfg.ConnectionShare <= 0 {
		return
	}
	m := p.jobConns.Load()
	if m == nil {
		return
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	for _, cn := range (*m)[job] {
		if p.connBusy[cn] == p.cfg.ConnectionShare {
			p.saturated.Add(-1)
		}
		p.connBusy[cn]--
	}
}

// fullJobs returns the jobs whose runs would exceed a connection's share
// now (not claimed until a run of it ends).
func (p *Pool) fullJobs() []string {
	m := p.jobConns.Load()
	if m == nil {
		return nil
	}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	var out []string
	for job, conns := range *m {
		for _, cn := range conns {
			if p.connBusy[cn] >= p.cfg.ConnectionShare {
				out = append(out, job)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// heldJobs returns the jobs of set held back now by pauses or
// maintenance windows.
func (p *Pool) heldJobs(ctx context.Context, set *definitions.Set) (map[string]Held, error) {
	pauses, err := p.ex.Store.Pauses(ctx)
	if err != nil {
		return nil, err
	}
	return HeldJobs(set, pauses, p.ex.clock().Now()), nil
}

// logHeld returns the jobs whose runs are held back, logging each change
// (held, released) once; warned keeps what was said.
func (p *Pool) logHeld(log *logrus.Entry, held map[string]Held, warned map[string]string) []string {
	var out []string
	for name, h := range held {
		if !h.Runs() {
			continue
		}
		out = append(out, name)
		if why := h.Why(); warned[name] != why {
			warned[name] = why
			log.WithField("job", name).Infof("runs of %s are held back: %s (they stay queued, no attempt used)", name, why)
		}
	}
	for name := range warned {
		if h, ok := held[name]; !ok || !h.Runs() {
			delete(warned, name)
			log.WithField("job", name).Infof("runs of %s are claimed again", name)
		}
	}
	sort.Strings(out)
	return out
}

// Unrunnable returns the jobs this pool does not claim and why (see
// Executor.Unrunnable), as of the definitions it last claimed with.
func (p *Pool) Unrunnable() map[string]string {
	if m := p.unrunnable.Load(); m != nil {
		return *m
	}
	return nil
}

// StopNow makes a Stop in progress (or the next one) return at once,
// abandoning what it waits for: a second SIGTERM during the grace period.
func (p *Pool) StopNow() { p.nowOnce.Do(func() { close(p.now) }) }

func (p *Pool) fetchLoop(ctx context.Context) {
	defer p.loops.Done()
	log := p.ex.logger().WithField("owner", p.ex.owner())
	tick := p.ex.clock().NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	errDelay := 100 * time.Millisecond
	eager := true
	defer p.releaseAllUnconfirmed(log)
	for {
		free := p.free()
		want := min(free, p.cfg.BatchSize)
		if want > 0 && (eager || free >= p.threshold || p.busy.Load() == 0) {
			base := p.claimBase(ctx, log)
			var claims []*Claim
			var err error
			reserved, locked := 0, false
			if token := p.takeUnconfirmed(); token != "" {
				if p.bulkhead() { // dispatched below, like any claim
					p.claimMu.Lock()
					locked = true
				}
				// A failed claim may have committed: execute what it took.
				claims, err = p.ex.Store.claimsByToken(ctx, p.ex.owner(), token, p.ex.ttl())
				if err != nil {
					p.addUnconfirmed(token)
				} else if len(claims) > 0 {
					log.WithField("runs", len(claims)).Warn("a claim that reported an error had committed: executing its runs")
				}
				// Its runs were counted in no slot: they may exceed Workers
				// by one batch, once, after a database failure.
			} else if want = p.reserve(want); want > 0 {
				reserved = want
				// The bulkhead counts a connection's runs when they are
				// handed to workers: no other claim may run between its
				// look at the room left (tight, withFull) and dispatch.
				if p.bulkhead() {
					p.claimMu.Lock()
					locked = true
				}
				began := p.ex.clock().Now()
				// The bulkhead: jobs of a connection with less room than want
				// are claimed only in a second, smaller batch, when the first
				// did not fill the pool.
				tight, room := p.tight(want)
				opts := base
				opts.Max, opts.Skip, opts.Token = want, p.withFull(base.Skip), newToken()
				if len(tight) > 0 {
					opts.Skip = append(opts.Skip, tight...)
				}
				claims, err = p.ex.Store.claimBatch(ctx, opts)
				if err != nil {
					p.addUnconfirmed(opts.Token) // executed next time round if it committed
				} else if len(tight) > 0 && len(claims) < want && room > 0 {
					opts.Token, opts.Max, opts.Skip = newToken(), min(want-len(claims), room), p.withFull(base.Skip)
					more, err2 := p.ex.Store.claimBatch(ctx, opts)
					if err2 != nil {
						p.addUnconfirmed(opts.Token)
						log.Warnf("cannot claim runs, retrying: %s", redactErr(err2, p.ex.Store.dsn))
					}
					claims = append(claims, more...)
				}
				p.moreDue.Store(err == nil && len(claims) == want)
				if debug := log.Logger.IsLevelEnabled(logrus.DebugLevel); debug && len(claims) > 0 {
					ids := make([]int64, 0, min(len(claims), 20))
					for _, c := range claims[:min(len(claims), 20)] {
						ids = append(ids, c.Run.ID)
					}
					log.WithFields(logrus.Fields{"claimed": len(claims), "wanted": want, "busy": p.busy.Load(), "ms": p.ex.clock().Since(began).Milliseconds(), "ids": ids}).Debug("claimed runs")
				} else if err == nil && len(claims) == 0 && log.Logger.IsLevelEnabled(logrus.TraceLevel) {
					log.WithFields(logrus.Fields{"wanted": want, "ms": p.ex.clock().Since(began).Milliseconds()}).Trace("poll: nothing due")
				}
			}
			p.dispatch(claims, reserved)
			if locked {
				p.claimMu.Unlock()
			}
			if err != nil && ctx.Err() == nil {
				log.Warnf("cannot claim runs, retrying in %s: %s", errDelay, redactErr(err, p.ex.Store.dsn))
				if !sleepCtx(ctx, p.ex.clock(), errDelay) {
					return
				}
				errDelay = min(errDelay*2, 5*time.Second)
				continue
			}
			errDelay = 100 * time.Millisecond
			if want > 0 && len(claims) == want {
				continue // probably more due
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
			eager = true
		case <-p.freed:
			eager = false
		case <-tick.Chan():
			eager = true
		}
	}
}

// claimState is what a claim of this pool is limited by and skips, as of
// the definitions and pauses last read; the claim loop and the claims that
// ride on outcome commits share it.
type claimState struct {
	mu         sync.Mutex
	limitsOf   *definitions.Set
	limits     map[string]int
	groups     map[string][]string
	unrunnable []string
	heldOf     *definitions.Set
	held       []string
	pausesAt   time.Time
	pauseWarns map[string]string
}

// claimBase returns the options every claim of this pool starts from (no
// Max, no Token): its owner and lease, the claim limits, and the jobs it
// skips (not runnable here, paused or in a maintenance window). Pauses are
// read again every poll interval, and before the next claim after
// PausesChanged, so that every instance respects a pause within one.
func (p *Pool) claimBase(ctx context.Context, log *logrus.Entry) claimOptions {
	opts := claimOptions{Owner: p.ex.owner(), TTL: p.ex.ttl(), Floor: &p.floor}
	if p.ex.Definitions == nil {
		return opts
	}
	st := &p.claims
	st.mu.Lock()
	defer st.mu.Unlock()
	set := p.ex.Definitions()
	if set != st.limitsOf {
		st.limitsOf = set
		st.limits, st.groups = claimLimits(set)
		st.unrunnable = p.skipList(log, set)
		p.setJobConns(set)
	}
	if p.pausesStale.Swap(false) || set != st.heldOf || p.ex.clock().Since(st.pausesAt) >= p.cfg.PollInterval {
		st.heldOf, st.pausesAt = set, p.ex.clock().Now()
		if held, err := p.heldJobs(ctx, set); err == nil {
			if st.pauseWarns == nil {
				st.pauseWarns = map[string]string{}
			}
			st.held = p.logHeld(log, held, st.pauseWarns)
		} else if ctx.Err() == nil {
			log.Warnf("cannot read pauses (keeping the last known): %s", redactErr(err, p.ex.Store.dsn))
		}
	}
	opts.Limits, opts.Groups = st.limits, st.groups
	opts.Skip = append(append(make([]string, 0, len(st.unrunnable)+len(st.held)), st.unrunnable...), st.held...)
	return opts
}

// free returns how many more runs this pool may claim now: workers neither
// busy nor reserved by a claim in flight (none while outcomes pile up
// waiting for the database).
func (p *Pool) free() int {
	if int(p.pending.Load()) >= p.maxPending {
		return 0
	}
	// reserved first: dispatch moves a batch from reserved to busy (busy
	// first), so this order never counts a batch in flight as free.
	reserved := p.reserved.Load()
	return p.cfg.Workers - int(p.busy.Load()) - int(reserved)
}

// reserve takes up to n free worker slots for a claim in flight and
// returns how many it took; dispatch gives them back.
func (p *Pool) reserve(n int) int {
	p.slotMu.Lock()
	defer p.slotMu.Unlock()
	n = min(n, p.free())
	if n <= 0 {
		return 0
	}
	p.reserved.Add(int64(n))
	return n
}

// dispatch hands claims to the workers and gives back the reserved slots
// (claims may be fewer). It reports false, handing nothing, once Stop
// closed the workers' queue: the caller releases the claims.
func (p *Pool) dispatch(claims []*Claim, reserved int) bool {
	p.dispatchMu.Lock()
	defer p.dispatchMu.Unlock()
	defer p.reserved.Add(-int64(reserved)) // after busy counts the claims
	if p.workClosed {
		return len(claims) == 0
	}
	for _, c := range claims {
		p.busy.Add(1)
		p.runs.Add(1)
		c.slotted = p.acquireConns(c.Run.Job) == ""
		c.watch = p.watch
		p.work <- c // never blocks for long: claims take free workers only
	}
	return true
}

// aheadClaim is a claim to ride on an outcome commit; locked says it holds
// claimMu (the bulkhead is on).
type aheadClaim struct {
	opts   claimOptions
	locked bool
}

// bulkhead reports whether a connection's share caps some job's runs here:
// then claims are made one at a time (claimMu).
func (p *Pool) bulkhead() bool {
	m := p.jobConns.Load()
	return p.cfg.ConnectionShare > 0 && m != nil && len(*m) > 0
}

// claimAhead returns the claim to ride on the next outcome commit (see
// Store.finishAndClaim), with its slots reserved, or nil: when the pool is
// stopping, the queue seemed empty at the last claim, a failed claim is
// unresolved, too few workers are free for a worthwhile batch, or (with a
// bulkhead) the claim loop is claiming.
func (p *Pool) claimAhead() *aheadClaim {
	if p.fetchCtx.Err() != nil || !p.moreDue.Load() || p.hasUnconfirmed() || p.free() < p.threshold {
		return nil
	}
	a := &aheadClaim{}
	// With a bulkhead, only one claim at a time looks at a connection's
	// room and hands its runs out (see fetchLoop); the outcomes do not wait
	// for the claim loop. (The claim loop's first claim has set the
	// bulkhead up before moreDue can be true.)
	if p.bulkhead() {
		if !p.claimMu.TryLock() {
			return nil
		}
		a.locked = true
	}
	want := p.reserve(p.cfg.BatchSize)
	if want < p.threshold {
		p.reserved.Add(-int64(want))
		if a.locked {
			p.claimMu.Unlock()
		}
		return nil
	}
	a.opts = p.claimBase(p.fetchCtx, p.ex.logger().WithField("owner", p.ex.owner()))
	a.opts.Max, a.opts.Token = want, newToken()
	// Jobs of connections near their share are left to the claim loop's
	// second batch.
	a.opts.Skip = p.withFull(a.opts.Skip)
	if tight, _ := p.tight(want); len(tight) > 0 {
		a.opts.Skip = append(a.opts.Skip, tight...)
	}
	return a
}

// tookAhead dispatches what a claim that rode on an outcome commit took.
func (p *Pool) tookAhead(a *aheadClaim, claims []*Claim, err error) {
	if a.locked {
		defer p.claimMu.Unlock() // taken by claimAhead
	}
	ahead := &a.opts
	if err != nil {
		p.addUnconfirmed(ahead.Token) // it may have committed: the claim loop finds out
		p.Wake()
		p.reserved.Add(-int64(ahead.Max))
		return
	}
	p.moreDue.Store(len(claims) == ahead.Max)
	if !p.dispatch(claims, ahead.Max) {
		p.release(claims) // stopping: back to the queue, no attempt used
	}
	if len(claims) < ahead.Max {
		p.signalFreed() // the claim loop decides what to do with the rest
	}
}

func (p *Pool) addUnconfirmed(token string) {
	p.unconfMu.Lock()
	p.unconfirmed = append(p.unconfirmed, token)
	p.unconfMu.Unlock()
}

func (p *Pool) takeUnconfirmed() string {
	p.unconfMu.Lock()
	defer p.unconfMu.Unlock()
	if len(p.unconfirmed) == 0 {
		return ""
	}
	t := p.unconfirmed[0]
	p.unconfirmed = p.unconfirmed[1:]
	return t
}

func (p *Pool) hasUnconfirmed() bool {
	p.unconfMu.Lock()
	defer p.unconfMu.Unlock()
	return len(p.unconfirmed) > 0
}

// releaseAllUnconfirmed resolves, when the pool stops, every claim whose
// commit was never confirmed (see releaseUnconfirmed).
func (p *Pool) releaseAllUnconfirmed(log *logrus.Entry) {
	for token := p.takeUnconfirmed(); token != ""; token = p.takeUnconfirmed() {
		p.releaseUnconfirmed(log, token)
	}
}

// releaseUnconfirmed puts back in the queue, without using an attempt, the
// runs of a claim whose commit was never confirmed, when the pool stops
// before it could resolve it; otherwise they would wait for their lease
// to lapse and lose an attempt. Best effort within 10 seconds: if the
// database is still away, the lease-expiry rescue remains.
func (p *Pool) releaseUnconfirmed(log *logrus.Entry, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	claims, err := p.ex.Store.claimsByToken(ctx, p.ex.owner(), token, p.ex.ttl())
	if err != nil {
		log.Warnf("stopping: an unconfirmed claim could not be resolved; its runs return when their lease lapses: %v", redactErr(err, p.ex.Store.dsn))
		return
	}
	p.releaseWithin(ctx, log, claims)
}

// release puts claims that were never started back in the queue without
// using an attempt (the pool is stopping), within 10 seconds.
func (p *Pool) release(claims []*Claim) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.releaseWithin(ctx, p.ex.logger().WithField("owner", p.ex.owner()), claims)
}

func (p *Pool) releaseWithin(ctx context.Context, log *logrus.Entry, claims []*Claim) {
	for _, c := range claims {
		if err := p.ex.Store.Release(ctx, c, "released at shutdown before it started"); err != nil {
			log.WithField("run_id", c.Run.ID).Warnf("stopping: release: %v", redactErr(err, p.ex.Store.dsn))
		}
	}
}

func (p *Pool) worker() {
	defer p.workers.Done()
	for c := range p.work {
		p.execute(c)
	}
}

// execute runs one claimed run, frees its worker at once, and hands its
// outcome to the group-committing completer (asynchronously: the worker
// takes the next run while the commit is pending).
func (p *Pool) execute(c *Claim) {
	var f *Finish
	if p.runCtx.Err() != nil {
		f = &Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true,
			ErrorMessage: "released at shutdown before it started", NotBefore: p.ex.clock().Now()}
	} else if !c.slotted && p.cfg.ConnectionShare > 0 {
		// Claimed past its connection's share (a safety net: the batch
		// size keeps below it): give it back.
		f = &Finish{Status: StatusQueued, AttemptStatus: AttemptReleased, Snoozed: true, NotBefore: p.ex.clock().Now().Add(200 * time.Millisecond),
			ErrorMessage: fmt.Sprintf("its connection already has its share of this instance's workers (%d): released for later, no attempt used", p.cfg.ConnectionShare)}
	} else {
		f = p.ex.execute(p.runCtx, c)
		if c.slotted {
			p.releaseConns(c.Run.Job)
		}
	}
	p.pending.Add(1)
	if f == nil { // lease lost: nothing to record
		p.busy.Add(-1)
		p.signalFreed()
		p.recorded(c, nil, fmt.Errorf("jobs: run %d: %w", c.Run.ID, ErrLeaseLost))
		return
	}
	p.comp.submit(c, *f, func(err error) {
		if err == nil || errors.Is(err, ErrLeaseLost) {
			p.recorded(c, f, err)
			return
		}
		// The database failed: retry off the completer's goroutine
		// (recordAgain first checks whether the group commit landed after
		// all: an ambiguous commit).
		go func() { p.recorded(c, f, p.ex.recordAgain(p.runCtx, c, f)) }()
	})
	// Free the worker only once the outcome is queued for commit: while
	// commits stall, no more runs are claimed to wait without heartbeats.
	p.busy.Add(-1)
	p.signalFreed()
}

// recorded ends a claim's life in the pool once its outcome is stored (or
// could not be).
func (p *Pool) recorded(c *Claim, f *Finish, err error) {
	switch {
	case err == nil:
		if p.ex.Observer != nil {
			p.ex.Observer.AttemptFinished(c.Run.Job, f.AttemptStatus, f.Status, p.ex.clock().Since(c.Started))
		}
		if len(f.Links) > 0 {
			p.Wake() // linked runs were enqueued with the outcome
		}
	case !errors.Is(err, ErrLeaseLost):
		p.ex.logger().WithFields(logrus.Fields{"run_id": c.Run.ID, "job": c.Run.Job}).Errorf("outcome not recorded: %v", err)
	}
	p.pending.Add(-1)
	p.signalFreed()
	p.runs.Done()
}

func (p *Pool) signalFreed() {
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

func (p *Pool) rescueLoop(ctx context.Context) {
	defer p.loops.Done()
	ttl := p.ex.ttl()
	// healthySince is when this instance last saw the database answer
	// again (start-up counts as that): expired leases are rescued only a
	// lease TTL after it, so that their owners, cut off by the same
	// outage, can renew them or record their outcomes first.
	healthySince := p.ex.clock().Now()
	healthy := true
	maxSelect := min(2*time.Second, max(ttl/5, 100*time.Millisecond))
	for {
		// The interval is jittered (±25%) so that rescues do not fall on
		// the same instant as every claim poll, which holds the rows a
		// rescue must lock.
		wait := p.cfg.RescueInterval/4*3 + time.Duration(rand.Int64N(int64(p.cfg.RescueInterval/2)+1))
		select {
		case <-ctx.Done():
			return
		case <-p.ex.clock().After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, maxSelect)
		start := p.ex.clock().Now()
		err := p.ex.Store.Ping(pctx)
		cancel()
		if err != nil || p.ex.clock().Since(start) > maxSelect {
			healthy = false
			continue
		}
		if !healthy {
			healthy, healthySince = true, p.ex.clock().Now()
			p.ex.logger().WithField("wait", ttl).Info("rescue: the database answers again; expired leases are rescued only after one lease TTL, so their owners can renew them or record their outcomes first")
		}
		if p.ex.clock().Since(healthySince) < ttl {
			continue
		}
		for ctx.Err() == nil {
			n, err := p.ex.Store.RescueExpiredWithin(ctx, 100, maxSelect)
			if errors.Is(err, ErrRescueTooSlow) {
				healthy = false
				p.ex.logger().Warnf("rescue: %v", err)
				break
			}
			if err != nil && ctx.Err() == nil {
				p.ex.logger().Warnf("rescue: %s", redactErr(err, p.ex.Store.dsn))
			}
			if n == 0 {
				break
			}
			p.ex.logger().WithField("runs", n).Warn("rescued runs whose worker stopped renewing its lease")
			if p.cfg.Observer != nil {
				p.cfg.Observer.LeasesRescued(n)
			}
			p.Wake()
		}
	}
}

func sleepCtx(ctx context.Context, clock clockwork.Clock, d time.Duration) bool {
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}

// completer commits the outcomes of concurrent executions in groups: while
// one group commits, the next queues up, so many runs share one commit.
type completer struct {
	store *Store
	// ahead, when set, returns a claim to ride on the next commit (or
	// nil); took receives what it took.
	ahead func() *aheadClaim
	took  func(*aheadClaim, []*Claim, error)
	ch    chan *pending
	wg    sync.WaitGroup
	once  sync.Once
}

type pending struct {
	item finishItem
	// done receives the outcome's error (finish), or then is called with
	// it (submit).
	done chan error
	then func(error)
}

const maxCompleteBatch = 1000

func (c *completer) start(n int) {
	for i := 0; i < n; i++ {
		c.wg.Add(1)
		go c.loop()
	}
}

func (c *completer) stop() {
	c.once.Do(func() { close(c.ch) })
	c.wg.Wait()
}

func (c *completer) loop() {
	defer c.wg.Done()
	limit := min(maxCompleteBatch, c.store.batchRows())
	batch := make([]*pending, 0, limit)
	items := make([]finishItem, 0, limit)
	for first := range c.ch {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < limit {
			select {
			case p, ok := <-c.ch:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		items = items[:0]
		for _, p := range batch {
			items = append(items, p.item)
		}
		var ahead *aheadClaim
		var opts *claimOptions
		if c.ahead != nil {
			if ahead = c.ahead(); ahead != nil {
				opts = &ahead.opts
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs, claims, claimErr := c.store.finishAndClaim(ctx, items, opts)
		cancel()
		if ahead != nil {
			c.took(ahead, claims, claimErr)
		}
		for i, p := range batch {
			if p.then != nil {
				p.then(errs[i])
			} else {
				p.done <- errs[i]
			}
		}
	}
}

// submit queues one outcome; then is called with its commit's error.
func (c *completer) submit(cl *Claim, f Finish, then func(error)) {
	c.ch <- &pending{item: finishItem{Claim: cl, Finish: f}, then: then}
}

// finish queues one outcome and waits for its commit.
func (c *completer) finish(ctx context.Context, cl *Claim, f Finish) error {
	p := &pending{item: finishItem{Claim: cl, Finish: f}, done: make(chan error, 1)}
	select {
	case c.ch <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done: // buffered: the completer never waits for us
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trigger starts a run through the front door (Executor.Starter) and wakes
// this pool's workers when it was created; it is what the API does in a
// serving process (and what the bench measures).
func (p *Pool) Trigger(ctx context.Context, req StartRequest) (*Enqueued, error) {
	st := p.ex.Starter()
	st.Wake = p.Wake
	return st.Start(ctx, req)
}
