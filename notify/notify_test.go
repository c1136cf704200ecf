package notify

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
	"github.com/jobrunner/jobrunner/migrations"
)

const wait = 15 * time.Second

func assertNoSecrets(t *testing.T, what string, texts ...string) {
	t.Helper()
	for _, text := range texts {
		for _, secret := range []string{hookSecret, smtpPass, erpToken} {
			require.NotContains(t, text, secret, "%s holds a secret", what)
		}
	}
}

func TestDeliversEmailAndSignedWebhook(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ms := newMailServer(t)
		ms.start()
		hook := newWebhook(t)
		hook.failNext = 2 // two failed attempts first: errors are logged and recorded
		set := testDefs(t, "failure", hook.srv.URL+"/hook", ms.port())
		job, _ := set.Job("OrderCancel")
		logs := &syncBuffer{}
		n := newNotifier(t, s, set, ms.roots, logs, nil)
		n.Start(context.Background())
		defer n.Stop()

		leak := fmt.Sprintf("ERP refused token %s (smtp %s, hook %s)", erpToken, smtpPass, hookSecret)
		run := finishRun(t, s, job, jobs.StatusFailed, leak, false)

		require.Eventually(t, func() bool { return len(ms.messages()) == 1 && len(hook.deliveries()) == 1 }, wait, 10*time.Millisecond, "%s", logs)
		link := "https://jobrunner.example.com/runs/" + strconv.FormatInt(run.ID, 10)

		msg := ms.messages()[0]
		require.True(t, msg.TLS, "STARTTLS")
		require.Equal(t, smtpUser, msg.Authn)
		require.Equal(t, "jobrunner@example.com", msg.From)
		require.Equal(t, []string{"ops@example.com"}, msg.To)
		pm, subject, body := msg.parsed(t)
		require.Equal(t, fmt.Sprintf("[jobrunner] OrderCancel run %d failed (failure)", run.ID), subject)
		require.Contains(t, body, link)
		require.Contains(t, body, "OrderNumber = WEB000123")
		require.Contains(t, body, "ERP_409")
		require.Contains(t, pm.Header.Get("Message-ID"), fmt.Sprintf(".run-%d@example.com>", run.ID))

		d := hook.deliveries()[0]
		require.Equal(t, KindFailure, d.Event)
		sum := d.Summary
		require.Equal(t, run.ID, sum.ID)
		require.Equal(t, "OrderCancel", sum.Job)
		require.Equal(t, "failed", sum.Status)
		require.Equal(t, "manual", sum.Trigger)
		require.Equal(t, "tester", sum.TriggeredBy)
		require.JSONEq(t, `{"OrderNumber":"WEB000123"}`, string(sum.Parameters))
		require.Equal(t, "ERP_409", sum.ErrorCode)
		require.Equal(t, "ERP refused token [REDACTED] (smtp [REDACTED], hook [REDACTED])", sum.ErrorMessage)
		require.Equal(t, 1, sum.Attempts)
		require.NotNil(t, sum.FinishedAt)
		require.False(t, sum.CreatedAt.IsZero())
		require.Equal(t, link, sum.Link)
		require.Equal(t, &Streak{FirstRunID: run.ID, Failures: 1}, sum.Streak)
		require.Zero(t, hook.badSigs)

		require.Eventually(t, func() bool {
			rows, err := ForRun(context.Background(), s.DB(), run.ID)
			require.NoError(t, err)
			return len(rows) == 2 && rows[0].Status == StatusSent && rows[1].Status == StatusSent
		}, wait, 10*time.Millisecond)
		rows, _ := ForRun(context.Background(), s.DB(), run.ID)
		byChannel := map[string]Notification{}
		for _, r := range rows {
			byChannel[r.Channel] = r
			require.Equal(t, KindFailure, r.Kind)
			require.NotNil(t, r.SentAt)
		}
		require.Equal(t, 1, byChannel[ChannelEmail].Attempts)
		require.Equal(t, 3, byChannel[ChannelWebhook].Attempts) // 2 × 503, then 204
		require.Contains(t, logs.String(), "503 Service Unavailable")
		require.Contains(t, logs.String(), "notification sent")

		n.Stop()
		assertNoSecrets(t, "a notification", string(msg.Data), string(d.Raw), body)
		assertNoSecrets(t, "the log", logs.String())
		assertNoSecrets(t, "a table", dumpTables(t, s))
	})
}

func TestFailureStreakSendsOneFailureAndOneRecovery(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ms := newMailServer(t)
		ms.start()
		hook := newWebhook(t)
		set := testDefs(t, "failure", hook.srv.URL, ms.port())
		job, _ := set.Job("OrderCancel")
		n := newNotifier(t, s, set, ms.roots, nil, nil)
		n.Start(context.Background())
		defer n.Stop()

		var first int64
		for i := range 10 { // a job failing "every minute"
			r := finishRun(t, s, job, jobs.StatusFailed, "Cancel failed as order is in [Shipped] state", false)
			if i == 0 {
				first = r.ID
			}
			time.Sleep(5 * time.Millisecond)
		}
		ok := finishRun(t, s, job, jobs.StatusSucceeded, "", false)

		require.Eventually(t, func() bool { return len(hook.deliveries()) >= 2 && len(ms.messages()) >= 2 }, wait, 10*time.Millisecond)
		time.Sleep(300 * time.Millisecond) // anything more would have come by now
		ds := hook.deliveries()
		require.Len(t, ds, 2)
		require.Equal(t, KindFailure, ds[0].Event)
		require.Equal(t, first, ds[0].Summary.ID)
		require.Equal(t, KindRecovery, ds[1].Event)
		require.Equal(t, ok.ID, ds[1].Summary.ID)
		require.Equal(t, &Streak{FirstRunID: first, Failures: 10}, ds[1].Summary.Streak)
		msgs := ms.messages()
		require.Len(t, msgs, 2)
		_, subject, body := msgs[1].parsed(t)
		require.Equal(t, fmt.Sprintf("[jobrunner] OrderCancel run %d succeeded (recovery)", ok.ID), subject)
		require.Contains(t, body, "after 10 failed run(s)")

		// The next failure starts a new streak.
		again := finishRun(t, s, job, jobs.StatusFailed, "down again", false)
		require.Eventually(t, func() bool { return len(hook.deliveries()) == 3 }, wait, 10*time.Millisecond)
		require.Equal(t, again.ID, hook.deliveries()[2].Summary.ID)
		require.Equal(t, KindFailure, hook.deliveries()[2].Event)
	})
}

func TestUnreachableSMTPDelaysButLosesNothing(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ms := newMailServer(t) // not started: connections are refused
		hook := newWebhook(t)
		set := testDefs(t, "failure", hook.srv.URL, ms.port())
		job, _ := set.Job("OrderCancel")
		logs := &syncBuffer{}
		n := newNotifier(t, s, set, ms.roots, logs, nil)
		n.Start(context.Background())
		defer n.Stop()

		run := finishRun(t, s, job, jobs.StatusFailed, "boom", false)
		email := func() Notification {
			rows, err := ForRun(context.Background(), s.DB(), run.ID)
			require.NoError(t, err)
			for _, r := range rows {
				if r.Channel == ChannelEmail {
					return r
				}
			}
			return Notification{}
		}
		require.Eventually(t, func() bool { e := email(); return e.Attempts >= 3 && e.Status != StatusSent }, wait, 10*time.Millisecond)
		require.Contains(t, email().LastError, "smtp 127.0.0.1:")
		require.Contains(t, logs.String(), "will retry")
		require.Len(t, hook.deliveries(), 1, "the webhook does not wait for the e-mail")

		ms.start()
		require.Eventually(t, func() bool { return len(ms.messages()) == 1 }, wait, 10*time.Millisecond)
		require.Eventually(t, func() bool { return email().Status == StatusSent }, wait, 10*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		require.Len(t, ms.messages(), 1)
		_, subject, body := ms.messages()[0].parsed(t)
		require.Contains(t, subject, fmt.Sprintf("run %d failed", run.ID))
		require.Contains(t, body, "/runs/"+strconv.FormatInt(run.ID, 10))
		require.Empty(t, email().LastError)
		n.Stop()
		assertNoSecrets(t, "the log", logs.String())
	})
}

func TestNotificationFailsAfterMaxAttempts(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		hook.failNext = 1000
		set := loadDefs(t, fmt.Sprintf(`
connections: [{name: erp, type: http}]
jobs:
  - name: J
    connection: erp
    processor: P
    notify: {webhook: {url: %q, secret: JR_HOOK_SECRET}}
`, hook.srv.URL))
		job, _ := set.Job("J")
		n := newNotifier(t, s, set, nil, nil, func(c *Config) { c.MaxAttempts = 3 })
		n.Start(context.Background())
		defer n.Stop()
		run := finishRun(t, s, job, jobs.StatusFailed, "x", false)
		require.Eventually(t, func() bool {
			rows, _ := ForRun(context.Background(), s.DB(), run.ID)
			return len(rows) == 1 && rows[0].Status == StatusFailed
		}, wait, 10*time.Millisecond)
		rows, _ := ForRun(context.Background(), s.DB(), run.ID)
		require.Equal(t, 3, rows[0].Attempts)
		require.Contains(t, rows[0].LastError, "503")
	})
}

func TestPreviewRunsNotifyOnlyWhenAsked(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ms := newMailServer(t)
		ms.start()
		hook := newWebhook(t)
		set := testDefs(t, "failure, success", hook.srv.URL, ms.port())
		cancelJob, _ := set.Job("OrderCancel")
		syncJob, _ := set.Job("PreviewedSync")
		quiet, _ := set.Job("Quiet")
		n := newNotifier(t, s, set, ms.roots, nil, nil)
		ctx := context.Background()

		finishRun(t, s, cancelJob, jobs.StatusFailed, "preview failure", true) // never notifies, no streak
		finishRun(t, s, quiet, jobs.StatusFailed, "no notify section", false)
		pv := finishRun(t, s, syncJob, jobs.StatusSucceeded, "", true) // opted in
		real := finishRun(t, s, cancelJob, jobs.StatusSucceeded, "", false)
		_, _, err := n.Scan(ctx)
		require.NoError(t, err)
		_, err = n.Deliver(ctx)
		require.NoError(t, err)

		ds := hook.deliveries()
		require.Len(t, ds, 2)
		got := map[int64]delivery{}
		for _, d := range ds {
			got[d.Summary.ID] = d
		}
		require.Equal(t, KindCompletion, got[pv.ID].Event)
		require.True(t, got[pv.ID].Summary.Preview)
		require.Equal(t, KindSuccess, got[real.ID].Event, "the preview failure opened no streak, so this is no recovery")
		require.Len(t, allRows(t, s), 3) // pv: webhook; real: webhook + email
	})
}

func TestRunsFinishingOutOfOrderAreNotMissed(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		set := loadDefs(t, fmt.Sprintf(`
connections: [{name: erp, type: http}]
jobs:
  - name: J
    connection: erp
    processor: P
    notify: {on: [completion], webhook: {url: %q, secret: JR_HOOK_SECRET}}
`, hook.srv.URL))
		job, _ := set.Job("J")
		n := newNotifier(t, s, set, nil, nil, func(c *Config) { c.CommitMargin = time.Millisecond; c.Batch = 2 })
		ctx := context.Background()
		cursor := func() int64 {
			v, ok, err := s.JobState(ctx, CursorJob, CursorName)
			require.NoError(t, err)
			require.True(t, ok, "migration 0002 creates the cursor")
			c, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			return c
		}
		slow := enqueue(t, s, job, false) // stays queued for a while
		var done []int64
		for range 5 {
			done = append(done, finishRun(t, s, job, jobs.StatusSucceeded, "", false).ID)
		}
		time.Sleep(5 * time.Millisecond)
		for {
			_, more, err := n.Scan(ctx)
			require.NoError(t, err)
			if !more {
				break
			}
		}
		require.LessOrEqual(t, cursor(), slow, "the cursor never passes an active run")

		finishID(t, s, slow, jobs.StatusFailed, "late")
		time.Sleep(5 * time.Millisecond)
		_, _, err := n.Scan(ctx)
		require.NoError(t, err)
		_, _, err = n.Scan(ctx) // a repeated scan changes nothing
		require.NoError(t, err)
		require.Greater(t, cursor(), done[len(done)-1])
		var handled int64
		require.NoError(t, s.DB().Raw("SELECT COUNT(*) FROM notification_runs").Scan(&handled).Error)
		require.Zero(t, handled, "handled marks below the cursor are deleted")

		for {
			got, err := n.Deliver(ctx)
			require.NoError(t, err)
			if got == 0 {
				break
			}
		}
		ids := map[int64]int{}
		for _, d := range hook.deliveries() {
			ids[d.Summary.ID]++
		}
		require.Len(t, ids, 6)
		require.Equal(t, 1, ids[slow])
		for _, id := range done {
			require.Equal(t, 1, ids[id])
		}
	})
}

func TestTwoNotifiersSendEachNotificationOnce(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		hook.delay = 3 * time.Millisecond
		var b strings.Builder
		b.WriteString("connections: [{name: erp, type: http}]\njobs:\n")
		for i := range 8 {
			fmt.Fprintf(&b, "  - {name: J%d, connection: erp, processor: P, notify: {on: [completion], webhook: {url: %q, secret: JR_HOOK_SECRET}}}\n", i, hook.srv.URL)
		}
		set := loadDefs(t, b.String())
		tweak := func(c *Config) { c.Batch = 3; c.PollInterval = 5 * time.Millisecond }
		n1 := newNotifier(t, s, set, nil, nil, func(c *Config) { tweak(c); c.Owner = "a" })
		n2 := newNotifier(t, s, set, nil, nil, func(c *Config) { tweak(c); c.Owner = "b" })
		ctx := context.Background()
		n1.Start(ctx)
		n2.Start(ctx)
		defer n1.Stop()
		defer n2.Stop()

		statuses := []jobs.Status{jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusSucceededWithWarnings, jobs.StatusCancelled}
		const runs = 48
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range runs / 4 {
					job := set.Jobs[(w*runs/4+i)%len(set.Jobs)]
					finishRun(t, s, job, statuses[i%len(statuses)], "x", false)
				}
			}()
		}
		wg.Wait()
		require.Eventually(t, func() bool { return len(hook.deliveries()) >= runs }, wait, 10*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		perRun := map[int64]int{}
		perDelivery := map[string]int{}
		for _, d := range hook.deliveries() {
			perRun[d.Summary.ID]++
			perDelivery[d.ID]++
		}
		require.Len(t, hook.deliveries(), runs)
		require.Len(t, perRun, runs)
		require.Len(t, perDelivery, runs)
		for _, r := range allRows(t, s) {
			require.Equal(t, StatusSent, r.Status)
			require.Equal(t, 1, r.Attempts)
		}
	})
}

func TestLapsedLeaseIsSentAgain(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		set := loadDefs(t, fmt.Sprintf(`
connections: [{name: erp, type: http}]
jobs:
  - name: J
    connection: erp
    processor: P
    notify: {webhook: {url: %q, secret: JR_HOOK_SECRET}}
`, hook.srv.URL))
		job, _ := set.Job("J")
		short := func(c *Config) {
			c.WebhookTimeout, c.SMTPTimeout, c.Lease = 50*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond
		}
		crashed := newNotifier(t, s, set, nil, nil, short)
		other := newNotifier(t, s, set, nil, nil, short)
		ctx := context.Background()
		finishRun(t, s, job, jobs.StatusFailed, "x", false)
		_, _, err := crashed.Scan(ctx)
		require.NoError(t, err)
		claimed, err := crashed.claim(ctx) // ... and dies before sending
		require.NoError(t, err)
		require.Len(t, claimed, 1)

		got, err := other.Deliver(ctx)
		require.NoError(t, err)
		require.Zero(t, got, "a leased notification is not sent by another instance")
		time.Sleep(150 * time.Millisecond)
		got, err = other.Deliver(ctx)
		require.NoError(t, err)
		require.Equal(t, 1, got)
		require.Len(t, hook.deliveries(), 1)

		// The crashed instance's late outcome is fenced off by the token.
		crashed.record(ctx, &claimed[0], fmt.Errorf("late"), crashed.redactor())
		rows := allRows(t, s)
		require.Equal(t, StatusSent, rows[0].Status)
		require.Equal(t, 2, rows[0].Attempts)
	})
}

func TestNoGoroutinesLeakAfterStop(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		ms := newMailServer(t)
		hook := newWebhook(t)
		set := testDefs(t, "failure", hook.srv.URL, ms.port())
		job, _ := set.Job("OrderCancel")
		ignore := goleak.IgnoreCurrent()
		ms.start()
		n := newNotifier(t, s, set, ms.roots, nil, nil)
		n.Start(context.Background())
		finishRun(t, s, job, jobs.StatusFailed, "x", false)
		require.Eventually(t, func() bool { return len(ms.messages()) == 1 && len(hook.deliveries()) == 1 }, wait, 10*time.Millisecond)
		n.Stop()
		n.Stop() // idempotent
		ms.stop()
		hook.srv.CloseClientConnections()
		// The store's pooled MySQL connections (not the notifier's) keep a
		// watcher each until the store closes.
		goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction("github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher.func1"))
	})
}

func TestBackoffAndSignature(t *testing.T) {
	n := &Notifier{cfg: Config{BackoffInitial: time.Second, BackoffMax: time.Minute, Rand: func() float64 { return 0 }}}
	require.Equal(t, time.Second, n.backoff(1))
	require.Equal(t, 4*time.Second, n.backoff(3))
	require.Equal(t, time.Minute, n.backoff(50))
	n.cfg.Rand = func() float64 { return 0.999 }
	require.Greater(t, n.backoff(50), 47*time.Second)

	body := []byte(`{"id":1}`)
	sig := Sign([]byte("k"), body)
	require.True(t, strings.HasPrefix(sig, "sha256="))
	require.True(t, Verify([]byte("k"), body, sig))
	require.False(t, Verify([]byte("other"), body, sig))
	require.Equal(t, "", RunLink("", 5))
	require.Equal(t, "https://x/runs/5", RunLink("https://x/", 5))
}

func TestNewRequiresStoreAndDefinitions(t *testing.T) {
	_, err := New(Config{})
	require.Error(t, err)
	_, err = New(Config{Store: &jobs.Store{}})
	require.Error(t, err)
	_ = definitions.NotifyEvents
}

func TestMigration0002RerunsAndSkipsHistory(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		set := loadDefs(t, fmt.Sprintf(`
connections: [{name: erp, type: http}]
jobs:
  - name: J
    connection: erp
    processor: P
    notify: {on: [completion], webhook: {url: %q, secret: JR_HOOK_SECRET}}
`, hook.srv.URL))
		job, _ := set.Job("J")
		ctx := context.Background()
		// History from before the feature: two finished runs, one active.
		old := finishRun(t, s, job, jobs.StatusFailed, "x", false)
		active := enqueue(t, s, job, false)
		oldAbove := finishRun(t, s, job, jobs.StatusSucceeded, "", false)
		require.NoError(t, s.DB().Exec("DELETE FROM job_state").Error)
		require.NoError(t, s.DB().Exec("DELETE FROM notification_runs").Error)

		ms, err := migrations.List(s.Dialect())
		require.NoError(t, err)
		var m0002 migrations.Migration
		for _, m := range ms {
			if m.Version == 2 {
				m0002 = m
			}
		}
		require.Equal(t, "notifications", m0002.Name)
		for range 2 { // as after a crash half-way: every statement runs again
			for _, stmt := range migrations.Statements(m0002.SQL) {
				require.NoError(t, s.DB().Exec(stmt).Error, stmt)
			}
		}
		v, ok, err := s.JobState(ctx, CursorJob, CursorName)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, strconv.FormatInt(active, 10), v)

		finishID(t, s, active, jobs.StatusSucceeded, "")
		n := newNotifier(t, s, set, nil, nil, nil)
		_, _, err = n.Scan(ctx)
		require.NoError(t, err)
		_, err = n.Deliver(ctx)
		require.NoError(t, err)
		ds := hook.deliveries()
		require.Len(t, ds, 1, "runs finished before the migration do not notify (%d, %d)", old.ID, oldAbove.ID)
		require.Equal(t, active, ds[0].Summary.ID)
	})
}

func TestMissingSecrets(t *testing.T) {
	set := testDefs(t, "failure", "https://h.example.com/", 25)
	require.Empty(t, MissingSecrets(set, testEnv))
	require.Equal(t, []string{"JR_HOOK_SECRET", "JR_SMTP_PASSWORD"}, MissingSecrets(set, func(string) string { return "" }))
	require.Nil(t, MissingSecrets(nil, testEnv))
}

func TestWaitingRunNotifiesOnceAfterWaitingAfter(t *testing.T) {
	jobstest.For(t, func(t *testing.T, s *jobs.Store) {
		hook := newWebhook(t)
		set := loadDefs(t, fmt.Sprintf(`
connections: [{name: erp, type: http}]
jobs:
  - name: J
    connection: erp
    processor: P
    notify: {on: [waiting, failure], waitingAfter: 1h, webhook: {url: %q, secret: JR_HOOK_SECRET}}
`, hook.srv.URL))
		job, _ := set.Job("J")
		var outcomes []string
		n := newNotifier(t, s, set, nil, nil, func(c *Config) {
			c.OnOutcome = func(channel, kind, outcome string) { outcomes = append(outcomes, channel+"/"+kind+"/"+outcome) }
		})
		ctx := context.Background()
		waiting := enqueue(t, s, job, false)
		fresh := enqueue(t, s, job, false)
		enqueue(t, s, job, false) // never ran: not waiting
		now := time.Now().UTC()
		next := now.Add(15 * time.Minute)
		// Snoozed on EOI011 since 2 h (fresh: since 10 min); plain never ran.
		for _, w := range []struct {
			id    int64
			since time.Time
		}{{waiting, now.Add(-2 * time.Hour)}, {fresh, now.Add(-10 * time.Minute)}} {
			require.NoError(t, s.DB().Exec("UPDATE runs SET attempt = 3, snoozes = 3, error_code = 'EOI011', error_message = 'Order is waiting for manual authorization by the seller', started_at = ?, not_before = ? WHERE id = ?",
				w.since, next, w.id).Error)
		}
		for range 2 { // a repeated scan adds nothing
			_, err := n.ScanWaiting(ctx)
			require.NoError(t, err)
		}
		_, err := n.Deliver(ctx)
		require.NoError(t, err)
		ds := hook.deliveries()
		require.Len(t, ds, 1)
		d := ds[0]
		require.Equal(t, KindWaiting, d.Event)
		require.Equal(t, waiting, d.Summary.ID)
		require.Equal(t, "EOI011", d.Summary.ErrorCode)
		require.WithinDuration(t, now.Add(-2*time.Hour), *d.Summary.WaitingSince, time.Second)
		require.WithinDuration(t, next, *d.Summary.NextCheck, time.Second)
		require.Contains(t, d.Summary.Text(), "is waiting on EOI011 since")
		require.Equal(t, []string{"webhook/waiting/sent"}, outcomes, "counted for metrics")
	})
}
