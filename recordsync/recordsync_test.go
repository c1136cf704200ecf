package recordsync_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jobrunner/jobrunner/recordsync"
	"github.com/stretchr/testify/require"
)

// listSource lists changes (already sorted) from a mark, in pages.
type listSource struct {
	all  []recordsync.Change
	from time.Time
	pos  int
	size int
	fail int // fail on the fail-th page (1-based), 0: never
	n    int
}

func (s *listSource) NextPage(ctx context.Context) ([]recordsync.Change, int, error) {
	s.n++
	if s.fail > 0 && s.n == s.fail {
		return nil, 0, errors.New("source down")
	}
	var page []recordsync.Change
	for s.pos < len(s.all) && len(page) < s.size {
		c := s.all[s.pos]
		s.pos++
		if c.Time.Before(s.from) {
			continue
		}
		page = append(page, c)
	}
	return page, len(s.all), nil
}

// target applies each key once and counts sends.
type target struct {
	mu      sync.Mutex
	sends   map[string]int
	applied map[string]int
	later   map[string]int // key → "later" answers still to give
	refuse  map[string]bool
}

func newTarget() *target {
	return &target{sends: map[string]int{}, applied: map[string]int{}, later: map[string]int{}, refuse: map[string]bool{}}
}

func (t *target) push(ctx context.Context, c recordsync.Change, _ int) recordsync.Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sends[c.Subject]++
	if t.refuse[c.Subject] {
		return recordsync.Outcome{Verdict: recordsync.Refused, Code: "REFUSED", Message: "no"}
	}
	if t.later[c.Subject] > 0 {
		t.later[c.Subject]--
		return recordsync.Outcome{Verdict: recordsync.Carried, Code: "LATER"}
	}
	if t.applied[c.Key] == 0 {
		t.applied[c.Key]++
	}
	return recordsync.Outcome{Verdict: recordsync.Pushed}
}

func changes(n int) []recordsync.Change {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	out := make([]recordsync.Change, n)
	for i := range out {
		subj := fmt.Sprintf("WEB%06d", i)
		t := base.Add(time.Duration(i/3) * time.Second) // ties at the same time
		out[i] = recordsync.Change{Key: recordsync.ChangeKey(subj, "shipped", t.Format(time.RFC3339Nano)), Subject: subj, Time: t}
	}
	return out
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func TestRunCountsEveryRecord(t *testing.T) {
	t.Parallel()
	all := changes(1000)
	tg := newTarget()
	for i := 0; i < 1000; i += 100 {
		tg.refuse[all[i].Subject] = true // 1 % permanently
		tg.later[all[i+1].Subject] = 100 // 1 % later, beyond the run
		tg.later[all[i+2].Subject] = 1   // delivered by the in-run retry
	}
	st := &recordsync.MemStore{}
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: -1, Concurrency: 8, Sleep: noSleep}
	var mu sync.Mutex
	verdicts := map[recordsync.Verdict]int{}
	cfg.OnRecord = func(r recordsync.Result) { mu.Lock(); verdicts[r.Verdict]++; mu.Unlock() }
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 50, from: all[0].Time}, tg.push)
	require.NoError(t, err)
	require.Equal(t, 1000, sum.Read)
	require.Equal(t, 980, sum.Pushed)
	require.Equal(t, 10, sum.Refused)
	require.Equal(t, 10, sum.Carried)
	require.Equal(t, 1000, sum.Total)
	require.Equal(t, all[999].Time, sum.Mark)
	require.Equal(t, 10, st.PendingCount("sync"))
	require.Equal(t, map[recordsync.Verdict]int{recordsync.Pushed: 980, recordsync.Refused: 10, recordsync.Carried: 10}, verdicts)

	// The next run delivers the carried ones once the target takes them.
	for i := 0; i < 1000; i += 100 {
		tg.later[all[i+1].Subject] = 0
	}
	sum, err = recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 50, from: all[999].Time}, tg.push)
	require.NoError(t, err)
	require.Equal(t, 10, sum.Retried)
	require.Equal(t, 10, sum.Pushed)
	require.Equal(t, 0, st.PendingCount("sync"))
	for _, c := range all {
		if !tg.refuse[c.Subject] {
			require.Equal(t, 1, tg.applied[c.Key], c.Subject)
		}
	}
	// Only the records at the mark's exact time are re-read: resolved, skipped.
	require.Equal(t, sum.Read, sum.Skipped)
}

func TestRunMaxErrorsStopsWithoutPassingUndelivered(t *testing.T) {
	t.Parallel()
	all := changes(300)
	tg := newTarget()
	for i := 100; i < 300; i++ {
		tg.refuse[all[i].Subject] = true
	}
	st := &recordsync.MemStore{}
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: 5, Concurrency: 4, Sleep: noSleep}
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 10, from: all[0].Time}, tg.push)
	require.ErrorIs(t, err, recordsync.ErrTooManyErrors)
	require.Greater(t, sum.Refused, 5)
	require.Less(t, sum.Pushed+sum.Refused, 200, "pushes went on after maxErrors")
	mark, ok, _ := st.SyncMark(context.Background(), "sync")
	require.True(t, ok)
	require.False(t, mark.After(all[100+sum.Refused].Time), "the mark passed records never tried: mark %v, %+v", mark, sum)
}

func TestRunResumesAfterAnInterruptionWithoutPushingTwice(t *testing.T) {
	t.Parallel()
	all := changes(2000)
	st := &recordsync.MemStore{}
	tg := newTarget()
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: -1, Concurrency: 8, Sleep: noSleep}
	for round := 0; round < 20; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		var n int
		var mu sync.Mutex
		push := func(pctx context.Context, c recordsync.Change, a int) recordsync.Outcome {
			mu.Lock()
			n++
			stop := n == 150
			mu.Unlock()
			if stop {
				cancel() // the process dies here: this push's answer is lost
			}
			out := tg.push(pctx, c, a)
			return out
		}
		from, err := recordsync.Mark(context.Background(), cfg)
		require.NoError(t, err)
		_, err = recordsync.Run(ctx, cfg, &listSource{all: all, size: 100, from: from}, push)
		cancel()
		if err == nil {
			break
		}
		require.ErrorIs(t, err, context.Canceled)
	}
	for _, c := range all {
		require.Equal(t, 1, tg.applied[c.Key], c.Subject)
	}
	resent := 0
	for _, c := range all {
		resent += tg.sends[c.Subject] - 1
	}
	require.Less(t, resent, 20*8+1, "only pushes in flight at an interruption are sent again")
}

func TestRunSourceErrorKeepsWhatWasPushed(t *testing.T) {
	t.Parallel()
	all := changes(100)
	st := &recordsync.MemStore{}
	tg := newTarget()
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: -1, Sleep: noSleep}
	_, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 10, from: all[0].Time, fail: 4}, tg.push)
	require.ErrorContains(t, err, "source down")
	mark, _, _ := st.SyncMark(context.Background(), "sync")
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 10, from: mark}, tg.push)
	require.NoError(t, err)
	require.Equal(t, 70, sum.Pushed)
	for _, c := range all {
		require.Equal(t, 1, tg.sends[c.Subject], c.Subject)
	}
}

func TestRunNewerChangeSupersedesPending(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	old := recordsync.Change{Key: "old", Subject: "A", Time: t0}
	st := &recordsync.MemStore{}
	tg := newTarget()
	tg.later["A"] = 1000
	cfg := recordsync.Config{Job: "sync", Store: st, Start: t0, MaxErrors: -1, Sleep: noSleep, LaterAttempts: 1}
	_, err := recordsync.Run(context.Background(), cfg, &listSource{all: []recordsync.Change{old}, size: 10}, tg.push)
	require.NoError(t, err)
	require.Equal(t, 1, st.PendingCount("sync"))
	newer := recordsync.Change{Key: "new", Subject: "A", Time: t0.Add(time.Minute)}
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: []recordsync.Change{newer}, size: 10}, tg.push)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Skipped) // the old one, superseded
	require.Equal(t, 1, st.PendingCount("sync"))
	p, _ := st.SyncPending(context.Background(), "sync", "", 10)
	require.Equal(t, "new", p[0].Key)
}

func TestChangeKeyIsUnambiguous(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, recordsync.ChangeKey("a", "bc"), recordsync.ChangeKey("ab", "c"))
	require.Len(t, recordsync.ChangeKey("x"), 32)
}

func TestRunSameSubjectTwiceInOrderWithOneWorker(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	a := recordsync.Change{Key: "a", Subject: "X", Time: t0}
	b := recordsync.Change{Key: "b", Subject: "X", Time: t0.Add(time.Second)}
	st := &recordsync.MemStore{}
	var mu sync.Mutex
	var got []string
	n := 0
	push := func(_ context.Context, c recordsync.Change, _ int) recordsync.Outcome {
		mu.Lock()
		defer mu.Unlock()
		n++
		if c.Key == "a" && n == 1 {
			return recordsync.Outcome{Verdict: recordsync.Carried} // a comes back after b was read
		}
		got = append(got, c.Key)
		return recordsync.Outcome{Verdict: recordsync.Pushed}
	}
	cfg := recordsync.Config{Job: "sync", Store: st, Start: t0, MaxErrors: -1, Concurrency: 1, Sleep: noSleep}
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: []recordsync.Change{a, b}, size: 10}, push)
	require.NoError(t, err)
	require.Equal(t, 2, sum.Pushed)
	require.Equal(t, []string{"a", "b"}, got, "a subject's changes are pushed in order")
}

func TestRunUnsortedSourceMovesTheMarkOnlyAtTheEnd(t *testing.T) {
	t.Parallel()
	all := changes(100)
	all[50], all[10] = all[10], all[50] // all[50] (older) listed after newer ones
	st := &recordsync.MemStore{}
	tg := newTarget()
	var unsorted []string
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: -1, Sleep: noSleep,
		OnUnsorted: func(c recordsync.Change) { unsorted = append(unsorted, c.Subject) }}
	_, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 10, from: all[0].Time, fail: 8}, tg.push)
	require.ErrorContains(t, err, "source down")
	require.Equal(t, []string{all[11].Subject}, unsorted)
	mark, _, _ := st.SyncMark(context.Background(), "sync")
	require.False(t, mark.After(all[10].Time), "the mark passed an order listed later: %v", mark)

	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 10, from: mark}, tg.push)
	require.NoError(t, err)
	require.Equal(t, all[99].Time, sum.Mark)
	for _, c := range all {
		require.Equal(t, 1, tg.applied[c.Key], c.Subject)
	}
}

func TestRunCarriedChangeSupersededInTheSameRun(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	x1 := recordsync.Change{Key: "x1", Subject: "X", Time: t0}
	x2 := recordsync.Change{Key: "x2", Subject: "X", Time: t0.Add(time.Second)}
	st := &recordsync.MemStore{}
	var mu sync.Mutex
	var pushed []string
	push := func(_ context.Context, c recordsync.Change, _ int) recordsync.Outcome {
		mu.Lock()
		defer mu.Unlock()
		if c.Key == "x1" {
			return recordsync.Outcome{Verdict: recordsync.Carried, Code: "LATER"}
		}
		pushed = append(pushed, c.Key)
		return recordsync.Outcome{Verdict: recordsync.Pushed}
	}
	cfg := recordsync.Config{Job: "sync", Store: st, Start: t0, MaxErrors: -1, Concurrency: 4, LaterAttempts: 1, Sleep: noSleep}
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: []recordsync.Change{x1, x2}, size: 10}, push)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Pushed)
	require.Equal(t, 0, sum.Carried, "x1 was superseded by x2")
	require.Equal(t, 0, st.PendingCount("sync"), "the stale change is not carried to the next run")

	// Two pending changes of one subject from earlier runs: only the newest is tried.
	require.NoError(t, st.SyncCommit(context.Background(), "sync", recordsync.Commit{Park: []recordsync.Pending{
		{Change: recordsync.Change{Key: "a-old", Subject: "Y", Time: t0}}, {Change: recordsync.Change{Key: "b-new", Subject: "Y", Time: t0.Add(time.Hour)}}}}))
	sum, err = recordsync.Run(context.Background(), cfg, &listSource{size: 10}, push)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Skipped)
	require.Equal(t, []string{"x2", "b-new"}, pushed)
	require.Equal(t, 0, st.PendingCount("sync"))
}

// slowStore delays its first commit, so that records resolve while it runs.
type slowStore struct {
	recordsync.MemStore
	once sync.Once
}

func (s *slowStore) SyncCommit(ctx context.Context, job string, c recordsync.Commit) error {
	s.once.Do(func() { time.Sleep(50 * time.Millisecond) })
	return s.MemStore.SyncCommit(ctx, job, c)
}

func TestRunStoppedByMaxErrorsStillCommitsWhatWasPushed(t *testing.T) {
	t.Parallel()
	all := changes(60)
	tg := newTarget()
	tg.refuse[all[40].Subject] = true
	st := &slowStore{}
	guard := func(ctx context.Context) error { return ctx.Err() } // like Run.BeforeSideEffect
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: 0, Concurrency: 2, Sleep: noSleep, Guard: guard}
	sum, err := recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 5, from: all[0].Time}, tg.push)
	require.ErrorIs(t, err, recordsync.ErrTooManyErrors)
	first := map[string]int{}
	for k, v := range tg.sends {
		first[k] = v
	}
	mark, _, _ := st.SyncMark(context.Background(), "sync")
	cfg.MaxErrors = -1
	_, err = recordsync.Run(context.Background(), cfg, &listSource{all: all, size: 5, from: mark}, tg.push)
	require.NoError(t, err)
	for _, c := range all {
		if first[c.Subject] > 0 {
			require.Equal(t, first[c.Subject], tg.sends[c.Subject], "%s was pushed (or refused) before the stop and pushed again after it", c.Subject)
		}
		require.Equal(t, !tg.refuse[c.Subject], tg.applied[c.Key] == 1, c.Subject)
	}
	require.Positive(t, sum.Pushed)
}

func TestRunPusherWithoutAVerdictKeepsTheRecord(t *testing.T) {
	t.Parallel()
	all := changes(10)
	st := &recordsync.MemStore{}
	push := func(_ context.Context, c recordsync.Change, _ int) recordsync.Outcome {
		if c.Key == all[3].Key {
			return recordsync.Outcome{} // no verdict
		}
		return recordsync.Outcome{Verdict: recordsync.Pushed}
	}
	cfg := recordsync.Config{Job: "sync", Store: st, Start: all[0].Time, MaxErrors: -1, Window: 2, Sleep: noSleep, LaterAttempts: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sum, err := recordsync.Run(ctx, cfg, &listSource{all: all, size: 3, from: all[0].Time}, push)
	require.NoError(t, err)
	require.Equal(t, 9, sum.Pushed)
	require.Equal(t, 1, sum.Carried)
	require.Equal(t, 1, st.PendingCount("sync"))
}
