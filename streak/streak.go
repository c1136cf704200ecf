// Package streak owns how a recurring failure is logged: the first
// failure of a streak is said in full, the repeats are counted and
// summarised at most once per interval, and the recovery is said once
// with how long and how often it failed. An outage of the database thus
// gives a handful of lines, not one per request or per second.
package streak

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// DefaultSummaryEvery is how often a streak's repeats are summarised.
const DefaultSummaryEvery = time.Minute

// Logger logs the failure streaks of one activity ("scheduler
// evaluation", "API database access"). It is safe for concurrent use.
// The zero value is not usable; use New.
type Logger struct {
	log   *logrus.Logger
	what  string
	level logrus.Level
	every time.Duration
	now   func() time.Time

	mu       sync.Mutex
	failing  bool
	since    time.Time
	failures int
	unsaid   int // failures since the last line
	lastLine time.Time
}

// New returns a Logger for activity what, logging failures at level
// (recoveries at info) to log (nil discards). every is the summary
// interval; 0 means DefaultSummaryEvery.
func New(log *logrus.Logger, what string, level logrus.Level, every time.Duration) *Logger {
	if every <= 0 {
		every = DefaultSummaryEvery
	}
	return &Logger{log: log, what: what, level: level, every: every, now: time.Now}
}

// Fail records one failure: the first of a streak is logged with err and
// fields; later ones are counted and summarised at most once per interval.
func (l *Logger) Fail(err error, fields logrus.Fields) {
	if l == nil {
		return
	}
	l.mu.Lock()
	now := l.now()
	first := !l.failing
	if first {
		l.failing, l.since, l.failures, l.unsaid, l.lastLine = true, now, 0, 0, now
	}
	l.failures++
	l.unsaid++
	summarise := !first && now.Sub(l.lastLine) >= l.every
	n, since, unsaid := l.failures, l.since, l.unsaid
	if first || summarise {
		l.unsaid, l.lastLine = 0, now
	}
	l.mu.Unlock()
	if l.log == nil {
		return
	}
	e := l.log.WithFields(fields).WithError(err)
	switch {
	case first:
		e.Log(l.level, l.what+" failed (further failures of this streak are counted, not logged one by one)")
	case summarise:
		e.WithFields(logrus.Fields{"failures": n, "since": since.UTC().Format(time.RFC3339)}).
			Logf(l.level, "%s still failing: %d more failures in the last %s (%d since %s)", l.what, unsaid, l.every, n, since.UTC().Format(time.RFC3339))
	}
}

// OK records a success: when it ends a streak, the recovery is logged
// once with the streak's length and number of failures.
func (l *Logger) OK() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if !l.failing {
		l.mu.Unlock()
		return
	}
	n, since := l.failures, l.since
	l.failing = false
	now := l.now()
	l.mu.Unlock()
	if l.log != nil {
		l.log.WithFields(logrus.Fields{"failures": n, "duration": now.Sub(since).Round(time.Second).String()}).
			Infof("%s recovered after %d failures over %s", l.what, n, now.Sub(since).Round(time.Second))
	}
}

// Failing reports whether a streak is in progress.
func (l *Logger) Failing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failing
}
