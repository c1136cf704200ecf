package jobs

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jobrunner/jobrunner/migrations"
)

// dbTime reads a time an aggregate returned: a time.Time, or SQLite's
// text of one.
func dbTime(v any) (time.Time, bool) {
	switch x := v.(type) {
	case time.Time:
		return x.UTC(), true
	case []byte:
		return dbTime(string(x))
	case string:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05.999999999Z07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t.UTC(), true
			}
		}
	}
	return time.Time{}, false
}

// OverviewHours is how many hours an overview covers.
const OverviewHours = 24

// JobOverview is one job's runs over the last OverviewHours: by status,
// by hour of creation, the failure rate, and its queue now.
type JobOverview struct {
	Job string `json:"job"`
	// Counts are the runs created in the window, by current status.
	Counts map[Status]int `json:"counts"`
	// FailureRate is failed / finished (succeeded, with warnings, failed)
	// in the window; 0 when none finished.
	FailureRate float64 `json:"failureRate"`
	// Hours are the window's hours, oldest first.
	Hours []HourCount `json:"hours"`
	// Queued is the job's queue depth now; Waiting how many of those wait
	// after a snooze; OldestQueued when the oldest queued run was created.
	Queued       int        `json:"queued"`
	Waiting      int        `json:"waiting"`
	OldestQueued *time.Time `json:"oldestQueued,omitempty"`
}

// HourCount is one hour of a JobOverview: runs created then, by outcome.
type HourCount struct {
	Hour      time.Time `json:"hour"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	Other     int       `json:"other"`
}

// Overview returns, for every job with runs in the last OverviewHours or
// queued now (and every name in jobs), its JobOverview as of now, by job.
func (s *Store) Overview(ctx context.Context, now time.Time, jobNames []string) ([]JobOverview, error) {
	now = now.UTC()
	start := now.Truncate(time.Hour).Add(-(OverviewHours - 1) * time.Hour)
	hourExpr := "DATE_FORMAT(created_at, '%Y-%m-%d %H')"
	if s.dialect == migrations.SQLite {
		hourExpr = "strftime('%Y-%m-%d %H', created_at)"
	}
	var rows []struct {
		Job    string
		Status string
		H      string
		N      int
	}
	if err := s.db.WithContext(ctx).Raw("SELECT job, status, "+hourExpr+" AS h, COUNT(*) AS n FROM runs WHERE created_at >= ? GROUP BY job, status, h",
		start).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("jobs: overview: %w", err)
	}
	type queueRow struct {
		Job     string
		N       int
		Waiting int
		Oldest  any // a time (MySQL) or its text (SQLite's MIN of a DATETIME)
	}
	var queued []queueRow
	qrows, err := s.db.WithContext(ctx).Raw("SELECT job, COUNT(*) AS n, COALESCE(SUM(CASE WHEN snoozes > 0 THEN 1 ELSE 0 END), 0) AS waiting, MIN(created_at) AS oldest FROM runs WHERE status = ? GROUP BY job",
		string(StatusQueued)).Rows()
	if err != nil {
		return nil, fmt.Errorf("jobs: overview queue: %w", err)
	}
	for qrows.Next() {
		var q queueRow
		if err := qrows.Scan(&q.Job, &q.N, &q.Waiting, &q.Oldest); err != nil {
			qrows.Close()
			return nil, fmt.Errorf("jobs: overview queue: %w", err)
		}
		queued = append(queued, q)
	}
	qrows.Close()
	if err := qrows.Err(); err != nil {
		return nil, fmt.Errorf("jobs: overview queue: %w", err)
	}
	byJob := map[string]*JobOverview{}
	get := func(name string) *JobOverview {
		o := byJob[name]
		if o == nil {
			o = &JobOverview{Job: name, Counts: map[Status]int{}, Hours: make([]HourCount, OverviewHours)}
			for i := range o.Hours {
				o.Hours[i].Hour = start.Add(time.Duration(i) * time.Hour)
			}
			byJob[name] = o
		}
		return o
	}
	for _, n := range jobNames {
		get(n)
	}
	for _, r := range rows {
		o := get(r.Job)
		st := Status(r.Status)
		o.Counts[st] += r.N
		h, err := time.Parse("2006-01-02 15", r.H)
		if err != nil {
			continue
		}
		i := int(h.Sub(start) / time.Hour)
		if i < 0 || i >= OverviewHours {
			continue
		}
		switch st {
		case StatusSucceeded, StatusSucceededWithWarnings:
			o.Hours[i].Succeeded += r.N
		case StatusFailed:
			o.Hours[i].Failed += r.N
		default:
			o.Hours[i].Other += r.N
		}
	}
	for _, q := range queued {
		o := get(q.Job)
		o.Queued, o.Waiting = q.N, q.Waiting
		if t, ok := dbTime(q.Oldest); ok {
			o.OldestQueued = &t
		}
	}
	out := make([]JobOverview, 0, len(byJob))
	for _, o := range byJob {
		fin := o.Counts[StatusSucceeded] + o.Counts[StatusSucceededWithWarnings] + o.Counts[StatusFailed]
		if fin > 0 {
			o.FailureRate = float64(o.Counts[StatusFailed]) / float64(fin)
		}
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Job < out[j].Job })
	return out, nil
}
