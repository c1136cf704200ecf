package jobs

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jonboulle/clockwork"
	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/migrations"
)

// ReserveRate reserves the next request slot of the connection named
// name under a limit of rate requests per second, shared by every process
// on this database, and returns how long the caller must wait before it
// sends (0: now). Slots are spaced 1/rate apart on the database's clock
// (MySQL; SQLite, one host: this process's clock), so instances with
// skewed clocks still keep the rate; an idle connection's first request
// goes at once (no burst is saved up). A slot reserved by a caller that
// then gives up is lost (the rate is undershot, never exceeded). rate
// must be positive.
func (s *Store) ReserveRate(ctx context.Context, name string, rate float64) (time.Duration, error) {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return 0, fmt.Errorf("jobs: reserving a request slot of %s: rate must be positive, got %v", name, rate)
	}
	step := int64(math.Round(1e6 / rate))
	sel := "SELECT next_us AS next, 0 AS now FROM connection_rates WHERE name = ?"
	ins := "INSERT OR IGNORE INTO connection_rates (name, next_us) VALUES (?, 0)"
	if s.dialect == migrations.MySQL {
		// SYSDATE, not NOW: the time the row is read, after the lock
		// wait, not when the statement began; a caller that queued
		// for the lock would otherwise wait its queueing time too, and
		// callers that queued for different times would crowd together.
		sel = "SELECT next_us AS next, CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED) AS now FROM connection_rates WHERE name = ? FOR UPDATE"
		ins = "INSERT IGNORE INTO connection_rates (name, next_us) VALUES (?, 0)"
	}
	var wait time.Duration
	var err error
	for try := 0; ; try++ {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var row struct {
				Next int64
				Now  int64
			}
			res := tx.Raw(sel, name).Scan(&row)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				return errNoSlotRow
			}
			if s.dialect == migrations.SQLite {
				row.Now = time.Now().UnixMicro()
			}
			slot := max(row.Next, row.Now)
			if err := tx.Exec("UPDATE connection_rates SET next_us = ? WHERE name = ?", slot+step, name).Error; err != nil {
				return err
			}
			wait = time.Duration(slot-row.Now) * time.Microsecond
			return nil
		})
		if errors.Is(err, errNoSlotRow) && try < 3 {
			// First use: create the row outside the locking transaction
			// (a locking read of a missing row takes a gap lock that
			// concurrent creators deadlock on), then reserve again.
			if err = s.db.WithContext(ctx).Exec(ins, name).Error; err != nil {
				break
			}
			continue
		}
		if err != nil && try < 3 && isDeadlock(err) && ctx.Err() == nil {
			continue
		}
		break
	}
	if err != nil {
		return 0, fmt.Errorf("jobs: reserving a request slot of %s: %s", name, redactErr(err, s.dsn))
	}
	return wait, nil
}

var errNoSlotRow = errors.New("the connection has no slot row")

// rateLimiter returns the function a processor calls before each request
// to a connection with a rateLimit: it reserves the next slot and waits
// for it on clock (or until ctx ends); see rateWaiter.
func (s *Store) rateLimiter(clock clockwork.Clock, name string, rate float64) func(ctx context.Context) error {
	return rateWaiter(clock, name, rate, func(ctx context.Context) (time.Duration, error) {
		return s.ReserveRate(ctx, name, rate)
	})
}

// lateRetries is how many times a caller that woke too late for its slot
// gives it up and reserves another before it sends anyway.
const lateRetries = 3

// rateWaiter reserves a slot with reserve and waits for it on clock. A
// caller that may be later than two slots (2/rate, at least 20 ms) for its
// own gives the slot up and reserves again, up to lateRetries times: the
// slots after it are other callers', and requests held up together would
// otherwise reach the connection as a burst over its rate. Late means its
// process stalled while it waited (a loaded machine, a paused VM) or the
// reservation itself was slow (its COMMIT waited for a stalled log
// flush): the slot is counted from when the reservation began, the
// earliest the database can have read its clock. A slot given up is lost
// (the rate is undershot, never exceeded).
func rateWaiter(clock clockwork.Clock, name string, rate float64, reserve func(context.Context) (time.Duration, error)) func(ctx context.Context) error {
	late := max(time.Duration(2*float64(time.Second)/rate), 20*time.Millisecond)
	return func(ctx context.Context) error {
		for try := 0; ; try++ {
			began := clock.Now()
			wait, err := reserve(ctx)
			if err != nil {
				return err
			}
			due := began.Add(wait)
			if wait > 0 {
				t := clock.NewTimer(wait)
				select {
				case <-t.Chan():
				case <-ctx.Done():
					t.Stop()
					return fmt.Errorf("waiting %s for a request slot of connection %s (rateLimit %v/s): %w", wait.Round(time.Millisecond), name, rate, ctx.Err())
				}
			}
			if try == lateRetries || clock.Since(due) <= late {
				return nil
			}
		}
	}
}
