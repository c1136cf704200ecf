package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/jobrunner/jobrunner/definitions"
)

// SignatureHeader carries "sha256=" + the hex HMAC-SHA256 of the webhook
// body, keyed with the secret from the environment variable the webhook
// names.
const SignatureHeader = "X-Jobrunner-Signature"

// Sign returns the SignatureHeader value of body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is the signature of body under key (in
// constant time); webhook receivers use it.
func Verify(key, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(header))
}

// sendWebhook POSTs the stored summary, signed; a 2xx answer is success.
func (n *Notifier) sendWebhook(ctx context.Context, w *definitions.WebhookTarget, nt *Notification) error {
	key := n.cfg.Getenv(w.Secret)
	if key == "" {
		return fmt.Errorf("webhook secret: environment variable %s is not set", w.Secret)
	}
	body := []byte(nt.Payload)
	ctx, cancel := context.WithTimeout(ctx, n.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jobrunner-notify")
	req.Header.Set(SignatureHeader, Sign([]byte(key), body))
	req.Header.Set("X-Jobrunner-Event", nt.Kind)
	req.Header.Set("X-Jobrunner-Delivery", strconv.FormatInt(nt.ID, 10))
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook POST %s: %w", redactURL(w.URL), unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook POST %s: answered %s", redactURL(w.URL), resp.Status)
	}
	return nil
}

// redactURL drops the query (which could carry a token) from a URL for
// messages.
func redactURL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// unwrapURLError drops *url.Error's repetition of method and URL.
func unwrapURLError(err error) error {
	type unwrapper interface{ Unwrap() error }
	if u, ok := err.(unwrapper); ok && strings.HasPrefix(err.Error(), "Post ") {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// sendEmail sends the summary as a plain-text e-mail through the SMTP
// server: STARTTLS (required unless disabled), AUTH PLAIN when a user name
// is configured.
func (n *Notifier) sendEmail(ctx context.Context, cfg *definitions.SMTPConfig, e *definitions.EmailTarget, nt *Notification, s *Summary) error {
	tmpl, err := definitions.SubjectTemplate(e.Subject)
	if err != nil {
		return fmt.Errorf("e-mail subject: %w", err)
	}
	var subj bytes.Buffer
	if err := tmpl.Execute(&subj, s.subjectData()); err != nil {
		return fmt.Errorf("e-mail subject: %w", err)
	}
	subject := strings.Join(strings.Fields(subj.String()), " ") // no CR/LF: no header injection
	var password string
	if cfg.Username != "" {
		password = n.cfg.Getenv(cfg.Password)
		if password == "" {
			return fmt.Errorf("smtp password: environment variable %s is not set", cfg.Password)
		}
	}
	msg, err := buildMessage(cfg.From, e.To, subject, s.Text(), nt, n.cfg.Now())
	if err != nil {
		return err
	}
	envFrom, envTo, err := envelope(cfg.From, e.To)
	if err != nil {
		return err
	}

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	deadline := time.Now().Add(n.cfg.SMTPTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var c *smtp.Client
	if cfg.StartTLS {
		tc := &tls.Config{ServerName: cfg.Host, RootCAs: n.cfg.SMTPRootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err != nil {
			_ = conn.Close()
			return fmt.Errorf("smtp %s: STARTTLS: %w", addr, err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = n.cfg.SMTPTimeout, n.cfg.SMTPTimeout
	if cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", cfg.Username, password)); err != nil {
			return fmt.Errorf("smtp %s: AUTH as %s: %w", addr, cfg.Username, err)
		}
	}
	if err := c.SendMail(envFrom, envTo, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("smtp %s: send: %w", addr, err)
	}
	_ = c.Quit()
	return nil
}

// buildMessage renders an RFC 5322 message with a quoted-printable UTF-8
// text body and a Message-ID derived from the outbox row, so that a
// repeated delivery can be recognised.
func buildMessage(from string, to []string, subject, body string, nt *Notification, now time.Time) ([]byte, error) {
	fa, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("smtp from %q: %w", from, err)
	}
	var rcpts []string
	for _, t := range to {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("e-mail to %q: %w", t, err)
		}
		rcpts = append(rcpts, a.String())
	}
	domain := "jobrunner"
	if i := strings.LastIndex(fa.Address, "@"); i >= 0 {
		domain = fa.Address[i+1:]
	}
	var b bytes.Buffer
	h := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	h("From", fa.String())
	h("To", strings.Join(rcpts, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", subject))
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", fmt.Sprintf("<jobrunner-notification-%d.run-%d@%s>", nt.ID, nt.RunID, domain))
	h("X-Jobrunner-Event", nt.Kind)
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// envelope returns the bare addresses of the SMTP envelope (MAIL FROM and
// RCPT TO take no display names).
func envelope(from string, to []string) (string, []string, error) {
	fa, err := mail.ParseAddress(from)
	if err != nil {
		return "", nil, fmt.Errorf("smtp from %q: %w", from, err)
	}
	out := make([]string, 0, len(to))
	for _, t := range to {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return "", nil, fmt.Errorf("e-mail to %q: %w", t, err)
		}
		out = append(out, a.Address)
	}
	return fa.Address, out, nil
}
