package jobs

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/definitions"
)

// PauseKind says what a [Pause] holds back.
type PauseKind string

// Pause kinds.
const (
	// PauseJob holds back a job: its schedule fires nothing and its queued
	// runs are not claimed.
	PauseJob PauseKind = "job"
	// PauseSchedule holds back a job's schedule only; triggered runs run.
	PauseSchedule PauseKind = "schedule"
	// PauseConnection holds back every run that would call a connection
	// (its job's, a step's or a push's): they stay queued, no attempt used.
	PauseConnection PauseKind = "connection"
)

// Valid reports whether k is a known kind.
func (k PauseKind) Valid() bool {
	return k == PauseJob || k == PauseSchedule || k == PauseConnection
}

// Pause is one active pause.
type Pause struct {
	Kind PauseKind `json:"kind"`
	Name string    `json:"name"`
	// Until is when it ends by itself; nil: until resumed.
	Until  *time.Time `json:"until,omitempty"`
	Reason string     `json:"reason"`
	By     string     `json:"by"`
	Since  time.Time  `json:"since"`
}

// ErrBadPause is returned by [Store.Pause] for a pause that cannot be
// stored (unknown kind, empty name, an end in the past).
var ErrBadPause = errors.New("jobs: bad pause")

type pauseRow struct {
	Kind      string
	Name      string
	UntilAt   *time.Time
	Reason    string
	PausedBy  string
	CreatedAt time.Time
}

// Pause stores p (replacing a pause of the same kind and name). A zero
// Since is now. It returns an error wrapping ErrBadPause for an unknown
// kind, an empty name or an Until not in the future.
func (s *Store) Pause(ctx context.Context, p Pause) error {
	return putPause(s.db.WithContext(ctx), p)
}

func putPause(db *gorm.DB, p Pause) error {
	now := time.Now().UTC()
	switch {
	case !p.Kind.Valid():
		return fmt.Errorf("%w: unknown kind %q (want job, schedule or connection)", ErrBadPause, p.Kind)
	case p.Name == "" || len(p.Name) > 100:
		return fmt.Errorf("%w: a name of 1 to 100 characters is required", ErrBadPause)
	case p.Until != nil && !p.Until.After(now):
		return fmt.Errorf("%w: until %s is not in the future", ErrBadPause, p.Until.UTC().Format(time.RFC3339))
	}
	if p.Since.IsZero() {
		p.Since = now
	}
	var until *time.Time
	if p.Until != nil {
		u := p.Until.UTC()
		until = &u
	}
	row := map[string]any{"kind": string(p.Kind), "name": p.Name, "until_at": until, "reason": truncate(p.Reason, 500),
		"paused_by": truncate(p.By, 200), "created_at": p.Since.UTC()}
	err := db.Table("pauses").Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "kind"}, {Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{"until_at", "reason", "paused_by", "created_at"}),
	}).Create(row).Error
	if err != nil {
		return fmt.Errorf("jobs: pausing %s %s: %w", p.Kind, p.Name, err)
	}
	return nil
}

// PauseAtLeast stores p unless a pause of the same kind and name already
// lasts at least as long (one until resumed, or one ending later): the
// circuit breaker never shortens an operator's pause.
func (s *Store) PauseAtLeast(ctx context.Context, p Pause) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var cur pauseRow
		err := tx.Table("pauses").Where("kind = ? AND name = ?", string(p.Kind), p.Name).Take(&cur).Error
		if err == nil && (cur.UntilAt == nil || (p.Until != nil && !cur.UntilAt.Before(*p.Until))) {
			return nil
		}
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("jobs: reading the pause of %s %s: %w", p.Kind, p.Name, err)
		}
		return putPause(tx, p)
	})
}

// Resume removes the pause of kind and name; it reports whether there
// was one (an expired one counts as none).
func (s *Store) Resume(ctx context.Context, kind PauseKind, name string) (bool, error) {
	now := time.Now().UTC()
	res := s.db.WithContext(ctx).Exec("DELETE FROM pauses WHERE kind = ? AND name = ? AND (until_at IS NULL OR until_at > ?)", string(kind), name, now)
	if res.Error != nil {
		return false, fmt.Errorf("jobs: resuming %s %s: %w", kind, name, res.Error)
	}
	return res.RowsAffected > 0, nil
}

// Pauses returns the active pauses (not yet ended), by kind and name;
// ended ones are deleted on the way.
func (s *Store) Pauses(ctx context.Context) ([]Pause, error) {
	now := time.Now().UTC()
	var rows []pauseRow
	if err := s.db.WithContext(ctx).Table("pauses").Order("kind, name").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("jobs: reading pauses: %w", err)
	}
	out := make([]Pause, 0, len(rows))
	expired := false
	for _, r := range rows {
		if r.UntilAt != nil && !r.UntilAt.After(now) {
			expired = true
			continue
		}
		p := Pause{Kind: PauseKind(r.Kind), Name: r.Name, Reason: r.Reason, By: r.PausedBy, Since: r.CreatedAt.UTC()}
		if r.UntilAt != nil {
			u := r.UntilAt.UTC()
			p.Until = &u
		}
		out = append(out, p)
	}
	if expired {
		_ = s.db.WithContext(ctx).Exec("DELETE FROM pauses WHERE until_at IS NOT NULL AND until_at <= ?", now).Error
	}
	return out, nil
}

// Held is what holds a job back at a time: the pauses and maintenance
// windows that apply to it. Build it with [HeldJobs].
type Held struct {
	// Job and Schedule are the job's own pauses (nil: none).
	Job, Schedule *Pause
	// Connection is the first paused connection the job calls, and
	// Window the first of its connections in a maintenance window.
	Connection *Pause
	Window     *definitions.WindowHit
}

// Runs reports whether the job's queued runs are held back.
func (h Held) Runs() bool { return h.Job != nil || h.Connection != nil || h.Window != nil }

// Ticks reports whether the job's schedule is held back.
func (h Held) Ticks() bool { return h.Runs() || h.Schedule != nil }

// Why says what holds the job back ("" for nothing).
func (h Held) Why() string {
	switch {
	case h.Job != nil:
		return "job paused" + pauseText(h.Job)
	case h.Connection != nil:
		return "connection " + h.Connection.Name + " paused" + pauseText(h.Connection)
	case h.Window != nil:
		return fmt.Sprintf("connection %s in a maintenance window until %s", h.Window.Connection, h.Window.Ends.UTC().Format(time.RFC3339))
	case h.Schedule != nil:
		return "schedule paused" + pauseText(h.Schedule)
	}
	return ""
}

func pauseText(p *Pause) string {
	s := " by " + p.By
	if p.Until != nil {
		s += " until " + p.Until.UTC().Format(time.RFC3339)
	}
	if p.Reason != "" {
		s += ": " + p.Reason
	}
	return s
}

// HeldJobs returns, for each job of set held back at now by pauses or a
// maintenance window of a connection it calls, what holds it.
func HeldJobs(set *definitions.Set, pauses []Pause, now time.Time) map[string]Held {
	byKey := map[PauseKind]map[string]*Pause{}
	for i := range pauses {
		p := &pauses[i]
		if byKey[p.Kind] == nil {
			byKey[p.Kind] = map[string]*Pause{}
		}
		byKey[p.Kind][p.Name] = p
	}
	out := map[string]Held{}
	if set == nil {
		return out
	}
	for _, j := range set.Jobs {
		h := Held{Job: byKey[PauseJob][j.Name], Schedule: byKey[PauseSchedule][j.Name]}
		for _, cn := range jobConnections(j) {
			if p := byKey[PauseConnection][cn]; p != nil && h.Connection == nil {
				h.Connection = p
			}
			if c, ok := set.Connection(cn); ok && h.Window == nil {
				if hit, in := c.InMaintenance(now); in {
					h.Window = &hit
				}
			}
		}
		if h.Ticks() {
			out[j.Name] = h
		}
	}
	return out
}

// jobConnections lists the connections a job's runs call, sorted.
func jobConnections(j *definitions.Job) []string {
	seen := map[string]bool{}
	for _, st := range j.RunSteps() {
		if st.Connection != "" {
			seen[st.Connection] = true
		}
	}
	if j.Push != nil && j.Push.Connection != "" {
		seen[j.Push.Connection] = true
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}
