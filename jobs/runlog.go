package jobs

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/processors"
)

// maxLogMessage caps one stored log line (bytes); maxLogLines caps the
// lines stored per execution, after which one "truncated" line is kept.
const (
	maxLogMessage = 8 << 10
	maxLogLines   = 10000
)

// redactor is the shared secret-hiding rule set (processors.Redactor).
type redactor = processors.Redactor

// newRedactor returns the redactor of secrets: nil (hides nothing) for
// none, else one built once per distinct set of names and values and then
// shared (a Redactor is immutable), since every execution asks for one and
// building it was a sixth of an execution's CPU.
func newRedactor(secrets map[string]string) *redactor {
	if len(secrets) == 0 {
		return nil
	}
	names := make([]string, 0, len(secrets))
	size := 0
	for k, v := range secrets {
		names = append(names, k)
		size += len(k) + len(v) + 2
	}
	slices.Sort(names)
	var key strings.Builder
	key.Grow(size)
	for _, k := range names {
		key.WriteString(k)
		key.WriteByte(0)
		key.WriteString(secrets[k])
		key.WriteByte(0)
	}
	redactors.Lock()
	defer redactors.Unlock()
	if r, ok := redactors.m[key.String()]; ok {
		return r
	}
	if len(redactors.m) >= maxCachedRedactors || redactors.m == nil {
		redactors.m = map[string]*redactor{} // rotated secrets: start over
	}
	r := processors.NewRedactor(secrets)
	redactors.m[key.String()] = r
	return r
}

// redactors caches newRedactor's results.
var redactors struct {
	sync.Mutex
	m map[string]*redactor
}

const maxCachedRedactors = 256

// runLogger is the processors.Logger of one execution: it buffers lines
// for the store (flushed with heartbeats and with the outcome), redacts
// secrets, and mirrors each line to the process log with run fields.
type runLogger struct {
	runID, attempt int64
	// step is the index of the step being run (lines carry it).
	step   atomic.Int64
	red    *redactor
	mirror *runEntry

	mu      sync.Mutex
	buf     []LogLine
	total   int
	dropped int
	// pending is the attempt's start line, not yet formatted.
	pending *pendingLine
}

// started records the attempt's start line. It is formatted and buffered
// only when something else is logged or stored (see dropLoneStart).
func (l *runLogger) started(msg string, kv ...any) {
	if l.mirror != nil && l.mirror.logger.IsLevelEnabled(logrus.InfoLevel) {
		l.mirrorEntry(kv).Info(l.red.Redact(msg))
	}
	l.mu.Lock()
	l.pending = &pendingLine{msg: msg, kv: kv, ts: time.Now().UTC()}
	l.mu.Unlock()
}

type pendingLine struct {
	msg string
	kv  []any
	ts  time.Time
}

// dropLoneStart forgets the start line when nothing else was logged and
// nothing was stored yet: a quick, clean success is fully described by its
// attempt record, and one log row less per run is throughput.
func (l *runLogger) dropLoneStart() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total == 0 {
		l.pending = nil
	}
}

// materialize buffers the pending start line; l.mu must be held.
func (l *runLogger) materialize() {
	if p := l.pending; p != nil {
		l.pending = nil
		l.buf = append(l.buf, l.line("info", p.msg, p.kv, p.ts))
		l.total++
	}
}

func (l *runLogger) Debug(msg string, kv ...any) { l.add("debug", msg, kv) }
func (l *runLogger) Info(msg string, kv ...any)  { l.add("info", msg, kv) }
func (l *runLogger) Warn(msg string, kv ...any)  { l.add("warn", msg, kv) }
func (l *runLogger) Error(msg string, kv ...any) { l.add("error", msg, kv) }

func (l *runLogger) add(level, msg string, kv []any) {
	line := l.line(level, msg, kv, time.Now().UTC())
	if l.mirror != nil {
		if lv, err := logrus.ParseLevel(level); err == nil && l.mirror.logger.IsLevelEnabled(lv) {
			l.mirrorEntry(kv).Log(lv, line.Message)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.materialize()
	if l.total >= maxLogLines {
		l.dropped++
		return
	}
	l.total++
	l.buf = append(l.buf, line)
}

// mirrorEntry is the process-log entry of a run line with its fields as
// f.KEY (redacted).
func (l *runLogger) mirrorEntry(kv []any) *logrus.Entry {
	if len(kv) == 0 {
		return l.mirror.entry()
	}
	f := make(logrus.Fields, (len(kv)+1)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		f["f."+l.red.Redact(fmt.Sprint(kv[i]))] = l.red.Redact(fmt.Sprint(kv[i+1]))
	}
	return l.mirror.entry().WithFields(f)
}

// runEntry is a run's process-log entry (its run_id, job and attempt
// fields), built on first use: most runs log nothing to the process log,
// and building it for each was a tenth of the executor's CPU.
type runEntry struct {
	logger *logrus.Logger
	run    *Run
	once   sync.Once
	e      *logrus.Entry
}

func (r *runEntry) entry() *logrus.Entry {
	r.once.Do(func() {
		r.e = r.logger.WithFields(logrus.Fields{"run_id": r.run.ID, "job": r.run.Job, "attempt": r.run.AttemptsUsed()})
	})
	return r.e
}

// line formats one stored log line: secrets redacted, sizes capped.
func (l *runLogger) line(level, msg string, kv []any, ts time.Time) LogLine {
	msg = l.red.Redact(msg)
	if len(msg) > maxLogMessage {
		msg = msg[:maxLogMessage] + "…(truncated)"
	}
	line := LogLine{RunID: l.runID, Attempt: int(l.attempt), StepIndex: int(l.step.Load()), Ts: ts, Level: level, Message: msg}
	if len(kv) > 0 {
		fields := make(map[string]string, (len(kv)+1)/2)
		for i := 0; i < len(kv); i += 2 {
			k := l.red.Redact(fmt.Sprint(kv[i]))
			v := "(missing)"
			if i+1 < len(kv) {
				v = l.red.Redact(fmt.Sprint(kv[i+1]))
			}
			if len(v) > maxLogMessage {
				v = v[:maxLogMessage] + "…(truncated)"
			}
			fields[k] = v
		}
		b, _ := json.Marshal(fields)
		line.Fields = JSONText(b)
	}
	return line
}

// take returns and clears the buffered lines; with final it appends a line
// counting the lines dropped over the cap.
func (l *runLogger) take(final bool) []LogLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.materialize()
	out := l.buf
	l.buf = nil
	if final && l.dropped > 0 {
		out = append(out, LogLine{RunID: l.runID, Attempt: int(l.attempt), StepIndex: int(l.step.Load()), Ts: time.Now().UTC(), Level: "warn",
			Message: fmt.Sprintf("%d more log lines were dropped (limit %d per attempt)", l.dropped, maxLogLines)})
		l.dropped = 0
	}
	return out
}

// hasLines reports whether lines (other than a lone start line) wait to
// be stored.
func (l *runLogger) hasLines() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buf) > 0
}

// setStep makes later lines carry step index i.
func (l *runLogger) setStep(i int) { l.step.Store(int64(i)) }

// putBack returns lines that could not be stored to the front of the
// buffer, to be stored with the next flush.
func (l *runLogger) putBack(lines []LogLine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(lines, l.buf...)
}
