package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// Instance is one `serve` process as it last reported itself.
type Instance struct {
	// Owner is the lease owner name its runs carry (host:pid).
	Owner     string `json:"owner"`
	Version   string `json:"version"`
	Workers   int    `json:"workers"`
	Busy      int    `json:"busy"`
	Scheduler bool   `json:"scheduler"`
	HTTPAddr  string `json:"httpAddr,omitempty"`
	// Unrunnable are the jobs it does not claim, and why (a missing
	// secret, a processor not in this binary).
	Unrunnable map[string]string `json:"unrunnable"`
	// Serves lists the connections and labels it was told to serve
	// (serve --connections); empty: every connection.
	Serves []string `json:"serves"`
	// ClockSkew is its clock minus the database's, in milliseconds.
	ClockSkewMs int64     `json:"clockSkewMs"`
	StartedAt   time.Time `json:"startedAt"`
	HeartbeatAt time.Time `json:"heartbeatAt"`
	// Live is false once its heartbeat is older than InstanceGone.
	Live bool `json:"live"`
}

// InstanceEvery is how often serve writes its instance row; InstanceGone
// how old a row's heartbeat may be before the instance counts as gone;
// InstanceForget when a gone instance's row is deleted.
const (
	InstanceEvery  = 5 * time.Second
	InstanceGone   = 30 * time.Second
	InstanceForget = 24 * time.Hour
)

type instanceRow struct {
	Owner       string
	Version     string
	Workers     int
	Busy        int
	Scheduler   bool
	HTTPAddr    string
	Unrunnable  string
	Serves      string
	ClockSkewMs int64
	StartedAt   time.Time
	HeartbeatAt time.Time
}

// ReportInstance writes in's row (heartbeat now).
func (s *Store) ReportInstance(ctx context.Context, in Instance) error {
	un, err := json.Marshal(in.Unrunnable)
	if err != nil {
		return fmt.Errorf("jobs: report instance: %w", err)
	}
	row := map[string]any{"owner": truncate(in.Owner, 200), "version": truncate(in.Version, 100), "workers": in.Workers, "busy": in.Busy,
		"scheduler": in.Scheduler, "http_addr": truncate(in.HTTPAddr, 200), "unrunnable": string(un), "serves": truncate(strings.Join(in.Serves, ","), 2000), "clock_skew_ms": in.ClockSkewMs,
		"started_at": in.StartedAt.UTC(), "heartbeat_at": time.Now().UTC()}
	err = s.db.WithContext(ctx).Table("instances").Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "owner"}},
		DoUpdates: clause.AssignmentColumns([]string{"version", "workers", "busy", "scheduler", "http_addr", "unrunnable", "serves", "clock_skew_ms", "started_at", "heartbeat_at"}),
	}).Create(row).Error
	if err != nil {
		return fmt.Errorf("jobs: report instance %s: %w", in.Owner, err)
	}
	return nil
}

// RemoveInstance deletes owner's row (a clean stop).
func (s *Store) RemoveInstance(ctx context.Context, owner string) error {
	if err := s.db.WithContext(ctx).Exec("DELETE FROM instances WHERE owner = ?", owner).Error; err != nil {
		return fmt.Errorf("jobs: remove instance %s: %w", owner, err)
	}
	return nil
}

// Instances returns the instances that reported within InstanceForget,
// live ones first, by owner; older rows are deleted on the way.
func (s *Store) Instances(ctx context.Context) ([]Instance, error) {
	now := time.Now().UTC()
	_ = s.db.WithContext(ctx).Exec("DELETE FROM instances WHERE heartbeat_at < ?", now.Add(-InstanceForget)).Error
	var rows []instanceRow
	if err := s.db.WithContext(ctx).Table("instances").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("jobs: read instances: %w", err)
	}
	out := make([]Instance, 0, len(rows))
	for _, r := range rows {
		in := Instance{Owner: r.Owner, Version: r.Version, Workers: r.Workers, Busy: r.Busy, Scheduler: r.Scheduler, HTTPAddr: r.HTTPAddr,
			ClockSkewMs: r.ClockSkewMs, StartedAt: r.StartedAt.UTC(), HeartbeatAt: r.HeartbeatAt.UTC(), Unrunnable: map[string]string{}}
		_ = json.Unmarshal([]byte(r.Unrunnable), &in.Unrunnable)
		in.Serves = []string{}
		if r.Serves != "" {
			in.Serves = strings.Split(r.Serves, ",")
		}
		in.Live = now.Sub(in.HeartbeatAt) < InstanceGone
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Live != out[j].Live {
			return out[i].Live
		}
		return out[i].Owner < out[j].Owner
	})
	return out, nil
}
