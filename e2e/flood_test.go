package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/erpdemo"
)

// TestFlood10kTriggersFrom20Clients posts 10,000 OrderCancel triggers for
// distinct orders from 20 concurrent clients, spread over two serve
// instances, against the demo ERP running in this test process. Every
// trigger must be accepted (202) as its own run, every run must succeed,
// and the ERP must have received exactly one cancel call for every order
// and applied it once: each run executed once.
func TestFlood10kTriggersFrom20Clients(t *testing.T) {
	const (
		orders  = 10000
		clients = 20
	)
	dsn, store := database(t)
	erp, err := erpdemo.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = erp.Close() })
	number := func(i int) string { return fmt.Sprintf("E2E%05d", i) }
	for i := range orders {
		erp.Put(erpdemo.Order{OrderNumber: number(i), Status: erpdemo.StatusOpen})
	}

	env := baseEnv("JOBRUNNER_ERP_URL="+erp.URL(), "JOBRUNNER_ERP_TOKEN="+erp.Token())
	var bases []string
	for i := range 2 {
		addr := freeAddr(t)
		p := serve(t, fmt.Sprintf("serve%d", i+1), dsn, "", env,
			"--http", addr, "--workers", "16", "--poll", "500ms", "--no-scheduler", "--log-level", "info")
		p.waitLog("HTTP API and dashboard listening", 60*time.Second)
		bases = append(bases, "http://"+addr)
	}

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	type accepted struct {
		status int
		id     int64
		body   string
	}
	results := make([]accepted, orders)
	work := make(chan int)
	var wg sync.WaitGroup
	begin := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				base := bases[(c+i)%len(bases)]
				body, _ := json.Marshal(map[string]any{"parameters": map[string]string{"OrderNumber": number(i)}})
				resp, err := client.Post(base+"/api/v1/jobs/OrderCancel/runs", "application/json", bytes.NewReader(body))
				if err != nil {
					results[i] = accepted{status: -1, body: err.Error()}
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				var v struct {
					ID int64 `json:"id"`
				}
				_ = json.Unmarshal(b, &v)
				results[i] = accepted{status: resp.StatusCode, id: v.ID, body: string(b)}
			}
		}()
	}
	for i := range orders {
		work <- i
	}
	close(work)
	wg.Wait()
	enqueued := time.Since(begin)

	ids := map[int64]int{}
	for i, r := range results {
		require.Equal(t, http.StatusAccepted, r.status, "trigger of %s: %s", number(i), r.body)
		require.Positive(t, r.id, "trigger of %s: %s", number(i), r.body)
		if prev, dup := ids[r.id]; dup {
			t.Fatalf("orders %s and %s got the same run %d", number(prev), number(i), r.id)
		}
		ids[r.id] = i
	}

	eventually(t, 5*time.Minute, 500*time.Millisecond, func() (bool, string) {
		c := statusCounts(t, store, "OrderCancel")
		return c["succeeded"]+c["failed"]+c["cancelled"]+c["succeeded_with_warnings"] == orders,
			fmt.Sprintf("all %d runs to finish (now %v)", orders, c)
	})
	took := time.Since(begin)
	c := statusCounts(t, store, "OrderCancel")
	require.Equal(t, map[string]int{"succeeded": orders}, c, "final statuses")

	var dbIDs []int64
	require.NoError(t, store.DB().Raw("SELECT id FROM runs WHERE job = 'OrderCancel'").Scan(&dbIDs).Error)
	require.Len(t, dbIDs, orders, "runs in the database")
	for _, id := range dbIDs {
		_, ok := ids[id]
		require.True(t, ok, "run %d in the database was not returned by any trigger", id)
	}
	var once struct{ N, Multi int }
	require.NoError(t, store.DB().Raw("SELECT COUNT(*) AS n, COALESCE(SUM(attempt <> 1), 0) AS multi FROM runs WHERE job = 'OrderCancel'").Scan(&once).Error)
	require.Zero(t, once.Multi, "runs executed more than once")

	for i := range orders {
		require.Equal(t, 1, erp.CancelCalls(number(i)), "cancel calls for %s", number(i))
		require.Equal(t, 1, erp.CancelsApplied(number(i)), "cancels applied to %s", number(i))
		o, _ := erp.Get(number(i))
		require.Equal(t, erpdemo.StatusCancelled, o.Status, "order %s", number(i))
	}

	var perOwner []struct {
		Owner string
		N     int
	}
	require.NoError(t, store.DB().Raw("SELECT owner, COUNT(*) AS n FROM run_attempts_all GROUP BY owner ORDER BY owner").Scan(&perOwner).Error)
	t.Logf("%d triggers from %d clients accepted in %s (%.0f/s); all %d runs succeeded after %s (%.0f runs/s end to end); executions per instance: %v",
		orders, clients, enqueued.Round(time.Millisecond), float64(orders)/enqueued.Seconds(),
		orders, took.Round(time.Millisecond), float64(orders)/took.Seconds(), perOwner)
}
