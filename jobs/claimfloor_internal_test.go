package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDueFloorMoves(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	run := func(id int64, d time.Duration) Run { return Run{ID: id, NotBefore: t0.Add(d)} }
	tests := []struct {
		name   string
		steps  func(f *dueFloor)
		want   floorMark
		wantOK bool
	}{
		{"no floor at first", func(*dueFloor) {}, floorMark{}, false},
		{"past the last run read from the head", func(f *dueFloor) { f.advance([]Run{run(1, 0), run(7, time.Second)}, true) },
			floorMark{t0.Add(time.Second), 7}, true},
		{"an empty read from the head clears it", func(f *dueFloor) {
			f.advance([]Run{run(1, 0)}, true)
			f.advance(nil, true)
		}, floorMark{}, false},
		{"never backwards from a floored read", func(f *dueFloor) {
			f.advance([]Run{run(9, time.Second)}, true)
			f.advance([]Run{run(3, 0)}, false)
		}, floorMark{t0.Add(time.Second), 9}, true},
		{"backwards from the head", func(f *dueFloor) {
			f.advance([]Run{run(9, time.Second)}, true)
			f.advance([]Run{run(3, 0)}, true)
		}, floorMark{t0, 3}, true},
		{"same instant, higher id", func(f *dueFloor) {
			f.advance([]Run{run(4, 0)}, true)
			f.advance([]Run{run(5, 0)}, false)
		}, floorMark{t0, 5}, true},
		{"the head again after floorScans floored reads", func(f *dueFloor) {
			f.advance([]Run{run(4, 0)}, true)
			for range floorScans {
				_, ok := f.start()
				require.True(t, ok)
			}
		}, floorMark{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &dueFloor{}
			tt.steps(f)
			got, ok := f.start()
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}
