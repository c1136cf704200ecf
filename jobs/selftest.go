package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/migrations"
)

// ErrSkipLockedUnsupported is returned by CheckSkipLocked on a server where
// SELECT … FOR UPDATE SKIP LOCKED does not skip locked rows (MySQL before
// 8.0.1, MariaDB before 10.6, TiDB): workers there could run a run twice.
var ErrSkipLockedUnsupported = errors.New("jobs: the database does not honour SELECT … FOR UPDATE SKIP LOCKED")

// CheckSkipLocked proves with two connections that a row locked by one
// transaction is skipped, not returned and not waited for, by another's
// FOR UPDATE SKIP LOCKED. SQLite (one writer) passes trivially.
func (s *Store) CheckSkipLocked(ctx context.Context) error {
	if s.dialect != migrations.MySQL {
		return nil
	}
	const job, name = "_jobrunner", "_skip_locked_selftest"
	if err := s.db.WithContext(ctx).Exec("INSERT IGNORE INTO job_state (job, name, value, updated_at) VALUES (?, ?, '', ?)", job, name, time.Now().UTC()).Error; err != nil {
		return fmt.Errorf("jobs: SKIP LOCKED self-test: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	holder := s.db.WithContext(ctx).Begin()
	if holder.Error != nil {
		return fmt.Errorf("jobs: SKIP LOCKED self-test: begin: %w", holder.Error)
	}
	defer holder.Rollback()
	var n int64
	if err := holder.Table("job_state").Where("job = ? AND name = ?", job, name).Clauses(clause.Locking{Strength: "UPDATE"}).Count(&n).Error; err != nil {
		return fmt.Errorf("jobs: SKIP LOCKED self-test: lock: %w", err)
	}
	var got []string
	// A short lock wait on a pinned connection, restored before it goes
	// back to the pool: if SKIP LOCKED is not honoured the probe waits (and
	// fails) instead of skipping.
	err := s.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if err := conn.Exec("SET SESSION innodb_lock_wait_timeout = 2").Error; err != nil {
			return err
		}
		defer conn.Exec("SET SESSION innodb_lock_wait_timeout = DEFAULT")
		return conn.Transaction(func(tx *gorm.DB) error {
			return tx.Table("job_state").Select("name").Where("job = ? AND name = ?", job, name).
				Clauses(clause.Locking{Strength: "UPDATE", Options: "SKIP LOCKED"}).Find(&got).Error
		})
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSkipLockedUnsupported, err)
	}
	if len(got) != 0 {
		return fmt.Errorf("%w: a locked row was returned", ErrSkipLockedUnsupported)
	}
	return nil
}

// OpenWait is Open that waits for the database: connection errors are
// retried with backoff (up to 10s apart, logged) until ctx is done. A bad
// DSN, and a server that refuses the user or does not have the database
// (ErrDatabaseRefused, with the server's message and a hint), fail at
// once.
func OpenWait(ctx context.Context, dsn string, opts OpenOptions, log *logrus.Logger) (*Store, error) {
	delay := 250 * time.Millisecond
	for {
		s, err := Open(ctx, dsn, opts)
		if err == nil || errors.Is(err, ErrBadDSN) || errors.Is(err, ErrDatabaseRefused) {
			return s, err
		}
		if log != nil {
			log.Warnf("database not reachable yet, retrying in %s: %v", delay, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("jobs: gave up waiting for the database: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}
