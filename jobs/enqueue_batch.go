package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm"

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
	// Run is the created run, or the existing run (with its ID, Job,
	// Status, IdempotencyKey, TriggeredBy and CreatedAt only); nil when Err
	// is set.
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
			// A deadlock between parallel chunks, a key taken meanwhile:
			// the keys make a retry safe. The next try sees a key taken
			// meanwhile as taken, so those count apart (up to 20).
			for tries, raced := 0, 0; ; {
				err = s.enqueueKeyedChunk(ctx, nrs[start:end], out[start:end])
				if err == nil || ctx.Err() != nil {
					break
				}
				if errors.Is(err, errKeyRaced) {
					raced++
				} else {
					tries++
				}
				if tries == 3 || raced == 20 {
					break
				}
				time.Sleep(time.Duration(tries+1) * 5 * time.Millisecond)
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

// errKeyRaced: another transaction stored or took over one of a chunk's
// keys while EnqueueKeyed was storing it; the chunk is rolled back and
// tried again (and then finds the key taken).
var errKeyRaced = errors.New("jobs: enqueue keyed: a key was taken meanwhile")

func (s *Store) enqueueKeyedChunk(ctx context.Context, nrs []NewRun, out []KeyedResult) error {
	now := time.Now().UTC()
	rows := make([]*Run, len(nrs))
	texts := make([]map[string]string, len(nrs))
	for i, nr := range nrs {
		r, text, err := newRunRow(nr, now)
		if err != nil {
			return err
		}
		rows[i], texts[i] = r, text
	}
	res := make([]KeyedResult, len(nrs)) // copied to out once committed
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The runs the lines' idempotency keys name already, then the
		// holders of the active keys of the other lines.
		iks := make([]string, len(rows))
		for i, r := range rows {
			iks[i] = idemKey(*r.IdempotencyKey)
		}
		named, err := keyRuns(tx, iks)
		if err != nil {
			return err
		}
		var uks []string
		for i, r := range rows {
			if h, ok := named[iks[i]]; (!ok || h.run == nil) && r.UniqueKey != nil {
				uks = append(uks, activeKey(*r.UniqueKey))
			}
		}
		holders, err := keyRuns(tx, uks)
		if err != nil {
			return err
		}
		var fresh []*Run
		var freshAt []int
		taken := map[string]*Run{} // active keys of earlier lines of the chunk
		for i, r := range rows {
			if h, ok := named[iks[i]]; ok && h.run != nil { // (a key whose run was deleted by hand is free)
				switch {
				case h.run.RequestHash == nil || *h.run.RequestHash != *r.RequestHash:
					res[i] = KeyedResult{Err: fmt.Errorf("%w (run %d)", ErrIdempotencyMismatch, h.id)}
				default:
					res[i] = KeyedResult{Run: h.run, Reason: "idempotencyKey"}
				}
				continue
			}
			if r.UniqueKey != nil {
				k := activeKey(*r.UniqueKey)
				if t := taken[k]; t != nil {
					res[i] = KeyedResult{Run: t, Reason: "active"}
					continue
				}
				if h, ok := holders[k]; ok && h.run != nil && !h.run.Status.Final() {
					res[i] = KeyedResult{Run: h.run, Reason: "active"}
					continue
				}
				taken[k] = r
			}
			fresh, freshAt = append(fresh, r), append(freshAt, i)
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := insertRunRows(tx, s.dialect, s.batchRows()/2, fresh); err != nil {
			return fmt.Errorf("jobs: enqueue keyed: %w", err)
		}
		// The new runs' keys: a key another transaction stored meanwhile
		// fails the insert (the chunk is tried again, and then finds it);
		// a key that is free to take over (its run final, for an active
		// key, or gone) changes hands only if it still names that run.
		var keys [][]any
		type swap struct {
			k        string
			from, to int64
		}
		var swaps []swap
		add := func(k string, id int64, held map[string]keyHolder) {
			if h, ok := held[k]; ok {
				swaps = append(swaps, swap{k, h.id, id})
			} else {
				keys = append(keys, []any{k, id})
			}
		}
		for _, r := range fresh {
			add(idemKey(*r.IdempotencyKey), r.ID, named)
			if r.UniqueKey != nil {
				add(activeKey(*r.UniqueKey), r.ID, holders)
			}
		}
		if err := insertRows(tx, s.batchRows(), "run_keys", keyCols, keys); err != nil {
			if isDuplicate(tx, err) {
				return fmt.Errorf("%w: %v", errKeyRaced, err)
			}
			return fmt.Errorf("jobs: enqueue keyed: keys: %w", err)
		}
		for _, w := range swaps {
			sw := tx.Model(&runKey{}).Where("k = ? AND run_id = ?", w.k, w.from).Update("run_id", w.to)
			if sw.Error != nil {
				return fmt.Errorf("jobs: enqueue keyed: take over key %s: %w", w.k, sw.Error)
			}
			if sw.RowsAffected != 1 {
				return errKeyRaced
			}
		}
		var params [][]any
		for j, r := range fresh {
			res[freshAt[j]] = KeyedResult{Run: r, Created: true}
			for k, v := range texts[freshAt[j]] {
				params = append(params, []any{r.ID, k, indexValue(v)})
			}
		}
		if err := insertRows(tx, s.batchRows(), "run_params", paramCols, params); err != nil {
			return fmt.Errorf("jobs: enqueue keyed: parameters: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	copy(out, res)
	return nil
}

var keyCols = []string{"k", "run_id"}

// keyHolder is the run a key of run_keys names: its id, and the run (nil
// when its row is gone).
type keyHolder struct {
	id  int64
	run *Run
}

// keyRuns returns, by key, the runs that keys of run_keys name: only the
// fields EnqueueKeyed needs (id, job, status, key, request hash, creator,
// creation time).
func keyRuns(tx *gorm.DB, keys []string) (map[string]keyHolder, error) {
	m := map[string]keyHolder{}
	if len(keys) == 0 {
		return m, nil
	}
	var ks []runKey
	if err := tx.Where("k IN ?", keys).Find(&ks).Error; err != nil {
		return nil, fmt.Errorf("jobs: enqueue keyed: read keys: %w", err)
	}
	if len(ks) == 0 {
		return m, nil
	}
	ids := make([]int64, len(ks))
	for i, k := range ks {
		ids[i] = k.RunID
	}
	var got []Run
	if err := tx.Select("id", "job", "status", "idempotency_key", "request_hash", "triggered_by", "created_at").
		Where("id IN ?", ids).Find(&got).Error; err != nil {
		return nil, fmt.Errorf("jobs: enqueue keyed: read the runs of keys: %w", err)
	}
	byID := make(map[int64]*Run, len(got))
	for i := range got {
		byID[got[i].ID] = &got[i]
	}
	for _, k := range ks {
		m[k.K] = keyHolder{id: k.RunID, run: byID[k.RunID]}
	}
	return m, nil
}
