package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/erpdemo"
	"github.com/jobrunner/jobrunner/hooks"
)

// TestHookFlood5000Calls sends 5,000 calls to the built-in order-cancelled
// hook of two serve instances from 20 clients: 4,000 distinct signed
// events, 500 repeats of them, 300 the filter passes over and 200 with a
// bad signature. No call gets a 5xx; each distinct event starts exactly
// one run (its repeats answer with the same id); the refused and filtered
// ones store nothing; every run cancels its order in the ERP once.
func TestHookFlood5000Calls(t *testing.T) {
	const (
		events  = 4000
		repeats = 500
		skipped = 300
		forged  = 200
		clients = 20
		secret  = "e2e-hook-secret-CANARY-9d"
	)
	dsn, store := database(t)
	erp, err := erpdemo.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = erp.Close() })
	number := func(i int) string { return fmt.Sprintf("HK%05d", i) }
	for i := range events {
		erp.Put(erpdemo.Order{OrderNumber: number(i), Status: erpdemo.StatusOpen})
	}
	env := baseEnv("JOBRUNNER_ERP_URL="+erp.URL(), "JOBRUNNER_ERP_TOKEN="+erp.Token(), "JOBRUNNER_HOOK_SECRET="+secret)
	var bases []string
	for i := range 2 {
		addr := freeAddr(t)
		p := serve(t, fmt.Sprintf("serve%d", i+1), dsn, "", env,
			"--http", addr, "--workers", "16", "--poll", "500ms", "--no-scheduler", "--log-level", "info")
		p.waitLog("HTTP API and dashboard listening", 60*time.Second)
		bases = append(bases, "http://"+addr)
	}
	hook, ok := definitions.Builtin().Hook("order-cancelled")
	require.True(t, ok)

	type call struct {
		body   []byte
		key    string // signing secret
		want   int
		event  int // -1: none
		status int
		runID  int64
		answer string
	}
	var calls []*call
	payload := func(i int, status string) []byte {
		return []byte(fmt.Sprintf(`{"id":"evt-%d","status":%q,"order":{"number":%q}}`, i, status, number(i)))
	}
	for i := range events {
		calls = append(calls, &call{body: payload(i, "canceled"), key: secret, want: http.StatusAccepted, event: i})
	}
	for i := range repeats {
		calls = append(calls, &call{body: payload(i*7%events, "canceled"), key: secret, want: http.StatusAccepted, event: i * 7 % events})
	}
	for i := range skipped {
		calls = append(calls, &call{body: payload(events+i, "paid"), key: secret, want: http.StatusNoContent, event: -1})
	}
	for i := range forged {
		calls = append(calls, &call{body: payload(events+skipped+i, "canceled"), key: "guess", want: http.StatusUnauthorized, event: -1})
	}
	// Interleave: repeats arrive while their first delivery may still be in flight.
	for i := range calls {
		j := (i * 7919) % len(calls)
		calls[i], calls[j] = calls[j], calls[i]
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	work := make(chan int)
	var wg sync.WaitGroup
	begin := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				cl := calls[i]
				ts := time.Now().Unix()
				req, _ := http.NewRequest(http.MethodPost, bases[(c+i)%len(bases)]+"/hooks/order-cancelled", bytes.NewReader(cl.body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Timestamp", strconv.FormatInt(ts, 10))
				req.Header.Set("X-Signature", hooks.Sign(hook, cl.key, cl.body, ts))
				resp, err := client.Do(req)
				if err != nil {
					cl.status, cl.answer = -1, err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				var v struct {
					RunID int64 `json:"runId"`
				}
				_ = json.Unmarshal(b, &v)
				cl.status, cl.runID, cl.answer = resp.StatusCode, v.RunID, string(b)
			}
		}()
	}
	for i := range calls {
		work <- i
	}
	close(work)
	wg.Wait()
	took := time.Since(begin)

	runOf := map[int]int64{}
	byStatus := map[int]int{}
	for _, cl := range calls {
		byStatus[cl.status]++
		require.Less(t, cl.status, 500, "a 5xx: %s", cl.answer)
		require.Equal(t, cl.want, cl.status, "%s: %s", cl.body, cl.answer)
		if cl.event >= 0 {
			require.Positive(t, cl.runID, cl.answer)
			if prev, ok := runOf[cl.event]; ok {
				require.Equal(t, prev, cl.runID, "event %d delivered twice got two runs", cl.event)
			}
			runOf[cl.event] = cl.runID
		}
	}
	require.Len(t, runOf, events)

	eventually(t, 5*time.Minute, 500*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"] == events, fmt.Sprintf("all %d runs to succeed (now %v)", events, c)
	})
	var n int64
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) FROM runs").Scan(&n).Error)
	require.Equal(t, int64(events), n, "one run per distinct event, none for the refused or filtered calls")
	for i := range events {
		require.Equal(t, 1, erp.CancelsApplied(number(i)), number(i))
	}
	t.Logf("%d hook calls from %d clients in %s (%.0f calls/s): %v by status; %d runs, each cancel applied once",
		len(calls), clients, took.Round(time.Millisecond), float64(len(calls))/took.Seconds(), byStatus, n)
}
