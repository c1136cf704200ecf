package jobs

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
)

// Backoff returns the delay before the attempt after attempt number n (n
// >= 1 failed attempts so far) under policy p: Initial × Multiplier^(n-1),
// capped at Max, then spread by ±Jitter/2 of itself using rnd (a value in
// [0,1); pass rand.Float64 in production) so that many runs failing
// together do not all return at once. Zero fields take the definitions
// defaults (1s, 5m, ×2).
func Backoff(p definitions.RetryPolicy, n int, rnd func() float64) time.Duration {
	initial, maxD, mult := p.Initial.D(), p.Max.D(), p.Multiplier
	if initial <= 0 {
		initial = time.Second
	}
	if maxD <= 0 {
		maxD = 5 * time.Minute
	}
	if mult < 1 {
		mult = 2
	}
	n = max(n, 1)
	d := float64(initial) * math.Pow(mult, float64(n-1))
	if d > float64(maxD) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(maxD)
	}
	if j := math.Min(math.Max(p.Jitter, 0), 1); j > 0 && rnd != nil {
		d += d * j * (rnd() - 0.5)
	}
	return time.Duration(d)
}

// defaultRand is the jitter source used by the executor.
func defaultRand() float64 { return rand.Float64() }

// SnoozeDelay is the delay of a snooze that asked for d (a Retry-After, a
// platform's wait): capped at the policy's Max (default 5m) unless the
// snooze has a horizon (a deliberate wait until someone acts), and
// spread by ±Jitter/2 like Backoff so that many runs throttled together
// do not all come back at the same instant.
func SnoozeDelay(p definitions.RetryPolicy, d time.Duration, horizon bool, rnd func() float64) time.Duration {
	maxD := p.Max.D()
	if maxD <= 0 {
		maxD = 5 * time.Minute
	}
	if !horizon && d > maxD {
		d = maxD
	}
	if j := math.Min(math.Max(p.Jitter, 0), 1); j > 0 && rnd != nil {
		d += time.Duration(float64(d) * j * (rnd() - 0.5))
	}
	return d
}
