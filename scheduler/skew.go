package scheduler

import (
	"context"
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
)

// ClockSkew returns this process's clock minus the database server's
// (MySQL: UTC_TIMESTAMP(6)), measured at the midpoint of the query so that
// the round trip does not count as skew. It is 0 for SQLite, which has no
// clock of its own. It only reports: ticks are identified by their nominal
// time, so skew does not double runs, but /readyz shows a skew above 1s so
// an operator can fix the host's time sync. It returns the store's error
// when the database cannot be read.
func ClockSkew(ctx context.Context, s *jobs.Store) (time.Duration, error) {
	before := time.Now()
	db, ok, err := s.DatabaseTime(ctx)
	if err != nil {
		return 0, fmt.Errorf("scheduler: clock skew: %w", err)
	}
	if !ok {
		return 0, nil
	}
	rtt := time.Since(before)
	mid := before.Add(rtt / 2)
	return mid.Sub(db).Round(time.Microsecond), nil
}
