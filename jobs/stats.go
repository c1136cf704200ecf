package jobs

import (
	"context"
	"fmt"
)

// CountByStatus returns how many runs are in each of statuses (every status
// when none is given), for queue-depth metrics. A status without runs is
// present with 0. Asking only for queued and running keeps it cheap on a
// large history: the query uses the (status, id) index.
func (s *Store) CountByStatus(ctx context.Context, statuses ...Status) (map[Status]int64, error) {
	if len(statuses) == 0 {
		statuses = Statuses
	}
	out := make(map[Status]int64, len(statuses))
	for _, st := range statuses {
		out[st] = 0
	}
	var rows []struct {
		Status Status
		N      int64
	}
	err := s.db.WithContext(ctx).Model(&Run{}).
		Select("status, COUNT(*) AS n").
		Where("status IN ?", statuses).
		Group("status").
		Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("jobs: count runs by status: %w", err)
	}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

// Ping checks that the database answers, within ctx. It returns an error
// (never containing the DSN's password) when it does not, including after
// Close.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("jobs: ping %s: %w", s.dsn, err)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("jobs: ping %s: %s", s.dsn, redactErr(err, s.dsn))
	}
	return nil
}

// LatestByJob returns the newest run (highest id) of each of the named
// jobs that has any run, keyed by job name. Jobs without runs are absent.
// An empty names returns an empty map without a query.
func (s *Store) LatestByJob(ctx context.Context, names []string) (map[string]Run, error) {
	out := make(map[string]Run, len(names))
	if len(names) == 0 {
		return out, nil
	}
	var runs []Run
	err := s.db.WithContext(ctx).
		Where("id IN (SELECT MAX(id) FROM runs WHERE job IN ? GROUP BY job)", names).
		Find(&runs).Error
	if err != nil {
		return nil, fmt.Errorf("jobs: latest run of each job: %w", err)
	}
	for _, r := range runs {
		out[r.Job] = r
	}
	return out, nil
}
