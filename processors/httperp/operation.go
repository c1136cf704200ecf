package httperp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/oauth2"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// maxWholeResult caps the body stored as the result of an operation that
// extracts no fields.
const maxWholeResult = 64 << 10

// connSpec is a connection's compiled declaration: settings with the
// preset applied, auth and operations.
type connSpec struct {
	preset   string
	settings map[string]any
	auth     authSpec
	ops      map[string]*operation
	// used are the settings the operations and auth refer to.
	used map[string]bool
	// cfg are the parsed settings (set by specCache, at run time, when
	// ${VAR}s are expanded).
	cfg *config
	// tokenURL is auth's compiled token endpoint (oauth2, login); nil
	// for the other kinds.
	tokenURL *tmpl
}

// compileSpec applies the preset and parses auth and operations. secrets
// are the connection's secrets (names are what matter). It returns the
// spec and every problem (keys relative to the connection).
func compileSpec(presetName string, settings, ops map[string]any, secrets map[string]string) (*connSpec, problems) {
	var p problems
	s, o, name, err := effective(presetName, settings, ops)
	if err != nil {
		p.add("preset", "%v", err)
		return nil, p
	}
	spec := &connSpec{preset: name, settings: s, used: map[string]bool{}}
	spec.auth = parseAuth(s["auth"], secrets, &p)
	spec.ops = parseOperations(o, s, secretNames(secrets), spec.used, &p)
	if spec.auth.tokenURL != "" {
		env := tmplEnv{settings: s, used: spec.used}
		spec.tokenURL = env.compile(&p, "settings.auth.tokenURL", spec.auth.tokenURL, escNone)
	}
	return spec, p
}

func secretNames(s map[string]string) map[string]string {
	out := make(map[string]string, len(s))
	for k := range s {
		out[k] = ""
	}
	return out
}

// specCache holds compiled specs by a hash of what they were compiled
// from.
type specCache struct {
	mu    sync.Mutex
	specs map[string]*connSpec
}

func (c *specCache) get(conn processors.Connection, settings map[string]any) (*connSpec, problems) {
	b, _ := json.Marshal([]any{conn.Preset, settings, conn.Operations, names(anyMap(secretNames(conn.Secrets)))})
	sum := sha256.Sum256(b)
	k := conn.Name + "\x00" + hex.EncodeToString(sum[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.specs[k]; ok {
		return s, nil
	}
	s, p := compileSpec(conn.Preset, settings, conn.Operations, conn.Secrets)
	if len(p) > 0 {
		return nil, p
	}
	cfg, err := parseConfig(s.settings)
	if err != nil {
		p.add("settings", "%v", err)
		return nil, p
	}
	s.cfg = cfg
	if c.specs == nil {
		c.specs = map[string]*connSpec{}
	}
	c.specs[k] = s
	return s, nil
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// request is one built HTTP request.
type request struct {
	method  string
	path    string // escaped, below baseURL
	query   url.Values
	headers http.Header
	body    []byte // nil: none
	idemKey string
	timeout time.Duration
	// op and route name the operation and its path template, for traces.
	op, route string
}

// answer is what a successful operation returned.
type answer struct {
	resp *response
	// result is the extracted fields (or the whole JSON body), nil when
	// the body is empty or not JSON.
	result json.RawMessage
	// code and message are the platform's (may be empty).
	code, message string
}

// bindInputs returns the operation's inputs from the run: each input from
// the job parameter the job maps it to, else from the parameter of its
// own name. Absent optional inputs are left out; an absent required one is
// a permanent INVALID_PARAMETER.
func bindInputs(op *operation, run *processors.Run) (definitions.Values, error) {
	out := definitions.Values{}
	for name, required := range op.inputs {
		param := name
		if m, ok := run.Inputs[name]; ok && m != "" {
			param = m
		}
		x, ok := run.Params[param]
		if s, isStr := x.(string); ok && isStr && s == "" {
			ok = false
		}
		if !ok {
			if required {
				return nil, processors.Permanent(CodeInvalidParam, fmt.Sprintf("operation %s: input %s (parameter %s) is required", op.name, name, param))
			}
			continue
		}
		out[name] = x
	}
	return out, nil
}

// vars returns the template variables for in.
func (e *erp) vars(op *operation, in definitions.Values) *vars {
	text := make(map[string]string, len(op.inputs))
	for name := range op.inputs {
		text[name] = ""
	}
	for k, s := range in.Text() {
		text[k] = s
	}
	return &vars{typed: in, text: text, settings: e.spec.settings, secrets: e.secrets}
}

// build renders an operation's request.
func (e *erp) build(op *operation, v *vars) (*request, error) {
	fail := func(what string, err error) error {
		return processors.Permanent(CodeConfig, e.red.s(fmt.Sprintf("connection %s: operation %s: %s: %v", e.run.Connection.Name, op.name, what, err)))
	}
	path, err := op.path.exec(v)
	if err != nil {
		return nil, fail("path", err)
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req := &request{method: op.method, path: path, headers: http.Header{}, timeout: op.timeout, op: op.name, route: op.path.raw}
	for _, q := range op.query {
		s, err := q.t.exec(v)
		if err != nil {
			return nil, fail("query "+q.name, err)
		}
		if s != "" {
			if req.query == nil {
				req.query = url.Values{}
			}
			req.query.Set(q.name, s)
		}
	}
	for _, h := range op.headers {
		s, err := h.t.exec(v)
		if err != nil {
			return nil, fail("header "+h.name, err)
		}
		if strings.ContainsAny(s, "\r\n") {
			return nil, fail("header "+h.name, fmt.Errorf("value contains a line break"))
		}
		if s != "" {
			req.headers.Set(h.name, s)
		}
	}
	if op.body != nil {
		x, _, err := op.body.render(v)
		if err != nil {
			return nil, fail("body", err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			return nil, fail("body", err)
		}
		req.body = bytes.TrimRight(buf.Bytes(), "\n")
	}
	if op.changes && e.run.IdempotencyKey != "" {
		suffix := op.name
		if op.idemKey != nil {
			s, err := op.idemKey.exec(v)
			if err != nil {
				return nil, fail("idempotencyKey", err)
			}
			suffix = s
		}
		req.idemKey = e.run.IdempotencyKey + ":" + suffix
	}
	return req, nil
}

// subject renders what the operation is about, for messages ("" when the
// operation does not say).
func (op *operation) subjectOf(v *vars) string {
	if op.subject == nil {
		return ""
	}
	s, err := op.subject.exec(v)
	if err != nil {
		return ""
	}
	return s
}

// do runs operation name with inputs in: builds the request, guards the
// side effect, sends it (with one token refresh and one retry on a 401),
// and decides the outcome from the operation's outcome table and the
// defaults. A nil error means the operation succeeded.
func (e *erp) do(ctx context.Context, name string, in definitions.Values) (*answer, error) {
	op := e.spec.ops[name]
	if op == nil {
		return nil, processors.Permanent(CodeConfig, fmt.Sprintf("connection %s has no operation %q%s", e.run.Connection.Name, name, opsHint(e.spec)))
	}
	for n, required := range op.inputs {
		if _, ok := in[n]; required && !ok {
			return nil, processors.Permanent(CodeInvalidParam, fmt.Sprintf("operation %s: input %s is required", name, n))
		}
	}
	v := e.vars(op, in)
	req, err := e.build(op, v)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		if op.changes {
			if err := e.run.BeforeSideEffect(ctx); err != nil {
				return nil, err
			}
		}
		tok, err := e.authorize(ctx, req)
		if err != nil {
			return nil, err
		}
		r, err := e.call(ctx, req)
		if err != nil {
			return nil, err
		}
		if r.status == http.StatusUnauthorized && e.tokens != nil && try == 0 {
			e.tokens.invalidate(tok)
			e.log().Info("access token refused (401); fetching a new one and trying once more", "operation", name)
			continue
		}
		return e.evaluate(op, v, req, r)
	}
}

func opsHint(s *connSpec) string {
	ns := make([]string, 0, len(s.ops))
	for n := range s.ops {
		ns = append(ns, n)
	}
	if len(ns) == 0 {
		return " (it has none)"
	}
	return " (it has " + strings.Join(sortStrings(ns), ", ") + ")"
}

// authorize sets the request's credentials; with a token auth it returns
// the token used.
func (e *erp) authorize(ctx context.Context, req *request) (*oauth2.Token, error) {
	a := e.spec.auth
	switch a.kind {
	case AuthBearer:
		req.headers.Set("Authorization", "Bearer "+e.secrets[a.secret])
	case AuthBasic:
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(e.secrets[a.username], e.secrets[a.password])
		req.headers.Set("Authorization", r.Header.Get("Authorization"))
	case AuthAPIKey:
		for h, s := range a.headers {
			req.headers.Set(h, e.secrets[s])
		}
	case AuthOAuth2, AuthLogin:
		tok, err := e.tokens.token(ctx)
		if err != nil {
			return nil, tokenError(err, e.tokenURL, e.red)
		}
		e.red = e.red.with(tok.AccessToken)
		req.headers.Set("Authorization", "Bearer "+tok.AccessToken)
		return tok, nil
	}
	return nil, nil
}

// platform extracts the platform's code and message from a JSON body.
func (e *erp) platform(op *operation, r *response) (code, msg string) {
	if !isJSON(r.contentType) || !gjson.ValidBytes(r.body) {
		return "", ""
	}
	first := func(paths []string) string {
		for _, p := range paths {
			if x := gjson.GetBytes(r.body, p); x.Exists() && x.Type != gjson.Null {
				if s := strings.TrimSpace(x.String()); s != "" {
					return s
				}
			}
		}
		return ""
	}
	return e.red.s(first(op.errCode)), e.red.s(first(op.errMessage))
}

func (r rule) matches(status int, code string, body []byte, jsonOK bool) bool {
	if len(r.status) > 0 && !slices.ContainsFunc(r.status, func(s statusMatch) bool { return s.match(status) }) {
		return false
	}
	if len(r.codes) > 0 && (code == "" || !slices.Contains(r.codes, code)) {
		return false
	}
	if r.field != "" {
		if !jsonOK {
			return false
		}
		x := gjson.GetBytes(body, r.field)
		if !x.Exists() {
			return false
		}
		if len(r.equals) > 0 && !slices.Contains(r.equals, x.String()) {
			return false
		}
	}
	return true
}

// evaluate decides what an answer means.
func (e *erp) evaluate(op *operation, v *vars, req *request, r *response) (*answer, error) {
	code, msg := e.platform(op, r)
	jsonOK := isJSON(r.contentType) && gjson.ValidBytes(r.body)
	subject := op.subjectOf(v)
	where := req.method + " " + req.path
	for _, ru := range op.outcomes {
		if ru.matches(r.status, code, r.body, jsonOK) {
			return e.apply(op, v, ru, ru.outcome, req, r, code, msg, subject, jsonOK)
		}
	}
	if r.status == http.StatusNotFound && code == "" && msg == "" {
		// No rule claimed it and the platform said nothing: a route that
		// does not exist (wrong baseURL or path), not a missing order.
		return nil, processors.Permanent(CodeConfig, e.red.s(fmt.Sprintf("%s%s answered 404 without the platform's error body (%s): the route does not exist there; check the connection's baseURL and the operation's path",
			e.cfg.base.String(), req.path, bodyKind(r))))
	}
	okStatus := r.status/100 == 2
	if len(op.successStatus) > 0 {
		okStatus = slices.ContainsFunc(op.successStatus, func(s statusMatch) bool { return s.match(r.status) })
	}
	if okStatus {
		if op.needsJSON && !jsonOK {
			return nil, e.badJSON(where, r)
		}
		if op.successField == "" {
			return e.succeed(op, r, code, msg, jsonOK)
		}
		x := gjson.GetBytes(r.body, op.successField)
		passed := x.Exists() && ((op.successEquals == nil && x.Bool()) || (op.successEquals != nil && x.String() == *op.successEquals))
		if passed {
			return e.succeed(op, r, code, msg, jsonOK)
		}
		got := "absent"
		if x.Exists() {
			got = x.Raw
		}
		if code == "" {
			code = CodeRejected
		}
		if msg == "" {
			msg = fmt.Sprintf("%s: ERP answered %s but %s is %s", where, statusText(r.status), op.successField, e.red.s(got))
		}
		return nil, processors.Permanent(code, msg)
	}
	return nil, e.defaults(req, subject, r, code, msg)
}

// bodyKind describes a body in a few words, for messages.
func bodyKind(r *response) string {
	ct := r.contentType
	if ct == "" {
		ct = "no content type"
	}
	if len(bytes.TrimSpace(r.body)) == 0 {
		return "empty body, " + ct
	}
	return fmt.Sprintf("%d bytes of %s", len(r.body), ct)
}

func (e *erp) badJSON(where string, r *response) error {
	ct := r.contentType
	if ct == "" {
		ct = "none"
	}
	what := "not JSON"
	if len(bytes.TrimSpace(r.body)) == 0 {
		what = "an empty body"
	} else if isJSON(r.contentType) {
		what = "invalid JSON"
	}
	return &Error{Code: CodeBadResponse, Message: e.red.s(fmt.Sprintf("%s: %s with content type %s, want a JSON answer, got %s: %q",
		where, statusText(r.status), ct, what, e.snippet(r.body)))}
}

// succeed extracts the operation's result.
func (e *erp) succeed(op *operation, r *response, code, msg string, jsonOK bool) (*answer, error) {
	a := &answer{resp: r, code: code, message: msg}
	if len(op.result) > 0 {
		if !jsonOK {
			return nil, e.badJSON(op.method+" "+op.name, r)
		}
		obj := make(orderedObject, 0, len(op.result))
		for _, f := range op.result {
			x := gjson.GetBytes(r.body, f.path)
			if !x.Exists() {
				obj = append(obj, kv{f.name, nil})
				continue
			}
			obj = append(obj, kv{f.name, json.RawMessage(e.red.s(x.Raw))})
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return nil, &Error{Code: CodeBadResponse, Message: fmt.Sprintf("operation %s: result: %v", op.name, err)}
		}
		a.result = b
	} else if jsonOK && len(r.body) <= maxWholeResult && len(bytes.TrimSpace(r.body)) > 0 {
		a.result = json.RawMessage(e.red.s(string(r.body)))
	}
	return a, nil
}

// missing lists the result fields whose path was absent in the answer.
func (op *operation) missing(r *response) []string {
	var out []string
	for _, f := range op.result {
		if !gjson.GetBytes(r.body, f.path).Exists() {
			out = append(out, f.name+" ("+f.path+")")
		}
	}
	return out
}

// apply turns a matched rule into the operation's outcome.
func (e *erp) apply(op *operation, v *vars, ru rule, outcome string, req *request, r *response, code, msg, subject string, jsonOK bool) (*answer, error) {
	where := req.method + " " + req.path
	if ru.code != "" {
		code = ru.code
	}
	if ru.message != nil {
		if s, err := ru.message.exec(v); err == nil {
			msg = e.red.s(s)
		}
	}
	def := func(c, m string) {
		if code == "" {
			code = c
		}
		if msg == "" {
			msg = m
		}
	}
	withHint := func() string {
		if ru.hint == "" {
			return msg
		}
		return msg + " — " + ru.hint
	}
	dur := func(t *tmpl) time.Duration {
		if t == nil {
			return 0
		}
		s, err := t.exec(v)
		if err != nil {
			return 0
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return 0
		}
		return d
	}
	switch outcome {
	case OutcomeSucceeded:
		return e.succeed(op, r, code, msg, jsonOK)
	case OutcomeNotFound:
		if code == "" {
			code = CodeNotFoundGeneric
		}
		if msg == "" {
			msg = fmt.Sprintf("%s not found in the ERP (%s answered %d)", orDefault(subject, "the object"), where, r.status)
		}
		return nil, processors.Permanent(code, withHint())
	case OutcomeUnauthorized:
		def(CodeUnauthorized, fmt.Sprintf("%s: ERP refused the connection's credentials (%s)", where, statusText(r.status)))
		return nil, processors.Permanent(code, withHint())
	case OutcomeSnooze:
		def("HTTP_"+fmt.Sprint(r.status), fmt.Sprintf("%s: ERP answered %s", where, statusText(r.status)))
		after := dur(ru.after)
		if ra := retryAfter(r.header, time.Now()); ra > 0 {
			after = ra
			e.throttled(r.status, ra)
		}
		return nil, &processors.RetryLaterError{After: after, Code: code, Reason: withHint(), Horizon: dur(ru.horizon)}
	case OutcomeRetry:
		def(CodeUnavailable, fmt.Sprintf("%s: ERP answered %s", where, statusText(r.status)))
		err := &Error{Code: code, Message: withHint()}
		if d := dur(ru.after); d > 0 {
			return nil, processors.Retry(d, err)
		}
		return nil, err
	default: // permanent
		def(CodeRejected, fmt.Sprintf("%s: ERP answered %s", where, statusText(r.status)))
		return nil, processors.Permanent(code, withHint())
	}
}

// throttled tells Options.OnThrottle that the connection answered 429 or
// 503 with a Retry-After: the whole connection should rest, not only this
// run (a circuit breaker). Other statuses (425: this order, too early) and
// answers without Retry-After are not a reason.
func (e *erp) throttled(status int, after time.Duration) {
	if e.onThrottle == nil || after <= 0 || (status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable) {
		return
	}
	e.onThrottle(e.run.Connection.Name, status, after)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// CodeNotFoundGeneric is the code of a "not found" outcome when neither
// the platform nor the rule gives one.
const CodeNotFoundGeneric = "NOT_FOUND"

// defaults classifies an answer no rule matched and that is not a
// success: the reference contract's status rules (see the package doc).
// code and msg are the platform's, when its body had them.
func (e *erp) defaults(req *request, subject string, r *response, code, msg string) error {
	where := req.method + " " + req.path
	erpSays := ""
	if msg != "" {
		erpSays = ": " + msg
	}
	switch {
	case r.status == http.StatusNotFound:
		if subject == "" {
			subject = "the object"
		}
		c := CodeNotFoundGeneric
		if code != "" {
			c = code
		}
		return processors.Permanent(c, e.red.s(fmt.Sprintf("%s not found in the ERP (%s answered 404)", subject, where)))
	case r.status == http.StatusConflict:
		if code != "" && msg != "" {
			return processors.Permanent(code, msg)
		}
		c := CodeConflict
		if code != "" {
			c = code
		}
		if msg == "" {
			msg = fmt.Sprintf("the ERP refused %s (409 Conflict)", where)
		}
		return processors.Permanent(c, msg)
	case r.status == http.StatusLocked:
		if msg == "" {
			msg = strings.TrimSpace(fmt.Sprintf("%s status is locked by another system (423 Locked)", subject))
		}
		return processors.Permanent(CodeLocked, msg)
	case r.status == http.StatusTooEarly || r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable:
		after := retryAfter(r.header, time.Now())
		e.throttled(r.status, after)
		reason := fmt.Sprintf("ERP answered %s with %s", where, statusText(r.status))
		if after > 0 {
			reason += fmt.Sprintf("; retry after %s", after.Round(time.Second))
		}
		c := code
		if c == "" {
			c = "HTTP_" + fmt.Sprint(r.status)
		}
		return processors.RetryLaterCode(after, c, e.red.s(reason+erpSays))
	case r.status >= 500:
		c := CodeUnavailable
		if code != "" {
			c = code
		}
		return &Error{Code: c, Message: e.red.s(fmt.Sprintf("%s: ERP answered %s%s", where, statusText(r.status), erpSays))}
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return processors.Permanent(CodeUnauthorized, e.red.s(fmt.Sprintf("%s: ERP refused the connection's credentials (%s)%s", where, statusText(r.status), erpSays)))
	case r.status >= 400:
		c := CodeRejected
		if code != "" {
			c = code
		}
		return processors.Permanent(c, e.red.s(fmt.Sprintf("%s: ERP answered %s%s", where, statusText(r.status), erpSays)))
	case r.status >= 300:
		return processors.Permanent(CodeConfig, fmt.Sprintf("%s: ERP answered %s (redirects are not followed; check baseURL)", where, statusText(r.status)))
	}
	return &Error{Code: CodeBadResponse, Message: fmt.Sprintf("%s: unexpected answer %s", where, statusText(r.status))}
}
