package jobs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jobrunner/jobrunner/migrations"

	"github.com/jobrunner/jobrunner/recordsync"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// syncMarkState is the job_state name under which a sync's mark is kept
// (the same name OrderStatusSync used for its high-water mark).
const syncMarkState = "highWaterMark"

var _ recordsync.Store = (*Store)(nil)

// SyncMark returns the job's sync mark (job_state highWaterMark, RFC
// 3339), false when none is stored. It implements [recordsync.Store].
func (s *Store) SyncMark(ctx context.Context, job string) (time.Time, bool, error) {
	v, ok, err := s.JobState(ctx, job, syncMarkState)
	if err != nil || !ok || v == "" {
		return time.Time{}, false, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("jobs: the stored sync mark %q of %s is not RFC 3339: %w", v, job, err)
	}
	return t, true, nil
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// SyncDone returns which of keys are resolved for the job: in sync_done
// or sync_pending. It implements [recordsync.Store].
func (s *Store) SyncDone(ctx context.Context, job string, keys []string) (map[string]bool, error) {
	out := make(map[string]bool)
	if len(keys) == 0 {
		return out, nil
	}
	for _, table := range []string{"sync_done", "sync_pending"} {
		for start := 0; start < len(keys); start += 500 {
			chunk := keys[start:min(start+500, len(keys))]
			var found []string
			if err := s.db.WithContext(ctx).Table(table).Where("job = ? AND change_key IN ?", job, chunk).Pluck("change_key", &found).Error; err != nil {
				return nil, fmt.Errorf("jobs: reading the resolved changes of sync %s: %w", job, err)
			}
			for _, k := range found {
				out[k] = true
			}
		}
	}
	return out, nil
}

type syncPendingRow struct {
	Job       string
	ChangeKey string
	Subject   string
	ChangedUs int64
	Data      string
	Attempts  int
	Code      string
	Message   string
	FirstAt   time.Time
	UpdatedAt time.Time
}

// SyncPending returns up to limit pending changes of the job with a key
// after after, in key order. It implements [recordsync.Store].
func (s *Store) SyncPending(ctx context.Context, job, after string, limit int) ([]recordsync.Pending, error) {
	var rows []syncPendingRow
	if err := s.db.WithContext(ctx).Table("sync_pending").Where("job = ? AND change_key > ?", job, after).
		Order("change_key").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("jobs: reading the pending changes of sync %s: %w", job, err)
	}
	out := make([]recordsync.Pending, len(rows))
	for i, r := range rows {
		var t time.Time
		if r.ChangedUs != 0 {
			t = time.UnixMicro(r.ChangedUs).UTC()
		}
		out[i] = recordsync.Pending{Change: recordsync.Change{Key: r.ChangeKey, Subject: r.Subject, Time: t, Data: []byte(r.Data)},
			Attempts: r.Attempts, Code: r.Code, Message: r.Message, First: r.FirstAt.UTC()}
	}
	return out, nil
}

// SyncPendingCount returns how many changes of the job are pending.
func (s *Store) SyncPendingCount(ctx context.Context, job string) (int64, error) {
	var n int64
	if err := s.db.WithContext(ctx).Table("sync_pending").Where("job = ?", job).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("jobs: counting the pending changes of sync %s: %w", job, err)
	}
	return n, nil
}

// SyncCommit writes one group commit of the job's sync in one
// transaction: done keys, pending changes, dropped ones, and the mark
// (done keys older than the mark are deleted). It implements
// [recordsync.Store].
func (s *Store) SyncCommit(ctx context.Context, job string, c recordsync.Commit) error {
	now := time.Now().UTC()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(c.Done) > 0 {
			ignore := "INSERT IGNORE"
			if s.dialect == migrations.SQLite {
				ignore = "INSERT OR IGNORE"
			}
			keys := make([]string, len(c.Done))
			for i, d := range c.Done {
				keys[i] = d.Key
			}
			for start := 0; start < len(keys); start += 500 {
				end := min(start+500, len(keys))
				var sb strings.Builder
				sb.WriteString(ignore + " INTO sync_done (job, change_key, changed_us) VALUES ")
				args := make([]any, 0, 3*(end-start))
				for i, d := range c.Done[start:end] {
					if i > 0 {
						sb.WriteString(", ")
					}
					sb.WriteString("(?, ?, ?)")
					args = append(args, job, d.Key, micros(d.Time))
				}
				if err := tx.Exec(sb.String(), args...).Error; err != nil {
					return fmt.Errorf("recording done changes: %w", err)
				}
				if err := tx.Exec("DELETE FROM sync_pending WHERE job = ? AND change_key IN ?", job, keys[start:end]).Error; err != nil {
					return fmt.Errorf("removing delivered pending changes: %w", err)
				}
			}
		}
		if len(c.Drop) > 0 {
			if err := tx.Exec("DELETE FROM sync_pending WHERE job = ? AND change_key IN ?", job, c.Drop).Error; err != nil {
				return fmt.Errorf("removing superseded pending changes: %w", err)
			}
		}
		for _, p := range c.Park {
			first := p.First
			if first.IsZero() {
				first = now
			}
			row := map[string]any{"job": job, "change_key": p.Key, "subject": truncate(p.Subject, 200), "changed_us": micros(p.Time),
				"data": string(p.Data), "attempts": p.Attempts, "code": truncate(p.Code, 100), "message": truncate(p.Message, 1000),
				"first_at": first, "updated_at": now}
			if err := tx.Table("sync_pending").Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "job"}, {Name: "change_key"}},
				DoUpdates: clause.AssignmentColumns([]string{"attempts", "code", "message", "updated_at"}),
			}).Create(row).Error; err != nil {
				return fmt.Errorf("carrying a pending change: %w", err)
			}
		}
		if !c.Mark.IsZero() {
			mark := c.Mark.UTC().Format(time.RFC3339Nano)
			if err := tx.Table("job_state").Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "job"}, {Name: "name"}},
				DoUpdates: clause.AssignmentColumns([]string{"value", "updated_at"}),
			}).Create(map[string]any{"job": job, "name": syncMarkState, "value": mark, "updated_at": now}).Error; err != nil {
				return fmt.Errorf("storing the mark: %w", err)
			}
			if err := tx.Exec("DELETE FROM sync_done WHERE job = ? AND changed_us < ?", job, c.Mark.UnixMicro()).Error; err != nil {
				return fmt.Errorf("forgetting done changes below the mark: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: committing sync %s: %w", job, err)
	}
	return nil
}

// truncate cuts s to at most n bytes (on a rune boundary).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n]
}
