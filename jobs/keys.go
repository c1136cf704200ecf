package jobs

import (
	"database/sql"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
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
//     a compare-and-swap on the holder's id (takeKey);
//   - run_ticks (job, scheduled_for) → the run of that schedule tick.
//
// A key taken by another run makes the insert fail with
// gorm.ErrDuplicatedKey, as the unique indexes of runs did, so Enqueue's
// callers see no difference; Prune deletes the keys of the runs it
// deletes, in the same transaction. The keys are safe under any isolation
// level: what decides a take-over is read with locking reads.

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
		if err := takeKey(tx, idemKey(*r.IdempotencyKey), r.ID, false); err != nil {
			return err
		}
	}
	if r.UniqueKey != nil {
		if err := takeKey(tx, activeKey(*r.UniqueKey), r.ID, true); err != nil {
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

// takeKey makes run id the run that key k of run_keys names: a new row,
// or the row of a run that is gone (deleted by hand: Prune deletes the
// keys with the runs) or, with passOn (active keys), final. A key that
// names a run still there (passOn: queued or running) fails with
// gorm.ErrDuplicatedKey, without a lock: a caller that gets "active"
// holds up no one. Only a key that may change hands is read again under
// a lock, with its holder's status (a locking read sees the latest
// commit whatever the isolation level), and swapped if it still names
// that holder, so that callers taking over one key wait for each other
// instead of deadlocking.
func takeKey(tx *gorm.DB, k string, id int64, passOn bool) error {
	holder, free, err := keyHolderOf(tx, k, passOn, false)
	if err != nil {
		return err
	}
	if holder == 0 {
		return tx.Create(&runKey{K: k, RunID: id}).Error // one stored meanwhile: ErrDuplicatedKey
	}
	if !free {
		return gorm.ErrDuplicatedKey
	}
	if holder, free, err = keyHolderOf(tx, k, passOn, true); err != nil {
		return err
	}
	if holder == 0 || !free { // pruned meanwhile, or taken over by a run that is active
		return gorm.ErrDuplicatedKey
	}
	res := tx.Model(&runKey{}).Where("k = ? AND run_id = ?", k, holder).Update("run_id", id)
	if res.Error != nil {
		return fmt.Errorf("take over key %s: %w", k, res.Error)
	}
	if res.RowsAffected != 1 {
		return gorm.ErrDuplicatedKey // another run took it first
	}
	return nil
}

// keyHolderOf returns the run id key k names (0: no row) and whether the
// key is free to take over: that run is gone or, with passOn, final. One
// query reads the key's row and its run's status; locked makes it a
// locking read of both (none on SQLite, which has one writer at a time).
func keyHolderOf(tx *gorm.DB, k string, passOn, locked bool) (holder int64, free bool, err error) {
	q := "SELECT k.run_id, r.status FROM run_keys k LEFT JOIN runs r ON r.id = k.run_id WHERE k.k = ?"
	if locked && tx.Dialector.Name() != "sqlite" {
		q += " FOR UPDATE"
	}
	var rows []struct {
		RunID  int64
		Status sql.NullString // NULL: the run is gone
	}
	if err := tx.Raw(q, k).Scan(&rows).Error; err != nil {
		return 0, false, fmt.Errorf("read key %s: %w", k, err)
	}
	if len(rows) == 0 {
		return 0, false, nil
	}
	st := rows[0].Status
	return rows[0].RunID, !st.Valid || passOn && Status(st.String).Final(), nil
}

// keyRun reads into got the run that key k of run_keys names; ok is false
// when there is none. With activeOnly a final run is as none.
func keyRun(db *gorm.DB, k string, activeOnly bool, got *Run) (ok bool, err error) {
	q := db.Where("id = (SELECT run_id FROM run_keys WHERE k = ?)", k)
	if activeOnly {
		q = q.Where("status IN ?", []Status{StatusQueued, StatusRunning})
	}
	return takeRun(q, got)
}

// tickRun reads into got the run of job's tick at; ok is false when
// there is none.
func tickRun(db *gorm.DB, job string, at time.Time, got *Run) (ok bool, err error) {
	return takeRun(db.Where("id = (SELECT run_id FROM run_ticks WHERE job = ? AND scheduled_for = ?)", job, at.UTC()), got)
}

// takeRun reads the run q finds into got; ok is false when there is none.
func takeRun(q *gorm.DB, got *Run) (ok bool, err error) {
	err = q.Take(got).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	return err == nil, err
}

// isDuplicate reports whether err, from a statement of tx, is a
// duplicate-key error (raw driver errors included: insertRows does not
// go through gorm's translation).
func isDuplicate(tx *gorm.DB, err error) bool {
	t, ok := tx.Dialector.(gorm.ErrorTranslator)
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Is(e, gorm.ErrDuplicatedKey) || ok && errors.Is(t.Translate(e), gorm.ErrDuplicatedKey) {
			return true
		}
	}
	return false
}
