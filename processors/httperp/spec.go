package httperp

import (
	"embed"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jobrunner/jobrunner/definitions"
)

// Preset names shipped with the http connection type.
const (
	PresetReferenceERP   = "reference-erp"
	PresetOracleCommerce = "oracle-commerce"
	PresetVTEX           = "vtex"
	PresetSalesforceB2C  = "salesforce-b2c"
	// PresetNone opts out of the default reference-erp preset.
	PresetNone = "none"
)

// Outcomes an outcome rule can name.
const (
	OutcomeSucceeded    = "succeeded"    // the operation did what was asked
	OutcomePermanent    = "permanent"    // fail the run now, code and message kept
	OutcomeNotFound     = "notFound"     // permanent: the platform has no such thing
	OutcomeUnauthorized = "unauthorized" // permanent config error (after one token refresh)
	OutcomeSnooze       = "snooze"       // snooze: come back later, no attempt used
	OutcomeRetry        = "retry"        // failed attempt, retried with backoff
)

var outcomeNames = []string{OutcomeSucceeded, OutcomePermanent, OutcomeNotFound, OutcomeUnauthorized, OutcomeSnooze, OutcomeRetry}

//go:embed presets/*.yaml
var presetFS embed.FS

// preset is one embedded preset: default settings, auth and operations.
type preset struct {
	Settings   map[string]any `yaml:"settings"`
	Auth       any            `yaml:"auth"`
	Operations map[string]any `yaml:"operations"`
}

var (
	presetsOnce sync.Once
	presets     map[string]preset
)

func loadPresets() map[string]preset {
	presetsOnce.Do(func() {
		presets = map[string]preset{}
		for _, name := range []string{PresetReferenceERP, PresetOracleCommerce, PresetVTEX, PresetSalesforceB2C} {
			b, err := presetFS.ReadFile("presets/" + name + ".yaml")
			if err != nil {
				panic(fmt.Sprintf("httperp: preset %s: %v", name, err))
			}
			var p preset
			if err := yaml.Unmarshal(b, &p); err != nil {
				panic(fmt.Sprintf("httperp: preset %s: %v", name, err))
			}
			presets[name] = p
		}
	})
	return presets
}

// Presets returns the names of the shipped presets, sorted.
func Presets() []string {
	names := make([]string, 0, 4)
	for n := range loadPresets() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// deepMerge returns base overlaid with over: maps merge key by key, any
// other value of over replaces base's. Neither input is modified.
func deepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = deepMerge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// mergeOperation overlays a connection's operation fields on the preset's;
// outcome rules written on the connection come before the preset's (first
// match wins).
func mergeOperation(base, over map[string]any) map[string]any {
	m := deepMerge(base, over)
	if bo, ok := base["outcomes"].([]any); ok {
		if oo, ok := over["outcomes"].([]any); ok {
			m["outcomes"] = append(append([]any{}, oo...), bo...)
		}
	}
	return m
}

// effective returns the connection's settings and operations with its
// preset applied, and the preset's name ("" for none). An unknown preset
// is an error.
func effective(presetName string, settings, ops map[string]any) (map[string]any, map[string]any, string, error) {
	if presetName == "" {
		presetName = PresetReferenceERP
	}
	if presetName == PresetNone {
		return settings, ops, "", nil
	}
	p, ok := loadPresets()[presetName]
	if !ok {
		return nil, nil, "", fmt.Errorf("unknown preset %q (known: %s, or none)", presetName, strings.Join(Presets(), ", "))
	}
	s := deepMerge(p.Settings, settings)
	if _, written := settings["auth"]; !written && p.Auth != nil {
		s["auth"] = p.Auth
	}
	o := map[string]any{}
	for name, v := range p.Operations {
		o[name] = v
	}
	for name, v := range ops {
		bm, _ := o[name].(map[string]any)
		om, ok := v.(map[string]any)
		if bm != nil && ok {
			o[name] = mergeOperation(bm, om)
		} else {
			o[name] = v
		}
	}
	return s, o, presetName, nil
}

// problems collects field problems; keys are relative to the connection.
type problems []definitions.FieldProblem

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, definitions.FieldProblem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// operation is one parsed connection operation.
type operation struct {
	name    string
	method  string
	path    *tmpl
	query   []namedTmpl
	headers []namedTmpl
	body    *bodyNode // nil: no body
	timeout time.Duration
	// inputs by name: true when required.
	inputs map[string]bool
	// changes: the request changes something (Idempotency-Key, the side
	// effect guard, skipped in previews). Default: not GET/HEAD.
	changes bool
	idemKey *tmpl // suffix after "<run key>:"; nil: the operation name
	subject *tmpl // what the operation is about, in messages ("order X")

	successStatus []statusMatch // empty: 2xx
	successField  string        // gjson path; "" none
	successEquals *string       // nil: truthy
	result        []namedPath
	errCode       []string // gjson paths of the platform's code
	errMessage    []string // and message
	outcomes      []rule
	// needsJSON: a 2xx answer must be JSON (result or success field).
	needsJSON bool
}

type namedTmpl struct {
	name string
	t    *tmpl
}

type namedPath struct{ name, path string }

// statusMatch matches one status (code) or a class (class 4 for "4xx").
type statusMatch struct{ code, class int }

func (s statusMatch) match(status int) bool {
	if s.class > 0 {
		return status/100 == s.class
	}
	return status == s.code
}

// rule is one row of an outcome table.
type rule struct {
	status  []statusMatch
	codes   []string
	field   string
	equals  []string
	outcome string
	code    string
	message *tmpl
	hint    string
	after   *tmpl // duration, may name settings
	horizon *tmpl
}

var (
	methods     = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead}
	inputName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	opKeys      = []string{"method", "path", "query", "headers", "body", "timeout", "inputs", "changes", "idempotencyKey", "subject", "success", "result", "error", "outcomes", "description"}
	ruleKeys    = []string{"status", "code", "field", "equals", "outcome", "errorCode", "message", "hint", "after", "horizon"}
	successKeys = []string{"status", "field", "equals"}
	errorKeys   = []string{"code", "message"}
)

// names returns the keys of m, sorted.
func names(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func unknownKeys(p *problems, key string, m map[string]any, known []string) {
	for _, k := range names(m) {
		if !slices.Contains(known, k) {
			p.add(key+"."+k, "unknown field %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
}

func asString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	return "", false
}

// strList reads a string or a list of strings (numbers are taken as text).
func strList(p *problems, key string, v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := asString(e)
			if !ok {
				p.add(fmt.Sprintf("%s[%d]", key, i), "want a string, got %T", e)
				continue
			}
			out = append(out, s)
		}
		return out
	default:
		s, ok := asString(v)
		if !ok {
			p.add(key, "want a string or a list of strings, got %T", v)
			return nil
		}
		return []string{s}
	}
}

func statusList(p *problems, key string, v any) []statusMatch {
	var out []statusMatch
	for _, s := range strList(p, key, v) {
		s = strings.ToLower(strings.TrimSpace(s))
		if len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5' {
			out = append(out, statusMatch{class: int(s[0] - '0')})
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 || n > 599 {
			p.add(key, "%q is not an HTTP status (want 100..599 or a class such as 4xx)", s)
			continue
		}
		out = append(out, statusMatch{code: n})
	}
	return out
}

// strMapOf reads a mapping of strings.
func strMapOf(p *problems, key string, v any) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.add(key, "want a mapping, got %T", v)
		return nil
	}
	out := make(map[string]string, len(m))
	for k, x := range m {
		s, ok := asString(x)
		if !ok {
			p.add(key+"."+k, "want a string, got %T", x)
			continue
		}
		out[k] = s
	}
	return out
}

// parseOperations parses every operation; problems are keyed
// "operations.NAME…". settings are the effective settings (for
// placeholders).
func parseOperations(ops map[string]any, settings map[string]any, secrets map[string]string, used map[string]bool, p *problems) map[string]*operation {
	out := make(map[string]*operation, len(ops))
	for _, name := range names(ops) {
		key := "operations." + name
		if !inputName.MatchString(name) {
			p.add(key, "invalid operation name %q (letters, digits and _, not starting with a digit)", name)
			continue
		}
		m, ok := ops[name].(map[string]any)
		if !ok {
			p.add(key, "want a mapping (method, path, …), got %T", ops[name])
			continue
		}
		if op := parseOperation(name, m, settings, secrets, used, p, key); op != nil {
			out[name] = op
		}
	}
	return out
}

func parseOperation(name string, m map[string]any, settings map[string]any, secrets map[string]string, used map[string]bool, p *problems, key string) *operation {
	before := len(*p)
	unknownKeys(p, key, m, opKeys)
	op := &operation{name: name, inputs: map[string]bool{}}

	// Inputs first: templates are checked against them.
	switch in := m["inputs"].(type) {
	case nil:
	case map[string]any:
		for _, n := range names(in) {
			s, _ := asString(in[n])
			switch {
			case !inputName.MatchString(n):
				p.add(key+".inputs."+n, "invalid input name %q", n)
			case s == "required" || s == "true":
				op.inputs[n] = true
			case s == "optional" || s == "false":
				op.inputs[n] = false
			default:
				p.add(key+".inputs."+n, "want required or optional, got %v", in[n])
			}
		}
	case []any:
		for _, n := range strList(p, key+".inputs", in) {
			opt := strings.HasSuffix(n, "?")
			n = strings.TrimSuffix(n, "?")
			if !inputName.MatchString(n) {
				p.add(key+".inputs", "invalid input name %q", n)
				continue
			}
			op.inputs[n] = !opt
		}
	default:
		p.add(key+".inputs", "want a mapping of input name to required/optional, got %T", in)
	}
	env := tmplEnv{inputs: op.inputs, settings: settings, secrets: secrets, used: used}

	method, _ := m["method"].(string)
	op.method = strings.ToUpper(strings.TrimSpace(method))
	switch {
	case op.method == "":
		p.add(key+".method", "required (one of %s)", strings.Join(methods, ", "))
	case !slices.Contains(methods, op.method):
		p.add(key+".method", "unknown method %q (want one of %s)", method, strings.Join(methods, ", "))
	}
	op.changes = op.method != http.MethodGet && op.method != http.MethodHead
	if v, ok := m["changes"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			p.add(key+".changes", "want true or false, got %T", v)
		}
		op.changes = b
	}

	path, _ := m["path"].(string)
	if strings.TrimSpace(path) == "" {
		p.add(key+".path", "required (a path below baseURL, e.g. /orders/{orderNumber})")
	} else {
		op.path = env.compile(p, key+".path", path, escPath)
		if op.path != nil && !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "{") {
			p.add(key+".path", "must start with / (it is appended to baseURL)")
		}
	}
	query := strMapOf(p, key+".query", m["query"])
	for _, n := range sortedKeys(query) {
		if t := env.compile(p, key+".query."+n, query[n], escNone); t != nil {
			op.query = append(op.query, namedTmpl{n, t})
		}
	}
	headers := strMapOf(p, key+".headers", m["headers"])
	for _, n := range sortedKeys(headers) {
		if !validHeaderName(n) {
			p.add(key+".headers."+n, "%q is not a valid header name", n)
			continue
		}
		switch http.CanonicalHeaderKey(n) {
		case "Authorization", "Idempotency-Key", "Host", "Content-Length", "Content-Type", "Transfer-Encoding":
			p.add(key+".headers."+n, "is set by the processor (auth belongs in settings.auth, secrets in secrets)")
			continue
		}
		henv := env
		henv.headers = true
		if t := henv.compile(p, key+".headers."+n, headers[n], escNone); t != nil {
			op.headers = append(op.headers, namedTmpl{http.CanonicalHeaderKey(n), t})
		}
	}
	if b, ok := m["body"]; ok && b != nil {
		op.body = env.body(p, key+".body", b, 0)
	}
	if v, ok := m["timeout"]; ok && v != nil {
		d, err := duration(v)
		if err != nil || d <= 0 {
			p.add(key+".timeout", "want a positive duration such as 10s, got %v", v)
		}
		op.timeout = d
	}
	if s, ok := m["idempotencyKey"].(string); ok {
		op.idemKey = env.compile(p, key+".idempotencyKey", s, escNone)
	}
	if s, ok := m["subject"].(string); ok {
		op.subject = env.compile(p, key+".subject", s, escNone)
	}

	if v, ok := m["success"]; ok && v != nil {
		sm, isMap := v.(map[string]any)
		if !isMap {
			p.add(key+".success", "want a mapping (status, field, equals), got %T", v)
		} else {
			unknownKeys(p, key+".success", sm, successKeys)
			op.successStatus = statusList(p, key+".success.status", sm["status"])
			if f, ok := sm["field"].(string); ok {
				op.successField = checkPath(p, key+".success.field", f)
				op.needsJSON = true
			}
			if e, ok := sm["equals"]; ok {
				s, good := asString(e)
				if !good {
					p.add(key+".success.equals", "want a scalar, got %T", e)
				}
				op.successEquals = &s
				if op.successField == "" {
					p.add(key+".success.equals", "needs success.field")
				}
			}
		}
	}
	res := strMapOf(p, key+".result", m["result"])
	for _, n := range sortedKeys(res) {
		op.result = append(op.result, namedPath{n, checkPath(p, key+".result."+n, res[n])})
		op.needsJSON = true
	}
	op.errCode, op.errMessage = []string{"code"}, []string{"message"}
	if v, ok := m["error"]; ok && v != nil {
		em, isMap := v.(map[string]any)
		if !isMap {
			p.add(key+".error", "want a mapping (code, message: JSON paths), got %T", v)
		} else {
			unknownKeys(p, key+".error", em, errorKeys)
			if c, ok := em["code"]; ok {
				op.errCode = nil
				for _, s := range strList(p, key+".error.code", c) {
					op.errCode = append(op.errCode, checkPath(p, key+".error.code", s))
				}
			}
			if c, ok := em["message"]; ok {
				op.errMessage = nil
				for _, s := range strList(p, key+".error.message", c) {
					op.errMessage = append(op.errMessage, checkPath(p, key+".error.message", s))
				}
			}
		}
	}
	if v, ok := m["outcomes"]; ok && v != nil {
		list, isList := v.([]any)
		if !isList {
			p.add(key+".outcomes", "want a list of rules, got %T", v)
		}
		for i, item := range list {
			rk := fmt.Sprintf("%s.outcomes[%d]", key, i)
			rm, ok := item.(map[string]any)
			if !ok {
				p.add(rk, "want a mapping (status, code, field, equals, outcome …), got %T", item)
				continue
			}
			if r := parseRule(p, rk, rm, env); r != nil {
				op.outcomes = append(op.outcomes, *r)
			}
		}
	}
	if len(*p) > before {
		return nil
	}
	return op
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func parseRule(p *problems, key string, m map[string]any, env tmplEnv) *rule {
	unknownKeys(p, key, m, ruleKeys)
	r := &rule{}
	r.status = statusList(p, key+".status", m["status"])
	r.codes = strList(p, key+".code", m["code"])
	if f, ok := m["field"].(string); ok {
		r.field = checkPath(p, key+".field", f)
	}
	r.equals = strList(p, key+".equals", m["equals"])
	if len(r.equals) > 0 && r.field == "" {
		p.add(key+".equals", "needs field")
	}
	if len(r.status) == 0 && len(r.codes) == 0 && r.field == "" {
		p.add(key, "matches nothing: give status, code and/or field")
	}
	r.outcome, _ = m["outcome"].(string)
	if !slices.Contains(outcomeNames, r.outcome) {
		p.add(key+".outcome", "want one of %s, got %q", strings.Join(outcomeNames, ", "), r.outcome)
	}
	r.code, _ = m["errorCode"].(string)
	if s, ok := m["message"].(string); ok {
		r.message = env.compile(p, key+".message", s, escNone)
	}
	r.hint, _ = m["hint"].(string)
	for _, f := range []struct {
		name string
		dst  **tmpl
	}{{"after", &r.after}, {"horizon", &r.horizon}} {
		v, ok := m[f.name]
		if !ok || v == nil {
			continue
		}
		s, _ := asString(v)
		*f.dst = env.compile(p, key+"."+f.name, s, escNone)
		if *f.dst != nil && !strings.Contains(s, "{") {
			if d, err := time.ParseDuration(s); err != nil || d < 0 {
				p.add(key+"."+f.name, "want a duration such as 15m, got %q", s)
			}
		}
		if r.outcome != OutcomeSnooze && r.outcome != OutcomeRetry {
			p.add(key+"."+f.name, "only for outcome snooze or retry")
		}
	}
	return r
}

// checkPath checks a gjson path: non-empty, balanced, no modifiers that
// could not name a field.
func checkPath(p *problems, key, path string) string {
	path = strings.TrimSpace(path)
	if path == "" {
		p.add(key, "empty JSON path")
		return ""
	}
	depth := 0
	for _, r := range path {
		switch r {
		case '[', '(', '{':
			depth++
		case ']', ')', '}':
			depth--
		}
		if depth < 0 {
			break
		}
	}
	if depth != 0 {
		p.add(key, "JSON path %q has unbalanced brackets", path)
	}
	if strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
		p.add(key, "JSON path %q has an empty segment", path)
	}
	return path
}
