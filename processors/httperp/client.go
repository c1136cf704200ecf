package httperp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/tracing"
)

// Defaults and limits of the http connection type.
const (
	// DefaultTimeout bounds one ERP call (connect, request, answer) when
	// the connection has no timeout setting.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxBody caps an ERP answer's body, in bytes, when the
	// connection has no maxResponseBytes setting.
	DefaultMaxBody = 1 << 20
	// MaxRetryAfter caps a Retry-After the ERP asks for.
	MaxRetryAfter = 10 * time.Minute
	// UserAgent is sent with every request.
	UserAgent = "jobrunner"
	// snippetBytes caps the part of an unexpected body quoted in an error.
	snippetBytes = 200
)

// Error codes of the http connection type. Codes of permanent failures are
// the [processors.PermanentError] Code; codes of retryable failures start
// the message of an [*Error] (processors.Classify records them as "ERROR").
const (
	CodeConfig         = "ERP_CONFIG"            // invalid connection settings or secrets (permanent)
	CodeInvalidParam   = "INVALID_PARAMETER"     // a parameter the ERP cannot be asked about (permanent)
	CodeNotFound       = "ORDER_NOT_FOUND"       // 404 (permanent)
	CodeUnmapped       = "UNMAPPED_STATUS"       // ERP status without a mapping (permanent)
	CodeNotCancellable = "ORDER_NOT_CANCELLABLE" // mapped status forbids cancel (permanent)
	CodeConflict       = "ERP_CONFLICT"          // 409 without an ERP code (permanent)
	CodeLocked         = "STATUS_LOCKED"         // 423 (permanent)
	CodeUnauthorized   = "ERP_UNAUTHORIZED"      // 401/403 (permanent)
	CodeRejected       = "ERP_REJECTED"          // other 4xx (permanent)
	CodeUnavailable    = "ERP_UNAVAILABLE"       // 5xx, network error, timeout (retryable)
	CodeBadResponse    = "ERP_BAD_RESPONSE"      // not JSON, truncated, too large (retryable)
	CodeMaxErrors      = "MAX_ERRORS"            // sync recorded more errors than the job allows (permanent)
)

// Error is a retryable ERP failure: processors.Classify treats it as a
// failed attempt retried with the job's backoff (or, when it wraps
// context.DeadlineExceeded / context.Canceled, as a timeout /
// cancellation). Its text is "CODE: message" and never holds a secret.
type Error struct {
	Code    string
	Message string
	// Err is the cause (network error, context error); may be nil. Its
	// text is not part of Error(): Message already carries it, redacted.
	Err error
}

// Error returns "CODE: message".
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorCode returns Code: processors.Classify records it as the attempt's
// error code.
func (e *Error) ErrorCode() string { return e.Code }

// ErrorMessage returns Message: processors.Classify records it (without
// the code) as the attempt's error message.
func (e *Error) ErrorMessage() string { return e.Message }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// config is a connection's parsed settings.
type config struct {
	base     *url.URL
	timeout  time.Duration
	headers  map[string]string
	insecure bool
	caFile   string
	maxBody  int64
}

// parseConfig validates the http connection settings (with the preset
// applied) other than auth and operations.
func parseConfig(s map[string]any) (*config, error) {
	cfg := &config{timeout: DefaultTimeout, maxBody: DefaultMaxBody, headers: map[string]string{}}

	raw, _ := s["baseURL"].(string)
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("setting baseURL is required (an http or https URL)")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, errors.New("setting baseURL is not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("setting baseURL has scheme %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("setting baseURL has no host")
	}
	if u.User != nil {
		return nil, errors.New("setting baseURL must not hold credentials: use the username/password secrets")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("setting baseURL must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	cfg.base = u

	if v, ok := s["timeout"]; ok && v != nil {
		d, err := duration(v)
		if err != nil {
			return nil, fmt.Errorf("setting timeout: %w", err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("setting timeout must be positive, got %s", d)
		}
		cfg.timeout = d
	}
	if v, ok := s["maxResponseBytes"]; ok && v != nil {
		n, err := integer(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("setting maxResponseBytes must be a positive integer, got %v", v)
		}
		cfg.maxBody = n
	}

	if v, ok := s["headers"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			if ms, ok2 := v.(map[string]string); ok2 {
				m = make(map[string]any, len(ms))
				for k, x := range ms {
					m[k] = x
				}
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("setting headers is %T, want a map of strings", v)
		}
		for k, x := range m {
			str, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("setting headers.%s is %T, want a string", k, x)
			}
			if !validHeaderName(k) {
				return nil, fmt.Errorf("setting headers: %q is not a valid header name", k)
			}
			if strings.ContainsAny(str, "\r\n") {
				return nil, fmt.Errorf("setting headers.%s contains a line break", k)
			}
			switch http.CanonicalHeaderKey(k) {
			case "Authorization", "Idempotency-Key", "Host", "Content-Length", "Content-Type", "Transfer-Encoding":
				return nil, fmt.Errorf("setting headers.%s is set by the processor and cannot be overridden (secrets belong in secrets)", k)
			}
			cfg.headers[http.CanonicalHeaderKey(k)] = str
		}
	}

	if v, ok := s["tls"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("setting tls is %T, want a map (insecureSkipVerify, caFile)", v)
		}
		for k, x := range m {
			switch k {
			case "insecureSkipVerify":
				b, ok := x.(bool)
				if !ok {
					return nil, fmt.Errorf("setting tls.insecureSkipVerify is %T, want a bool", x)
				}
				cfg.insecure = b
			case "caFile":
				str, ok := x.(string)
				if !ok {
					return nil, fmt.Errorf("setting tls.caFile is %T, want a path", x)
				}
				cfg.caFile = str
			default:
				return nil, fmt.Errorf("setting tls.%s is unknown (known: insecureSkipVerify, caFile)", k)
			}
		}
	}
	return cfg, nil
}

// validHeaderName reports whether s is an HTTP header field name (RFC 7230 token).
func validHeaderName(s string) bool { return httpguts.ValidHeaderFieldName(s) }

func duration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 10s)", x)
		}
		return d, nil
	case time.Duration:
		return x, nil
	case int:
		return time.Duration(x) * time.Second, nil
	case int64:
		return time.Duration(x) * time.Second, nil
	case float64:
		return time.Duration(x * float64(time.Second)), nil
	}
	return 0, fmt.Errorf("%T is not a duration", v)
}

func integer(v any) (int64, error) {
	switch x := v.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
	case string:
		return strconv.ParseInt(x, 10, 64)
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

// clientCache holds one pooled *http.Client per connection. It is safe for
// concurrent use. A connection whose settings change gets a new client; the
// old one's idle connections are closed.
type clientCache struct {
	mu      sync.Mutex
	clients map[string]cachedClient // by connection name
}

type cachedClient struct {
	hash   string
	client *http.Client
}

func settingsHash(s map[string]any) string {
	b, err := json.Marshal(s) // map keys are sorted
	if err != nil {
		b = fmt.Appendf(nil, "%#v", s)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// get returns the connection's client, building it on first use.
func (c *clientCache) get(name string, settings map[string]any, cfg *config) (*http.Client, error) {
	h := settingsHash(settings)
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.clients[name]; ok && cc.hash == h {
		return cc.client, nil
	}
	cl, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if c.clients == nil {
		c.clients = make(map[string]cachedClient)
	}
	if old, ok := c.clients[name]; ok {
		old.client.CloseIdleConnections()
	}
	c.clients[name] = cachedClient{hash: h, client: cl}
	return cl, nil
}

func newClient(cfg *config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	if cfg.insecure || cfg.caFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.insecure} //nolint:gosec // explicit opt-in setting
		if cfg.caFile != "" {
			pem, err := os.ReadFile(cfg.caFile)
			if err != nil {
				return nil, fmt.Errorf("setting tls.caFile: reading %s: %w", cfg.caFile, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("setting tls.caFile: %s holds no PEM certificate", cfg.caFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	return &http.Client{
		Transport: tr, // each request is bounded by its own context (see call)
		// Redirects are not followed: a redirected ERP call means a wrong
		// baseURL, and following it could replay a POST elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// redactor is the shared secret-hiding rule set (processors.Redactor)
// with this package's short method names.
type redactor struct{ r *processors.Redactor }

func newRedactor(secrets map[string]string) *redactor {
	return &redactor{r: processors.NewRedactor(secrets)}
}

// with returns a redactor that also hides v (an access token).
func (r *redactor) with(v string) *redactor {
	if r == nil {
		return &redactor{r: (*processors.Redactor)(nil).With(v)}
	}
	return &redactor{r: r.r.With(v)}
}

func (r *redactor) s(text string) string {
	if r == nil {
		return text
	}
	return r.r.Redact(text)
}

// erp is one run's view of the ERP: its connection, compiled spec,
// client, token source and log.
type erp struct {
	onResp     func(conn string, status int)
	onThrottle func(conn string, status int, after time.Duration)
	cfg        *config
	spec       *connSpec
	client     *http.Client
	tokens     *tokenSource // nil unless auth is oauth2 or login
	tokenURL   string
	secrets    map[string]string
	red        *redactor
	run        *processors.Run
}

// newERP compiles the run's connection (preset, settings, auth,
// operations) and returns its ERP client. Invalid settings are a
// permanent CodeConfig failure.
func (p *base) newERP(run *processors.Run) (*erp, error) {
	red := newRedactor(run.Connection.Secrets)
	cfgErr := func(err error) error {
		return processors.Permanent(CodeConfig, red.s(fmt.Sprintf("connection %s: %v", run.Connection.Name, err)))
	}
	// Compiled and parsed once per connection and settings (specCache).
	spec, probs := p.specs.get(run.Connection, run.Connection.Settings)
	if len(probs) > 0 {
		msgs := make([]string, 0, len(probs))
		for _, pr := range probs {
			msgs = append(msgs, pr.Key+": "+pr.Message)
		}
		return nil, cfgErr(errors.New(strings.Join(msgs, "; ")))
	}
	cfg := spec.cfg
	if err := checkSecrets(spec.auth, run.Connection.Secrets); err != nil {
		return nil, cfgErr(err)
	}
	cl, err := p.clients.get(run.Connection.Name, spec.settings, cfg)
	if err != nil {
		return nil, cfgErr(err)
	}
	e := &erp{cfg: cfg, spec: spec, client: cl, secrets: run.Connection.Secrets, red: red, run: run, onResp: p.opts.OnResponse, onThrottle: p.opts.OnThrottle}
	if spec.auth.kind == AuthOAuth2 || spec.auth.kind == AuthLogin {
		u, err := spec.tokenURL.exec(&vars{settings: spec.settings, secrets: run.Connection.Secrets})
		if err != nil {
			return nil, cfgErr(fmt.Errorf("settings.auth.tokenURL: %v", err))
		}
		if strings.HasPrefix(u, "/") {
			u = cfg.base.String() + u
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, cfgErr(fmt.Errorf("settings.auth.tokenURL %q is not an http(s) URL", u))
		}
		e.tokenURL = u
		e.tokens = p.tokens.get(run.Connection.Name, spec.auth, u, run.Connection.Secrets, cl)
	}
	return e, nil
}

// checkSecrets reports a secret the auth needs that has no value.
func checkSecrets(a authSpec, secrets map[string]string) error {
	for _, n := range a.secretNames() {
		if n == a.password { // an empty basic-auth password is allowed
			continue
		}
		if secrets[n] == "" {
			return fmt.Errorf("auth %s needs secret %s, which is not set", a.kind, n)
		}
	}
	return nil
}

// response is an ERP answer with its body read (up to the limit).
type response struct {
	status      int
	header      http.Header
	contentType string
	body        []byte
}

// call sends one request to the ERP, bounded by the request's timeout
// (default the connection's). It logs one line per call. A network error,
// timeout or a body over the limit is returned as an [*Error]
// (retryable); the answer's status is not interpreted here.
func (e *erp) call(ctx context.Context, rq *request) (*response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The connection's rate limit: wait for this request's slot before
	// its own timeout starts.
	if err := e.run.Connection.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, &Error{Code: CodeUnavailable, Message: e.red.s(err.Error())}
	}
	method, path := rq.method, rq.path
	u := e.cfg.base.String() + path
	if len(rq.query) > 0 {
		u += "?" + rq.query.Encode()
	}
	timeout := e.cfg.timeout
	if rq.timeout > 0 {
		timeout = rq.timeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if rq.body != nil {
		rd = bytes.NewReader(rq.body)
	}
	cctx, span := tracing.Tracer().Start(cctx, tracing.SpanERPRequest, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	req, err := http.NewRequestWithContext(cctx, method, u, rd)
	if err != nil {
		return nil, processors.Permanent(CodeConfig, e.red.s(fmt.Sprintf("building %s %s: %v", method, path, err)))
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("url.template", rq.route),
			attribute.String("server.address", e.cfg.base.Host), attribute.String("jobrunner.connection", e.run.Connection.Name),
			attribute.String("jobrunner.operation", rq.op))
	}
	for k, v := range e.cfg.headers {
		req.Header.Set(k, v)
	}
	for k, v := range rq.headers {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.idemKey != "" {
		req.Header.Set("Idempotency-Key", rq.idemKey)
	}
	// W3C traceparent: the ERP's own traces can join the run's.
	otel.GetTextMapPropagator().Inject(cctx, propagation.HeaderCarrier(req.Header))

	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		ms := time.Since(start).Milliseconds()
		cause := err
		var ue *url.Error
		if errors.As(err, &ue) {
			cause = ue.Err
		}
		msg := e.red.s(fmt.Sprintf("%s %s: %v", method, path, cause))
		span.SetStatus(codes.Error, "no answer")
		e.log().Warn("ERP call failed", "method", method, "path", path, "durationMs", ms, "error", msg)
		if e.onResp != nil {
			e.onResp(e.run.Connection.Name, 0)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The run's own context ended: classify as its timeout/cancel.
			return nil, e.runEnded(ctxErr, method, path, msg)
		}
		var ne net.Error
		if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
			msg = e.red.s(fmt.Sprintf("%s %s: no answer within %s (timeout)", method, path, timeout))
			return nil, &Error{Code: CodeUnavailable, Message: msg}
		}
		return nil, &Error{Code: CodeUnavailable, Message: msg}
	}
	defer resp.Body.Close()
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, resp.Status)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, contentType: resp.Header.Get("Content-Type")}
	if resp.ContentLength > e.cfg.maxBody {
		e.logCall(method, path, resp.StatusCode, start)
		return nil, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("%s %s: %s: response body larger than %s (Content-Length %d)",
			method, path, statusText(resp.StatusCode), sizeText(e.cfg.maxBody), resp.ContentLength)}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, e.cfg.maxBody+1))
	e.logCall(method, path, resp.StatusCode, start)
	if err != nil {
		msg := e.red.s(fmt.Sprintf("%s %s: %s: reading the answer: %v", method, path, statusText(resp.StatusCode), err))
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, e.runEnded(ctxErr, method, path, msg)
		}
		return nil, &Error{Code: CodeBadResponse, Message: msg}
	}
	if int64(len(b)) > e.cfg.maxBody {
		return nil, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("%s %s: %s: response body larger than %s",
			method, path, statusText(resp.StatusCode), sizeText(e.cfg.maxBody))}
	}
	r.body = b
	return r, nil
}

// runEnded is the error of a call cut short by the end of the run's own
// context: its timeout (code TIMEOUT, naming the job's timeout and the
// call) or its cancellation.
func (e *erp) runEnded(ctxErr error, method, path, msg string) error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		limit := "the job's timeout"
		if e.run.Job != nil && e.run.Job.Timeout > 0 {
			limit = fmt.Sprintf("the job's %s timeout", e.run.Job.Timeout.D())
		}
		return &Error{Code: processors.CodeTimeout, Message: fmt.Sprintf("%s elapsed during %s %s", limit, method, path), Err: ctxErr}
	}
	return &Error{Code: CodeUnavailable, Message: msg, Err: ctxErr}
}

func (e *erp) log() processors.Logger {
	if e.run.Log == nil {
		return nopLogger{}
	}
	return e.run.Log
}

func (e *erp) logCall(method, path string, status int, start time.Time) {
	if e.onResp != nil {
		e.onResp(e.run.Connection.Name, status)
	}
	e.log().Info("ERP call", "method", method, "path", path, "status", status, "durationMs", time.Since(start).Milliseconds())
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// isJSON reports whether a Content-Type names JSON (application/json or
// any +json type).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// snippet returns the start of a body for an error message, redacted and
// with control characters replaced.
func (e *erp) snippet(b []byte) string {
	s := string(b)
	cut := len(s) > snippetBytes
	if cut {
		s = s[:snippetBytes]
	}
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = e.red.s(strings.TrimSpace(s))
	if cut {
		s += "…"
	}
	return s
}

// decode decodes a JSON answer into v. A wrong content type, invalid or
// truncated JSON is a retryable CodeBadResponse [*Error] naming the status
// and content type.
func (e *erp) decode(method, path string, r *response, v any) error {
	ct := r.contentType
	if ct == "" {
		ct = "none"
	}
	if !isJSON(r.contentType) {
		return &Error{Code: CodeBadResponse, Message: e.red.s(fmt.Sprintf("%s %s: %s with content type %s, want application/json: %q",
			method, path, statusText(r.status), ct, e.snippet(r.body)))}
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(v); err != nil {
		return &Error{Code: CodeBadResponse, Message: e.red.s(fmt.Sprintf("%s %s: %s with content type %s: invalid JSON (%v): %q",
			method, path, statusText(r.status), ct, err, e.snippet(r.body)))}
	}
	if dec.More() {
		return &Error{Code: CodeBadResponse, Message: e.red.s(fmt.Sprintf("%s %s: %s with content type %s: trailing data after the JSON value: %q",
			method, path, statusText(r.status), ct, e.snippet(r.body)))}
	}
	return nil
}

// retryAfter parses a Retry-After header: delta seconds or an HTTP date.
// Absent, invalid or past values give 0 (use the job's backoff); values
// are capped at MaxRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if err != nil && !strings.HasPrefix(v, "-") {
			return MaxRetryAfter
		}
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			return 0
		}
	} else {
		return 0
	}
	return min(d, MaxRetryAfter)
}
