package jobs

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The keys that name at most one run live in tables of their own, written
// only for the runs that have them (migration 0010): most runs have none,
// and a unique index on runs took an entry for every run.
//
//   - run_keys 'i:' || idempotency key → the run it made, for good;
//   - run_keys 'u:' || active key (the job's uniqueBy parameters) → the
//     run that holds it while that run is queued or running. The run that
//     ends does not delete it (no extra write on the finish path): the
//     next run with the key takes it over once the holder is final, with
//     a compare-and-swap on the holder's id (takeActive);
//   - run_ticks (job, scheduled_for) → the run of that schedule tick.
//
// A key taken by another run makes the insert fail with
// gorm.ErrDuplicatedKey, as the unique indexes of runs did, so Enqueue's
// callers see no difference; Prune deletes the keys of the runs it
// deletes.

// runKey is one row of run_keys.
type runKey struct {
	K     string `gorm:"column:k;primaryKey"`
	RunID int64
}

func (runKey) TableName() string { return "run_keys" }

// runTick is one row of run_ticks.
type runTick struct {
	Job          string    `gorm:"primaryKey"`
	ScheduledFor time.Time `gorm:"primaryKey"`
	RunID        int64
}

func (runTick) TableName() string { return "run_ticks" }

func idemKey(k string) string    { return "i:" + k }
func activeKey(uk string) string { return "u:" + uk }

// insertKeys stores the keys of r, just inserted in tx: its idempotency
// key, its active key and its tick. A key that names another run (an
// active key whose holder is still queued or running) fails with an
// error that is gorm.ErrDuplicatedKey.
func insertKeys(tx *gorm.DB, r *Run) error {
	if r.IdempotencyKey != nil {
		if err := tx.Create(&runKey{K: idemKey(*r.IdempotencyKey), RunID: r.ID}).Error; err != nil {
			return err
		}
	}
	if r.UniqueKey != nil {
		if err := takeActive(tx, *r.UniqueKey, r.ID); err != nil {
			return err
		}
	}
	if r.ScheduledFor != nil {
		if err := tx.Create(&runTick{Job: r.Job, ScheduledFor: r.ScheduledFor.UTC(), RunID: r.ID}).Error; err != nil {
			return err
		}
	}
	return nil
}

// takeActive makes run id the holder of active key uk: a new row, or the
// row of a holder that is final (or pruned). The key's row is read under
// a lock first, so that callers taking over one key wait for each other
// (taking it after a failed insert would upgrade the shared lock of the
// duplicate-key error, and two callers doing so deadlock). A holder that
// is queued or running, or an insert that meets a row stored meanwhile,
// fails with gorm.ErrDuplicatedKey.
func takeActive(tx *gorm.DB, uk string, id int64) error {
	k := activeKey(uk)
	q := tx
	if tx.Dialector.Name() != "sqlite" { // SQLite has one writer at a time, and no FOR UPDATE
		q = tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var holder []runKey
	if err := q.Where("k = ?", k).Find(&holder).Error; err != nil {
		return fmt.Errorf("read the holder of an active key: %w", err)
	}
	if len(holder) == 0 {
		return tx.Create(&runKey{K: k, RunID: id}).Error
	}
	var st []Status // none: the holder was pruned, its key is free too
	if err := tx.Model(&Run{}).Where("id = ?", holder[0].RunID).Pluck("status", &st).Error; err != nil {
		return fmt.Errorf("read the holder of an active key: %w", err)
	}
	if len(st) > 0 && !st[0].Final() {
		return gorm.ErrDuplicatedKey
	}
	res := tx.Model(&runKey{}).Where("k = ? AND run_id = ?", k, holder[0].RunID).Update("run_id", id)
	if res.Error != nil {
		return fmt.Errorf("take over an active key: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return gorm.ErrDuplicatedKey // another run took it first
	}
	return nil
}

// keyRun reads into got the run that key k of run_keys names; ok is false
// when there is none. With activeOnly a final run is as none.
func keyRun(db *gorm.DB, k string, activeOnly bool, got *Run) (ok bool, err error) {
	q := db.Where("id = (SELECT run_id FROM run_keys WHERE k = ?)", k)
	if activeOnly {
		q = q.Where("status IN ?", []Status{StatusQueued, StatusRunning})
	}
	err = q.Take(got).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	return err == nil, err
}

// tickRun reads into got the run of job's tick at; ok is false when
// there is none.
func tickRun(db *gorm.DB, job string, at time.Time, got *Run) (ok bool, err error) {
	err = db.Where("id = (SELECT run_id FROM run_ticks WHERE job = ? AND scheduled_for = ?)", job, at.UTC()).Take(got).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	return err == nil, err
}

// foundKeyRun is keyRun that reports a failed read as no run.
func foundKeyRun(db *gorm.DB, k string, activeOnly bool, got *Run) bool {
	ok, err := keyRun(db, k, activeOnly, got)
	return ok && err == nil
}
