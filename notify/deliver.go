package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"gorm.io/gorm"

	"github.com/jobrunner/jobrunner/definitions"
)

// Notification is one outbox row.
type Notification struct {
	ID            int64      `json:"id"`
	RunID         int64      `json:"runId"`
	Job           string     `json:"job"`
	Channel       string     `json:"channel"`
	Kind          string     `json:"kind"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"nextAttemptAt"`
	LastError     string     `json:"lastError,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	SentAt        *time.Time `json:"sentAt,omitempty"`
	Payload       string     `json:"-"`
	token         string
}

const notificationCols = "id, run_id, job, channel, kind, status, attempts, next_attempt_at, last_error, created_at, sent_at, payload"

func scanNotifications(tx *gorm.DB, query string, args ...any) ([]Notification, error) {
	rows, err := tx.Raw(query, args...).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var nt Notification
		var lastErr *string
		var sent *time.Time
		if err := rows.Scan(&nt.ID, &nt.RunID, &nt.Job, &nt.Channel, &nt.Kind, &nt.Status, &nt.Attempts, &nt.NextAttemptAt,
			&lastErr, &nt.CreatedAt, &sent, &nt.Payload); err != nil {
			return nil, err
		}
		if lastErr != nil {
			nt.LastError = *lastErr
		}
		if sent != nil {
			t := sent.UTC()
			nt.SentAt = &t
		}
		nt.NextAttemptAt, nt.CreatedAt = nt.NextAttemptAt.UTC(), nt.CreatedAt.UTC()
		out = append(out, nt)
	}
	return out, rows.Err()
}

// ForRun returns the notifications of a run, oldest first (for the API,
// the dashboard and tests).
func ForRun(ctx context.Context, db *gorm.DB, runID int64) ([]Notification, error) {
	out, err := scanNotifications(db.WithContext(ctx), "SELECT "+notificationCols+" FROM notifications WHERE run_id = ? ORDER BY id", runID)
	if err != nil {
		return nil, fmt.Errorf("notify: read notifications of run %d: %w", runID, err)
	}
	return out, nil
}

// claim marks up to Batch due notifications (pending, or sending with a
// lapsed lease) as sending under a fresh lease token, in one transaction.
func (n *Notifier) claim(ctx context.Context) ([]Notification, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	var claimed []Notification
	err := n.cfg.Store.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		nowSQL, nowArgs := n.now(0)
		q := "SELECT " + notificationCols + " FROM notifications WHERE status IN ? AND next_attempt_at <= " + nowSQL +
			" ORDER BY next_attempt_at, id LIMIT ?"
		if n.mysql() {
			q += " FOR UPDATE SKIP LOCKED"
		}
		args := append([]any{[]string{StatusPending, StatusSending}}, nowArgs...)
		var err error
		claimed, err = scanNotifications(tx, q, append(args, n.cfg.Batch)...)
		if err != nil {
			return fmt.Errorf("select due notifications: %w", err)
		}
		if len(claimed) == 0 {
			return nil
		}
		ids := make([]int64, len(claimed))
		for i := range claimed {
			ids[i] = claimed[i].ID
			claimed[i].token = token
			claimed[i].Attempts++
		}
		leaseSQL, leaseArgs := n.now(n.cfg.Lease)
		return tx.Exec("UPDATE notifications SET status = ?, lease_token = ?, attempts = attempts + 1, next_attempt_at = "+leaseSQL+
			" WHERE id IN ?", append(append([]any{StatusSending, token}, leaseArgs...), ids)...).Error
	})
	if err != nil {
		return nil, fmt.Errorf("claim notifications: %w", err)
	}
	return claimed, nil
}

// Deliver claims the due notifications, sends them (four at a time) and
// records each outcome. It returns how many it claimed.
func (n *Notifier) Deliver(ctx context.Context) (int, error) {
	claimed, err := n.claim(ctx)
	if err != nil || len(claimed) == 0 {
		return 0, err
	}
	set := n.cfg.Definitions()
	red := n.redactor()
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range claimed {
		nt := &claimed[i]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			sendErr := n.send(ctx, set, nt)
			if ctx.Err() != nil {
				if sendErr != nil {
					return // stopping: the lease lapses and the row is tried again
				}
				// Sent just as we stop: record it, briefly, so that it is
				// not sent twice.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				n.record(rctx, nt, nil, red)
				return
			}
			n.record(ctx, nt, sendErr, red)
		}()
	}
	wg.Wait()
	return len(claimed), nil
}

// send delivers one notification with the current definitions.
func (n *Notifier) send(ctx context.Context, set *definitions.Set, nt *Notification) error {
	if set == nil {
		return errNotConfigured
	}
	job, ok := set.Job(nt.Job)
	if !ok || job.Notify == nil {
		return fmt.Errorf("job %s: notify %w", nt.Job, errNotConfigured)
	}
	switch nt.Channel {
	case ChannelWebhook:
		if job.Notify.Webhook == nil {
			return fmt.Errorf("job %s: notify.webhook %w", nt.Job, errNotConfigured)
		}
		return n.sendWebhook(ctx, job.Notify.Webhook, nt)
	case ChannelEmail:
		if job.Notify.Email == nil {
			return fmt.Errorf("job %s: notify.email %w", nt.Job, errNotConfigured)
		}
		if set.SMTP == nil {
			return fmt.Errorf("smtp section %w", errNotConfigured)
		}
		var s Summary
		if err := json.Unmarshal([]byte(nt.Payload), &s); err != nil {
			return fmt.Errorf("stored summary does not decode: %w", err)
		}
		return n.sendEmail(ctx, set.SMTP, job.Notify.Email, nt, &s)
	}
	return fmt.Errorf("unknown channel %q", nt.Channel)
}

// record stores the outcome of a send, fenced by the lease token; it
// retries while the database is unreachable, for up to the lease.
func (n *Notifier) record(ctx context.Context, nt *Notification, sendErr error, red *redactor) {
	fields := logrus.Fields{"run_id": nt.RunID, "job": nt.Job, "channel": nt.Channel, "kind": nt.Kind,
		"notification": nt.ID, "attempt": nt.Attempts}
	if n.cfg.Owner != "" {
		fields["owner"] = n.cfg.Owner
	}
	var query string
	var args []any
	msg := ""
	switch {
	case sendErr == nil:
		nowSQL, nowArgs := n.now(0)
		query = "UPDATE notifications SET status = ?, sent_at = " + nowSQL + ", lease_token = NULL, last_error = NULL WHERE id = ? AND lease_token = ?"
		args = append(append([]any{StatusSent}, nowArgs...), nt.ID, nt.token)
	case nt.Attempts >= n.cfg.MaxAttempts:
		msg = red.clean(sendErr.Error())
		query = "UPDATE notifications SET status = ?, lease_token = NULL, last_error = ? WHERE id = ? AND lease_token = ?"
		args = []any{StatusFailed, truncate(msg, 2000), nt.ID, nt.token}
	default:
		msg = red.clean(sendErr.Error())
		wait := n.backoff(nt.Attempts)
		fields["retry_in"] = wait.Round(time.Millisecond).String()
		dueSQL, dueArgs := n.now(wait)
		query = "UPDATE notifications SET status = ?, lease_token = NULL, last_error = ?, next_attempt_at = " + dueSQL + " WHERE id = ? AND lease_token = ?"
		args = append(append([]any{StatusPending, truncate(msg, 2000)}, dueArgs...), nt.ID, nt.token)
	}
	deadline := time.Now().Add(n.cfg.Lease / 2)
	wait := 100 * time.Millisecond
	for {
		res := n.cfg.Store.DB().WithContext(ctx).Exec(query, args...)
		if res.Error == nil {
			if res.RowsAffected == 0 {
				n.log.WithFields(fields).Warn("notification outcome not recorded: its lease lapsed and another delivery took it over")
				return
			}
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			n.log.WithFields(fields).Errorf("notification outcome not recorded (it will be sent again): %s", red.clean(res.Error.Error()))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
	log := n.log.WithFields(fields)
	outcome := "retry"
	switch {
	case sendErr == nil:
		outcome = "sent"
		log.Info("notification sent")
	case nt.Attempts >= n.cfg.MaxAttempts:
		outcome = "failed"
		log.Errorf("notification failed for good after %d attempts: %s", nt.Attempts, msg)
	default:
		log.Warnf("notification not sent, will retry: %s", msg)
	}
	if n.cfg.OnOutcome != nil {
		n.cfg.OnOutcome(nt.Channel, nt.Kind, outcome)
	}
}

// backoff returns the wait before attempt+1: BackoffInitial doubled per
// attempt, capped at BackoffMax, minus up to 20% jitter.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.cfg.BackoffInitial
	for i := 1; i < attempt && d < n.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, n.cfg.BackoffMax)
	return d - time.Duration(0.2*n.cfg.Rand()*float64(d))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
