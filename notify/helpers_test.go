package notify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
)

// Canary secrets: none may appear in any body, row or log line.
const (
	hookSecret = "canary-hook-secret-5f1c9e"
	smtpPass   = "canary-smtp-password-7a2d"
	erpToken   = "canary-erp-token-93be41"
	smtpUser   = "jobrunner"
)

func testEnv(name string) string {
	return map[string]string{
		"JR_HOOK_SECRET":   hookSecret,
		"JR_SMTP_PASSWORD": smtpPass,
		"JR_ERP_TOKEN":     erpToken,
	}[name]
}

// ---- a real SMTP server: STARTTLS with a self-signed certificate, AUTH PLAIN

type mailMsg struct {
	From  string
	To    []string
	Data  []byte
	TLS   bool
	Authn string
}

type mailServer struct {
	t     *testing.T
	addr  string
	roots *x509.CertPool
	cert  tls.Certificate

	mu   sync.Mutex
	srv  *smtp.Server
	msgs []mailMsg
}

// newMailServer prepares a server on a free loopback port; start starts it.
func newMailServer(t *testing.T) *mailServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jobrunner test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // reserved; start listens again
	m := &mailServer{t: t, addr: addr, roots: roots, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}
	t.Cleanup(m.stop)
	return m
}

func (m *mailServer) port() int { return m.addr2().Port }

func (m *mailServer) addr2() *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", m.addr)
	require.NoError(m.t, err)
	return a
}

func (m *mailServer) start() {
	m.t.Helper()
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &mailSession{m: m, c: c}, nil }))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{m.cert}, MinVersion: tls.VersionTLS12}
	s.AllowInsecureAuth = false // AUTH only after STARTTLS
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = stdlog.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", m.addr)
	require.NoError(m.t, err)
	m.mu.Lock()
	m.srv = s
	m.mu.Unlock()
	go func() { _ = s.Serve(ln) }()
}

func (m *mailServer) stop() {
	m.mu.Lock()
	s := m.srv
	m.srv = nil
	m.mu.Unlock()
	if s != nil {
		// Shutdown waits for the clients' QUIT; Close would race with a
		// connection's STARTTLS inside go-smtp.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			_ = s.Close()
		}
	}
}

func (m *mailServer) messages() []mailMsg {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mailMsg(nil), m.msgs...)
}

type mailSession struct {
	m     *mailServer
	c     *smtp.Conn
	authn string
	from  string
	to    []string
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != smtpUser || pass != smtpPass {
			return errors.New("invalid credentials")
		}
		s.authn = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.authn == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.c.TLSConnectionState()
	s.m.mu.Lock()
	s.m.msgs = append(s.m.msgs, mailMsg{From: s.from, To: s.to, Data: b, TLS: isTLS, Authn: s.authn})
	s.m.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.from, s.to = "", nil }
func (s *mailSession) Logout() error { return nil }

// parsed returns a received message's subject and decoded body.
func (msg mailMsg) parsed(t *testing.T) (*mail.Message, string, string) {
	t.Helper()
	pm, err := mail.ReadMessage(bytes.NewReader(msg.Data))
	require.NoError(t, err)
	body, err := io.ReadAll(quotedprintable.NewReader(pm.Body))
	require.NoError(t, err)
	subj, err := new(mimeDecoder).DecodeHeader(pm.Header.Get("Subject"))
	require.NoError(t, err)
	return pm, subj, string(body)
}

type mimeDecoder = mime.WordDecoder

// ---- a webhook receiver that checks signatures

type delivery struct {
	ID      string
	Event   string
	Summary Summary
	Raw     []byte
}

type webhook struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	got      []delivery
	badSigs  int
	failNext int           // answer 500 to this many requests first
	delay    time.Duration // per request
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{t: t}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) serve(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	delay := w.delay
	if !Verify([]byte(hookSecret), body, r.Header.Get(SignatureHeader)) || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/json" {
		w.badSigs++
		w.mu.Unlock()
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	if w.failNext > 0 {
		w.failNext--
		w.mu.Unlock()
		http.Error(rw, "try later", http.StatusServiceUnavailable)
		return
	}
	w.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	w.mu.Lock()
	w.got = append(w.got, delivery{ID: r.Header.Get("X-Jobrunner-Delivery"), Event: r.Header.Get("X-Jobrunner-Event"), Summary: s, Raw: body})
	w.mu.Unlock()
	rw.WriteHeader(http.StatusNoContent)
}

func (w *webhook) deliveries() []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]delivery(nil), w.got...)
}

// ---- definitions, runs, notifier

const defsTmpl = `
connections:
  - name: erp
    type: http
    secrets: {token: JR_ERP_TOKEN}
jobs:
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
    parameters:
      - {name: OrderNumber, type: string, required: true}
    notify:
      on: [%s]
      webhook: {url: "%s", secret: JR_HOOK_SECRET}
      email:
        to: [ops@example.com]
        subject: "[jobrunner] {{.Job}} run {{.RunID}} {{.Status}} ({{.Event}})"
  - name: PreviewedSync
    connection: erp
    processor: OrderStatusSync
    notify:
      on: [completion]
      preview: true
      webhook: {url: "%s", secret: JR_HOOK_SECRET}
  - name: Quiet
    connection: erp
    processor: OrderStatusSync
smtp:
  host: 127.0.0.1
  port: %d
  from: "jobrunner <jobrunner@example.com>"
  username: jobrunner
  password: JR_SMTP_PASSWORD
`

func loadDefs(t *testing.T, yaml string) *definitions.Set {
	t.Helper()
	set, err := definitions.LoadFS(fstest.MapFS{"d/defs.yaml": {Data: []byte(yaml)}}, "d")
	require.NoError(t, err)
	require.NoError(t, set.Validate(nil))
	return set
}

func testDefs(t *testing.T, on, hookURL string, smtpPort int) *definitions.Set {
	return loadDefs(t, fmt.Sprintf(defsTmpl, on, hookURL, hookURL, smtpPort))
}

// finishRun enqueues a run of job and finishes it with status, through
// the store's real claim and finish path.
func finishRun(t *testing.T, s *jobs.Store, job *definitions.Job, status jobs.Status, errMsg string, preview bool) *jobs.Run {
	t.Helper()
	id := enqueue(t, s, job, preview)
	finishID(t, s, id, status, errMsg)
	r, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	return r
}

func enqueue(t *testing.T, s *jobs.Store, job *definitions.Job, preview bool) int64 {
	t.Helper()
	raw := map[string]string{}
	if len(job.Parameters) > 0 {
		raw["OrderNumber"] = "WEB000123"
	}
	params, err := job.ParseParams(raw)
	require.NoError(t, err)
	e, err := s.Enqueue(context.Background(), jobs.NewRun{Job: job, Params: params, Trigger: jobs.TriggerManual,
		TriggeredBy: "tester", Preview: preview})
	require.NoError(t, err)
	return e.Run.ID
}

func finishID(t *testing.T, s *jobs.Store, id int64, status jobs.Status, errMsg string) {
	t.Helper()
	ctx := context.Background()
	c, err := s.ClaimRun(ctx, id, "test", time.Minute)
	require.NoError(t, err)
	f := jobs.Finish{Status: status, AttemptStatus: jobs.AttemptSucceeded}
	switch status {
	case jobs.StatusFailed:
		f.AttemptStatus, f.ErrorCode, f.ErrorMessage = jobs.AttemptFailed, "ERP_409", errMsg
	case jobs.StatusCancelled:
		f.AttemptStatus = jobs.AttemptCancelled
	}
	require.NoError(t, s.Finish(ctx, c, f))
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newNotifier(t *testing.T, s *jobs.Store, set *definitions.Set, roots *x509.CertPool, logs io.Writer, tweak func(*Config)) *Notifier {
	t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.Out = io.Discard
	if logs != nil {
		log.Out = logs
	}
	cfg := Config{
		Store: s, Definitions: func() *definitions.Set { return set }, Getenv: testEnv, Log: log,
		BaseURL: "https://jobrunner.example.com/", PollInterval: 20 * time.Millisecond,
		BackoffInitial: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		WebhookTimeout: 2 * time.Second, SMTPTimeout: 2 * time.Second, SMTPRootCAs: roots,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
	require.NoError(t, err)
	return n
}

// rows returns every notification row (all runs).
func allRows(t *testing.T, s *jobs.Store) []Notification {
	t.Helper()
	out, err := scanNotifications(s.DB(), "SELECT "+notificationCols+" FROM notifications ORDER BY id")
	require.NoError(t, err)
	return out
}

// dumpTables returns every row of the tables notifications write, as text
// (runs hold what the processor recorded, which is not ours to redact).
func dumpTables(t *testing.T, s *jobs.Store) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"notifications", "notification_runs", "job_state"} {
		rows, err := s.DB().Raw("SELECT * FROM " + table).Rows()
		require.NoError(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for _, v := range vals {
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%v|", v)
			}
			b.WriteString("\n")
		}
		rows.Close()
	}
	return b.String()
}
