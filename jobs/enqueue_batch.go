package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/migrations"
)

// BulkKey is the idempotency key of a bulk-triggered run that brings none
// of its own: the same job and parameters give the same key, so a file or
// batch submitted again (or a line written twice) queues nothing twice.
func BulkKey(job string, vals definitions.Values) string {
	b, _ := json.Marshal(vals)
	sum := sha256.Sum256(append([]byte(job+"\x00"), b...))
	return "bulk:" + job + ":" + hex.EncodeToString(sum[:16])
}

// KeyedResult is what [Store.EnqueueKeyed] did with one run.
type KeyedResult struct {
	// Run is the created or existing run (nil when Err is set), with its
	// ID, Job, Status, IdempotencyKey, TriggeredBy and CreatedAt only.
	Run *Run
	// Created is false when an existing run was returned; Reason says why
	// ("idempotencyKey", or "active": the job's uniqueBy parameters match
	// a queued or running run).
	Created bool
	Reason  string
	// Err is ErrIdempotencyMismatch (the key was used with other
	// parameters) or the store's error for the chunk.
	Err error
}

// keyedChunk is how many runs one transaction of EnqueueKeyed carries.
func (s *Store) keyedChunk() int {
	if s.dialect == migrations.SQLite {
		return 50
	}
	return 1000
}

// EnqueueKeyed stores many queued runs, each with its own idempotency key,
// in transactions of a few hundred (bulk triggers). Like [Store.Enqueue]
// it returns, instead of a second run, the run an idempotency key already
// names (or ErrIdempotencyMismatch when that run has other parameters)
// and the active run the job's uniqueBy parameters match, so that a bulk
// trigger run twice creates nothing twice. Every run needs an
// IdempotencyKey and no steps nor schedule tick; the results are in the
// order of nrs. An error is returned only for invalid input; a chunk the
// database refuses has the error in each of its results.
func (s *Store) EnqueueKeyed(ctx context.Context, nrs []NewRun) ([]KeyedResult, error) {
	for i, nr := range nrs {
		if nr.IdempotencyKey == "" || len(nr.Steps) > 0 || nr.ScheduledFor != nil {
			return nil, fmt.Errorf("jobs: enqueue keyed: run %d of %s needs an idempotency key and no steps or tick", i, nr.Job.Name)
		}
	}
	// A key given twice in one call: only its first run is stored, the
	// others get its result (or a mismatch when their parameters differ).
	first := map[string]int{}
	var uniq []NewRun
	var at []int // index in nrs of each uniq entry
	dupOf := make([]int, len(nrs))
	for i, nr := range nrs {
		if j, ok := first[nr.IdempotencyKey]; ok {
			dupOf[i] = j
			continue
		}
		first[nr.IdempotencyKey] = i
		dupOf[i] = -1
		uniq = append(uniq, nr)
		at = append(at, i)
	}
	res, err := s.enqueueKeyedUnique(ctx, uniq)
	if err != nil {
		return nil, err
	}
	out := make([]KeyedResult, len(nrs))
	for k, r := range res {
		out[at[k]] = r
	}
	for i, j := range dupOf {
		if j < 0 {
			continue
		}
		r := out[j]
		switch {
		case r.Err != nil:
			out[i] = KeyedResult{Err: r.Err}
		case requestHashOf(nrs[i]) != requestHashOf(nrs[j]):
			out[i] = KeyedResult{Err: fmt.Errorf("%w (run %d)", ErrIdempotencyMismatch, r.Run.ID)}
		default:
			out[i] = KeyedResult{Run: r.Run, Reason: "idempotencyKey"}
		}
	}
	return out, nil
}

// requestHashOf is the request hash Enqueue stores for nr.
func requestHashOf(nr NewRun) string {
	b, _ := json.Marshal(nr.Params)
	return requestHash(nr.Job.Name, b, nr.Preview)
}

// stamp hands out creation times that differ by at least a microsecond
// within this process, so that a chunk recognises the rows it created.
var stamp struct {
	sync.Mutex
	last time.Time
}

func nextStamp() time.Time {
	stamp.Lock()
	defer stamp.Unlock()
	t := time.Now().UTC().Truncate(time.Microsecond)
	if !t.After(stamp.last) {
		t = stamp.last.Add(time.Microsecond)
	}
	stamp.last = t
	return t
}

// enqueueKeyedUnique is EnqueueKeyed for runs with distinct keys.
func (s *Store) enqueueKeyedUnique(ctx context.Context, nrs []NewRun) ([]KeyedResult, error) {
	out := make([]KeyedResult, len(nrs))
	n := s.keyedChunk()
	// Chunks go in parallel transactions (the server commits them in
	// groups); a chunk's lines are all in one of them.
	sem := make(chan struct{}, keyedParallel)
	var wg sync.WaitGroup
	for start := 0; start < len(nrs); start += n {
		end := min(start+n, len(nrs))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var err error
			for try := 0; try < 3; try++ { // a deadlock between parallel chunks: the keys make a retry safe
				if err = s.enqueueKeyedChunk(ctx, nrs[start:end], out[start:end]); err == nil || ctx.Err() != nil {
					break
				}
			}
			if err != nil {
				for i := start; i < end; i++ {
					out[i] = KeyedResult{Err: err}
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}

// keyedParallel is how many chunks of EnqueueKeyed are stored at once.
const keyedParallel = 8

func (s *Store) enqueueKeyedChunk(ctx context.Context, nrs []NewRun, out []KeyedResult) error {
	now := nextStamp() // compared with the stored time below: unique to this chunk
	rows := make([]*Run, len(nrs))
	texts := make([]map[string]string, len(nrs))
	keys := make([]string, len(nrs))
	for i, nr := range nrs {
		r, text, err := newRunRow(nr, now)
		if err != nil {
			return err
		}
		rows[i], texts[i], keys[i] = r, text, nr.IdempotencyKey
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var fresh []*Run
		queued := map[string]bool{}
		for i, r := range rows {
			if !queued[keys[i]] {
				queued[keys[i]] = true
				fresh = append(fresh, r)
			}
		}
		if len(fresh) > 0 {
			ins := tx.Clauses(clause.Insert{Modifier: "IGNORE"})
			if s.dialect == migrations.SQLite {
				ins = tx.Clauses(clause.OnConflict{DoNothing: true})
			}
			// IDs are read back below: with rows ignored, the ids the
			// driver derives from the last insert id are not reliable.
			if err := ins.Omit("ID").Create(cloneRuns(fresh)).Error; err != nil {
				return fmt.Errorf("jobs: enqueue keyed: %w", err)
			}
		}
		after, err := runsByKey(tx, keys)
		if err != nil {
			return err
		}
		var params []runParam
		claimed := map[string]bool{} // keys whose new run an earlier line of the chunk took
		for i, r := range rows {
			got, ok := after[keys[i]]
			// This chunk's row: made now by this creator with these
			// parameters (an older run with the key was made earlier).
			mine := ok && !claimed[keys[i]] && got.CreatedAt.Equal(now) && got.TriggeredBy == r.TriggeredBy &&
				got.RequestHash != nil && *got.RequestHash == *r.RequestHash
			if mine {
				claimed[keys[i]] = true
			}
			switch {
			case mine:
				out[i] = KeyedResult{Run: got, Created: true}
				for k, v := range texts[i] {
					params = append(params, runParam{RunID: got.ID, Name: k, Value: indexValue(v)})
				}
			case ok:
				if got.RequestHash == nil || *got.RequestHash != *r.RequestHash {
					out[i] = KeyedResult{Err: fmt.Errorf("%w (run %d)", ErrIdempotencyMismatch, got.ID)}
					continue
				}
				out[i] = KeyedResult{Run: got, Reason: "idempotencyKey"}
			case r.UniqueKey != nil: // ignored: an active run has its uniqueBy parameters
				var act Run
				if err := tx.Where("unique_key = ?", *r.UniqueKey).Take(&act).Error; err != nil {
					return fmt.Errorf("jobs: enqueue keyed: find the active run: %w", err)
				}
				out[i] = KeyedResult{Run: &act, Reason: "active"}
			default:
				return fmt.Errorf("jobs: enqueue keyed: run with key %q was neither stored nor found", keys[i])
			}
		}
		for start := 0; start < len(params); start += s.batchRows() {
			end := min(start+s.batchRows(), len(params))
			if err := tx.Create(params[start:end]).Error; err != nil {
				return fmt.Errorf("jobs: enqueue keyed: parameters: %w", err)
			}
		}
		return nil
	})
}

// cloneRuns copies rs so that the insert does not write ids into them.
func cloneRuns(rs []*Run) []*Run {
	out := make([]*Run, len(rs))
	for i, r := range rs {
		c := *r
		out[i] = &c
	}
	return out
}

// runsByKey returns the runs with the given idempotency keys, by key:
// only the fields EnqueueKeyed needs (id, job, status, key, request hash,
// creator, creation time).
func runsByKey(tx *gorm.DB, keys []string) (map[string]*Run, error) {
	var got []Run
	if err := tx.Select("id", "job", "status", "idempotency_key", "request_hash", "triggered_by", "created_at").
		Where("idempotency_key IN ?", keys).Find(&got).Error; err != nil {
		return nil, fmt.Errorf("jobs: enqueue keyed: read keys: %w", err)
	}
	m := make(map[string]*Run, len(got))
	for i := range got {
		m[*got[i].IdempotencyKey] = &got[i]
	}
	return m, nil
}
