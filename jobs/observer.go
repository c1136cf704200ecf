package jobs

import "time"

// Observer is told what the executor and workers do, for metrics. Methods
// must be fast and safe for concurrent use. A nil Observer is allowed
// wherever one is accepted.
type Observer interface {
	// AttemptFinished reports one execution: its job, the attempt outcome
	// (Attempt* constants), the run's new status and how long it took.
	AttemptFinished(job, outcome string, status Status, took time.Duration)
	// LeasesRescued reports runs taken back from expired leases.
	LeasesRescued(n int)
}
