// Package notify owns run notifications: it turns finished runs into rows
// of a durable outbox (table notifications) and delivers them to webhooks
// (a signed JSON POST) and by e-mail (SMTP with STARTTLS and AUTH), with
// retries, without ever blocking or failing a run.
//
// # How it works
//
// A [Notifier] runs two loops. The scanner reads runs that reached a final
// status since its cursor (job_state '_notify'/'cursor', the lowest run id
// that may still need handling), decides per run and channel what to send,
// and in one transaction inserts the outbox rows, marks the runs handled
// (table notification_runs), updates the job's failure streak and advances
// the cursor. The deliverer claims due outbox rows, sends them, and marks
// them sent, or reschedules them with exponential backoff and jitter
// (capped at [Config.BackoffMax]) until [Config.MaxAttempts], after which
// they are failed with the last error recorded.
//
// # Events
//
// A job's notify.on lists failure, warning, success and completion
// (default failure). Each run sends at most one notification per channel,
// of the most specific kind that applies: recovery (the first success
// after a notified failure streak), failure (a failed run that starts a
// streak; further failures of the same streak send nothing), warning
// (succeeded_with_warnings), success (succeeded, with or without
// warnings), completion (any final status, every run, including the
// failures of a streak and cancelled runs). Cancelled runs neither start
// nor end a streak. Preview runs send nothing and leave the streak alone
// unless the job sets notify.preview, and then never count for a streak.
//
// # Guarantees
//
// Nothing is missed: a run is handled after it finishes, however late, and
// the cursor never passes a run that is still active or may not yet be
// committed. Nothing is decided twice: runs are marked handled in the
// same transaction as their outbox rows, the unique key (run_id, channel,
// kind) makes a second insert a no-op, and one scanner at a time holds
// the cursor row (FOR UPDATE SKIP LOCKED on MySQL).
//
// Delivery is at least once. A claim marks rows "sending" under a lease
// token with a lease expiry, in one transaction (FOR UPDATE SKIP LOCKED on
// MySQL), before anything is sent, so two instances never send the same
// row at the same time. A process that dies (or loses the database)
// between sending and recording "sent" leaves the row sending; when the
// lease lapses another claim sends it again. Receivers can deduplicate on
// the X-Jobrunner-Delivery header (webhooks) or the Message-ID (e-mail),
// both derived from the outbox row id.
//
// # Secrets
//
// Definitions name environment variables, never secrets. The values of
// every variable the definitions name (connection secrets, webhook secrets,
// the SMTP password) are replaced by "[REDACTED]" in payloads, e-mail
// bodies, recorded errors and logs.
package notify

import (
	"context"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

// Channels.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
)

// Kinds of notification; the first four are the events of notify.on.
const (
	KindFailure    = definitions.NotifyFailure
	KindWarning    = definitions.NotifyWarning
	KindSuccess    = definitions.NotifySuccess
	KindCompletion = definitions.NotifyCompletion
	KindRecovery   = "recovery"
	// KindWaiting: a run snoozed on a code (waiting for a platform or a
	// person) for longer than the job's notify.waitingAfter; once per run.
	KindWaiting = definitions.NotifyWaiting
)

// Outbox row statuses.
const (
	StatusPending = "pending"
	StatusSending = "sending"
	StatusSent    = "sent"
	StatusFailed  = "failed"
)

// Names of the bookkeeping values in job_state.
const (
	// CursorJob/CursorName hold the scanner's cursor: the lowest run id
	// that may still need handling.
	CursorJob  = "_notify"
	CursorName = "cursor"
	// StreakName (per job) holds the job's open failure streak as JSON.
	StreakName = "notify.failureStreak"
)

// Defaults of Config.
const (
	DefaultPollInterval   = 2 * time.Second
	DefaultMaxAttempts    = 20
	DefaultBackoffInitial = 10 * time.Second
	DefaultBackoffMax     = time.Hour
	DefaultLease          = 2 * time.Minute
	DefaultCommitMargin   = time.Minute
	DefaultWebhookTimeout = 10 * time.Second
	DefaultSMTPTimeout    = 30 * time.Second
	DefaultBatch          = 100
)

// Config configures a Notifier.
type Config struct {
	Store *jobs.Store
	// Definitions returns the current definitions (reloads take effect at
	// the next scan and delivery).
	Definitions func() *definitions.Set
	// Getenv reads secrets; default os.Getenv.
	Getenv func(string) string
	// Log gets one line per notification sent, retried or failed (never a
	// payload or a secret); default a logger that discards.
	Log *logrus.Logger
	// BaseURL is the dashboard's external address, e.g.
	// "https://jobrunner.example.com"; each notification links to
	// BaseURL + "/runs/{id}". Empty: no link.
	BaseURL string
	// Now is the clock for SQLite times and backoff; default time.Now.
	// (MySQL uses the database's clock for due times.)
	Now func() time.Time
	// PollInterval is how often both loops look for work; default 2s.
	PollInterval time.Duration
	// MaxAttempts per notification before it is failed; default 20.
	MaxAttempts int
	// BackoffInitial and BackoffMax shape the retry backoff (doubling,
	// 20% jitter); defaults 10s and 1h.
	BackoffInitial, BackoffMax time.Duration
	// Lease is how long a claimed notification is held before another
	// instance may send it again; default 2m. It must exceed the send
	// timeouts.
	Lease time.Duration
	// CommitMargin is how long an enqueue transaction may stay open: the
	// scanner's cursor passes a run id only when a later run was created
	// this long ago; default 1m.
	CommitMargin time.Duration
	// WebhookTimeout and SMTPTimeout bound one delivery; defaults 10s, 30s.
	WebhookTimeout, SMTPTimeout time.Duration
	// HTTPClient sends webhooks; default a client with WebhookTimeout that
	// does not follow redirects.
	HTTPClient *http.Client
	// SMTPRootCAs verifies the SMTP server's certificate; default the
	// system pool.
	SMTPRootCAs *x509.CertPool
	// OnOutcome, when set, is told each delivery's outcome once recorded
	// (outcome sent, retry or failed), for metrics; it must be fast.
	OnOutcome func(channel, kind, outcome string)
	// Batch is the most runs scanned, and notifications claimed, at once;
	// default 100.
	Batch int
	// Owner names this instance in logs.
	Owner string
	// Rand returns [0,1) for jitter; default math/rand/v2.
	Rand func() float64
}

// Notifier scans finished runs into the outbox and delivers it.
type Notifier struct {
	cfg  Config
	log  *logrus.Logger
	wake chan struct{}

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

// New returns a Notifier; call Start to run it.
func New(cfg Config) (*Notifier, error) {
	if cfg.Store == nil {
		return nil, errors.New("notify: Config.Store is required")
	}
	if cfg.Definitions == nil {
		return nil, errors.New("notify: Config.Definitions is required")
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = DefaultBackoffInitial
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffInitial {
		cfg.BackoffMax = cfg.BackoffInitial
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = DefaultWebhookTimeout
	}
	if cfg.SMTPTimeout <= 0 {
		cfg.SMTPTimeout = DefaultSMTPTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < 2*max(cfg.WebhookTimeout, cfg.SMTPTimeout) {
		cfg.Lease = 2 * max(cfg.WebhookTimeout, cfg.SMTPTimeout)
	}
	if cfg.CommitMargin <= 0 {
		cfg.CommitMargin = DefaultCommitMargin
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout:       cfg.WebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	log := cfg.Log
	if log == nil {
		log = logrus.New()
		log.Out = discard{}
	}
	return &Notifier{cfg: cfg, log: log, wake: make(chan struct{}, 1)}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Start runs the scanner and the deliverer until ctx is done or Stop is
// called. It returns at once; calling it twice does nothing.
func (n *Notifier) Start(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return
	}
	n.started = true
	ctx, n.cancel = context.WithCancel(ctx)
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.loop(ctx, "scan", func(ctx context.Context) (bool, error) {
			created, more, err := n.Scan(ctx)
			if err == nil {
				var w int
				w, err = n.ScanWaiting(ctx)
				created += w
			}
			if created > 0 {
				n.Wake()
			}
			return more, err
		}, nil)
	}()
	go func() {
		defer n.wg.Done()
		n.loop(ctx, "deliver", func(ctx context.Context) (bool, error) {
			done, err := n.Deliver(ctx)
			return done >= n.cfg.Batch, err
		}, n.wake)
	}()
}

// Stop stops both loops, waits for them and closes idle webhook
// connections; a delivery in flight is abandoned (its lease lapses and it
// is sent again later).
func (n *Notifier) Stop() {
	n.mu.Lock()
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	n.wg.Wait()
	n.cfg.HTTPClient.CloseIdleConnections()
}

// Wake makes the deliverer look for due notifications now.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// loop calls step every PollInterval (at once again while it reports
// more work), logging errors with backoff up to 30s.
func (n *Notifier) loop(ctx context.Context, name string, step func(context.Context) (bool, error), wake <-chan struct{}) {
	var wait time.Duration
	failures := 0
	for {
		more, err := step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			wait = min(n.cfg.PollInterval<<min(failures, 5), 30*time.Second)
			n.log.WithField("owner", n.cfg.Owner).Warnf("notifications: %s: %s (trying again in %s)", name, n.redactor().clean(err.Error()), wait)
		case more:
			failures, wait = 0, 0
		default:
			failures, wait = 0, n.cfg.PollInterval
		}
		if wait == 0 {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}
