package cronspec_test

import (
	"fmt"
	"time"

	"github.com/jobrunner/jobrunner/cronspec"
)

// A fixed-time job at 02:30 in New York on the spring-forward day fires once,
// at 03:00 EDT, the end of the gap.
func ExampleParse() {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	spec, err := cronspec.Parse("30 2 * * *", ny)
	if err != nil {
		panic(err)
	}
	from := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	for _, t := range spec.NextN(from, 3) {
		fmt.Println(t.Format(time.RFC3339))
	}
	// Output:
	// 2026-03-08T03:00:00-04:00
	// 2026-03-09T02:30:00-04:00
	// 2026-03-10T02:30:00-04:00
}

// An interval spec follows elapsed time: on the fall-back day in Amsterdam,
// 02:00 occurs twice and the hourly job fires at both.
func ExampleSpec_NextN() {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		panic(err)
	}
	spec, err := cronspec.Parse("0 * * * *", ams)
	if err != nil {
		panic(err)
	}
	from := time.Date(2026, 10, 25, 1, 30, 0, 0, ams)
	for _, t := range spec.NextN(from, 3) {
		fmt.Println(t.Format("2006-01-02 15:04 MST"))
	}
	fmt.Println(spec.IsInterval())
	// Output:
	// 2026-10-25 02:00 CEST
	// 2026-10-25 02:00 CET
	// 2026-10-25 03:00 CET
	// true
}

// "@every" ticks are multiples of the duration since the Unix epoch, so every
// instance computes the same nominal tick.
func ExampleSpec_Next_every() {
	spec, err := cronspec.Parse("@every 90s", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(spec.Next(time.Date(2026, 1, 1, 0, 0, 42, 0, time.UTC)))
	// Output:
	// 2026-01-01 00:01:30 +0000 UTC
}
