package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jobrunner/jobrunner/jobs"
)

// fileLine is one run a bulk-trigger file asks for.
type fileLine struct {
	line int
	text map[string]string
	key  string
}

// lineResult is one line's outcome in `trigger --from-file --json`.
type lineResult struct {
	Line     int    `json:"line"`
	RunID    int64  `json:"runId,omitempty"`
	Created  bool   `json:"created"`
	Existing string `json:"existing,omitempty"`
	Error    string `json:"error,omitempty"`
}

// bulkChunk is how many lines are validated and stored at a time (memory
// stays flat for long files).
const bulkChunk = 5000

// keyColumn is the optional CSV column / JSON field of a line's own
// idempotency key.
const keyColumn = "idempotencyKey"

// readLines parses a CSV file (a header row of parameter names, optional
// column idempotencyKey) or a JSON Lines file (.jsonl / .ndjson: one
// object per line, either {"parameters":{…},"idempotencyKey":"…"} or the
// parameters themselves), calling fn for each line.
func readLines(path string, fn func(fileLine) error) error {
	f, err := os.Open(path)
	if err != nil {
		return usagef("--from-file: %v", err)
	}
	defer f.Close()
	if strings.HasSuffix(path, ".jsonl") || strings.HasSuffix(path, ".ndjson") {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			n++
			raw := strings.TrimSpace(sc.Text())
			if raw == "" {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal([]byte(raw), &obj); err != nil {
				return fmt.Errorf("%s:%d: not a JSON object: %v", path, n, err)
			}
			fl := fileLine{line: n, text: map[string]string{}}
			if p, ok := obj["parameters"]; ok {
				var key string
				if k, ok := obj[keyColumn]; ok {
					if err := json.Unmarshal(k, &key); err != nil {
						return fmt.Errorf("%s:%d: idempotencyKey is not a string", path, n)
					}
				}
				fl.key = key
				obj = nil // the parameters alone, not the envelope
				if err := json.Unmarshal(p, &obj); err != nil {
					return fmt.Errorf("%s:%d: parameters is not an object", path, n)
				}
			}
			for k, v := range obj {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					s = string(v) // a number or boolean as written
				}
				if k == keyColumn && fl.key == "" {
					fl.key = s
					continue
				}
				fl.text[k] = s
			}
			if err := fn(fl); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		return nil
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for i := range header {
		header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
	}
	for n := 2; ; n++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != len(header) {
			return fmt.Errorf("%s:%d: %d fields, the header has %d", path, n, len(rec), len(header))
		}
		fl := fileLine{line: n, text: map[string]string{}}
		for i, h := range header {
			if h == keyColumn {
				fl.key = rec[i]
				continue
			}
			if rec[i] != "" {
				fl.text[h] = rec[i]
			}
		}
		if err := fn(fl); err != nil {
			return err
		}
	}
}

// triggerFromFile queues a run of job for each line of path.
func (a *app) triggerFromFile(ctx context.Context, name, path string, preview, asJSON bool, notBefore time.Time) error {
	set, err := a.definitions()
	if err != nil {
		return err
	}
	job, ok := set.Job(name)
	if !ok {
		return usagef("unknown job %q (see: jobrunner definitions list)", name)
	}
	if len(job.Steps) > 0 {
		return usagef("--from-file: job %s has steps; trigger it line by line", name)
	}
	if _, _, err := a.executor().Resolve(job, preview); err != nil {
		return usageError{err}
	}
	s, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	who := cliUser() + " (file " + path + ")"
	var (
		results           []lineResult
		batch             []jobs.NewRun
		batchLines        []int
		created, existing int
		failed, total     int
		began             = time.Now()
		printErr          = func(r lineResult) { fmt.Fprintf(a.stderr, "%s:%d: %s\n", path, r.Line, r.Error) }
		flush             func() error
		failedLines       []int
	)
	// One chunk is stored while the next is read and validated.
	type stored struct {
		done  chan struct{}
		res   []jobs.KeyedResult
		err   error
		lines []int
	}
	var inflight *stored
	collect := func() error {
		if inflight == nil {
			return nil
		}
		<-inflight.done
		p := inflight
		inflight = nil
		if p.err != nil {
			return p.err
		}
		for i, r := range p.res {
			lr := lineResult{Line: p.lines[i]}
			switch {
			case r.Err != nil:
				lr.Error = r.Err.Error()
				failed++
				failedLines = append(failedLines, lr.Line)
				printErr(lr)
			case r.Created:
				lr.RunID, lr.Created = r.Run.ID, true
				created++
			default:
				lr.RunID, lr.Existing = r.Run.ID, r.Reason
				existing++
			}
			if asJSON {
				results = append(results, lr)
			}
		}
		return nil
	}
	flush = func() error {
		if err := collect(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		p := &stored{done: make(chan struct{}), lines: batchLines}
		b := batch
		go func() {
			defer close(p.done)
			p.res, p.err = s.EnqueueKeyed(ctx, b)
		}()
		inflight = p
		batch, batchLines = nil, nil
		return nil
	}
	err = readLines(path, func(fl fileLine) error {
		total++
		vals, perr := job.ParseParams(fl.text)
		if perr != nil {
			lr := lineResult{Line: fl.line, Error: perr.Error()}
			failed++
			failedLines = append(failedLines, fl.line)
			printErr(lr)
			if asJSON {
				results = append(results, lr)
			}
			return nil
		}
		key := fl.key
		if key == "" {
			key = jobs.BulkKey(job.Name, vals)
		}
		batch = append(batch, jobs.NewRun{Job: job, Params: vals, Trigger: jobs.TriggerManual, TriggeredBy: who,
			IdempotencyKey: key, Preview: preview, NotBefore: notBefore})
		batchLines = append(batchLines, fl.line)
		if len(batch) >= bulkChunk {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if cerr := collect(); err == nil {
		err = cerr
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("after %d of the lines: %w", created+existing+failed, err)
	}
	took := time.Since(began)
	if asJSON {
		sort.Slice(results, func(i, j int) bool { return results[i].Line < results[j].Line })
		if err := writeJSON(a.stdout, map[string]any{"lines": total, "created": created, "existing": existing, "failed": failed, "results": results}); err != nil {
			return err
		}
	} else {
		rate := 0.0
		if took > 0 {
			rate = float64(created) / took.Seconds()
		}
		fmt.Fprintf(a.stdout, "%d lines: %d runs queued, %d already existed, %d failed (%s, %.0f runs/s)\n",
			total, created, existing, failed, took.Round(time.Millisecond), rate)
	}
	if failed > 0 {
		return failedError{fmt.Sprintf("%d of %d lines were not queued (lines %s)", failed, total, lineList(failedLines))}
	}
	return nil
}

// lineList names up to ten line numbers.
func lineList(ls []int) string {
	var b strings.Builder
	for i, l := range ls {
		if i == 10 {
			fmt.Fprintf(&b, ", … %d more", len(ls)-10)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, l)
	}
	return b.String()
}
