package definitions

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"golang.org/x/net/http/httpguts"
	"gopkg.in/yaml.v3"
)

// Hook is an inbound trigger (the top-level hooks section): a call to
// POST /hooks/{Name} with a JSON payload starts Job, its parameters taken
// from the payload, once the caller proved who it is (Auth).
type Hook struct {
	Name string
	Job  string
	// Description is shown in the dashboard and the API.
	Description string
	Auth        HookAuth
	// Parameters maps job parameter names to paths in the payload (dotted
	// paths, gjson syntax: order.number, items.0.sku; a leading "$." is
	// allowed). A parameter not mapped takes its default.
	Parameters map[string]string
	// Set gives parameters fixed values (text, parsed under the
	// parameter's type), for a hook that always runs one kind of
	// operation.
	Set map[string]string
	// EventID are the paths of the event's id in the payload (one, or
	// several whose values together identify the event, e.g. an order id
	// and its change time): the same event delivered again starts no
	// second run. Empty: every call starts one.
	EventID []string
	// Filter is a condition on the payload (expr language, e.g.
	// `status == "canceled"`); a payload for which it is false starts
	// nothing and is answered 204. "" matches every payload.
	Filter string
	Pos    Pos

	src    source
	filter *vm.Program
}

// HookAuth says how a hook's caller proves who it is.
type HookAuth struct {
	// Type is HookAuthHMAC, HookAuthBearer or HookAuthHeader.
	Type string
	// Secret names the environment variable holding the shared secret
	// (the HMAC key, or the token).
	Secret string
	// Header is the header carrying the signature (hmac, default
	// X-Signature) or the token (header; required).
	Header string
	// Prefix is text before the signature in its header (hmac, e.g.
	// "sha256=").
	Prefix string
	// Encoding of the signature: hex (default) or base64 (hmac).
	Encoding string
	// TimestampHeader, when set, names a header holding the time the
	// sender signed (Unix seconds); the signed text is then
	// "<timestamp>.<body>" and a call outside Tolerance of now is refused
	// (a replay).
	TimestampHeader string
	// Tolerance is how far the signed timestamp may be from now (default
	// DefaultHookTolerance).
	Tolerance Duration
}

// Hook auth types.
const (
	HookAuthHMAC   = "hmac"   // HMAC-SHA256 of the body (or "<timestamp>.<body>") in a header
	HookAuthBearer = "bearer" // Authorization: Bearer <secret>
	HookAuthHeader = "header" // <Header>: <secret>
)

// DefaultHookTolerance is how far a signed timestamp may be from now.
const DefaultHookTolerance = 5 * time.Minute

// DefaultHookSignatureHeader is the HMAC signature header by default.
const DefaultHookSignatureHeader = "X-Signature"

var (
	hookKeys     = []string{"name", "job", "description", "auth", "parameters", "set", "eventId", "filter"}
	hookAuthKeys = []string{"type", "secret", "header", "prefix", "encoding", "timestampHeader", "tolerance"}
	hookPath     = regexp.MustCompile(`^[A-Za-z0-9_@#-]+(\.[A-Za-z0-9_@#-]+)*$`)
)

// Hook returns the hook of that name.
func (s *Set) Hook(name string) (*Hook, bool) {
	for _, h := range s.Hooks {
		if h.Name == name {
			return h, true
		}
	}
	return nil, false
}

// Path returns a payload path without its optional "$." prefix.
func hookJSONPath(p string) string { return strings.TrimPrefix(p, "$.") }

// ParamPath returns the payload path of a mapped parameter, without its
// optional "$." prefix ("" when the parameter is not mapped).
func (h *Hook) ParamPath(param string) string { return hookJSONPath(h.Parameters[param]) }

// EventPaths returns the payload paths of the event id (none: nil).
func (h *Hook) EventPaths() []string {
	out := make([]string, len(h.EventID))
	for i, p := range h.EventID {
		out[i] = hookJSONPath(p)
	}
	return out
}

// Match reports whether payload (the decoded JSON object, numbers as
// int64 or float64) passes the hook's filter; true when there is none. A
// filter that reads a field the payload lacks (order.status without an
// order) is false. An error means the filter could not be evaluated on
// this payload (a type mismatch, say).
func (h *Hook) Match(payload map[string]any) (bool, error) {
	if h.Filter == "" {
		return true, nil
	}
	prog := h.filter
	if prog == nil {
		p, err := compileFilter(h.Filter)
		if err != nil {
			return false, err
		}
		prog = p
	}
	out, err := expr.Run(prog, payload)
	if err != nil {
		if strings.Contains(err.Error(), "<nil>") { // a field the payload does not have
			return false, nil
		}
		return false, fmt.Errorf("hook %s: filter %q: %s", h.Name, h.Filter, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("hook %s: filter %q gave %T, not a boolean", h.Name, h.Filter, out)
	}
	return b, nil
}

func compileFilter(src string) (*vm.Program, error) {
	return expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(), expr.AsBool())
}

func (l *loader) hook(n *yaml.Node, path string) (*Hook, bool) {
	h := &Hook{Pos: l.pos(n)}
	h.src.path = path
	h.src.set("", h.Pos)
	ok := l.each(n, path, hookKeys, &h.src, func(key string, k, v *yaml.Node) {
		h.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "name":
			h.Name, good = l.str(v, fp)
		case "job":
			h.Job, good = l.str(v, fp)
		case "description":
			h.Description, good = l.str(v, fp)
		case "parameters":
			h.Parameters, good = l.strMap(v, fp)
			l.positions(v, key, &h.src, 0)
		case "set":
			h.Set, good = l.strMap(v, fp)
			l.positions(v, key, &h.src, 0)
		case "eventId":
			if v.Kind == yaml.SequenceNode {
				h.EventID, good = l.strList(v, fp)
			} else {
				var p string
				p, good = l.str(v, fp)
				h.EventID = []string{p}
			}
		case "filter":
			h.Filter, good = l.str(v, fp)
		case "auth":
			good = l.each(v, fp, hookAuthKeys, nil, func(key string, k, v *yaml.Node) {
				sub := "auth." + key
				h.src.set(sub, l.pos(k))
				ap := join(fp, key)
				ok := true
				switch key {
				case "type":
					h.Auth.Type, ok = l.str(v, ap)
				case "secret":
					h.Auth.Secret, ok = l.str(v, ap)
				case "header":
					h.Auth.Header, ok = l.str(v, ap)
				case "prefix":
					h.Auth.Prefix, ok = l.str(v, ap)
				case "encoding":
					h.Auth.Encoding, ok = l.str(v, ap)
				case "timestampHeader":
					h.Auth.TimestampHeader, ok = l.str(v, ap)
				case "tolerance":
					h.Auth.Tolerance, ok = l.duration(v, ap)
				}
				if !ok {
					h.src.markBad(sub)
				}
			})
		}
		if !good {
			h.src.markBad(key)
		}
	})
	return h, ok && !isNull(n)
}

// hooks checks the hooks section: names, the job and its parameters, the
// auth, paths and the filter (compiled once here).
func (v *validator) hooks(s *Set) {
	first := map[string]Pos{}
	for i, h := range s.Hooks {
		path := pathOr(h.src.path, "hooks", i)
		if v.name(h.src, h.Pos, path, h.Name) {
			if p, dup := first[h.Name]; dup {
				v.add(h.src.at("name", h.Pos), join(path, "name"), "duplicate hook name %q (first defined at %s)", h.Name, at(p))
			} else {
				first[h.Name] = h.src.at("name", h.Pos)
			}
		}
		var job *Job
		if !v.required(h.src, h.Pos, path, "job", h.Job) && !h.src.bad["job"] {
			j, ok := s.Job(h.Job)
			if !ok {
				names := make([]string, 0, len(s.Jobs))
				for _, j := range s.Jobs {
					names = append(names, j.Name)
				}
				v.add(h.src.at("job", h.Pos), join(path, "job"), "unknown job %q%s", h.Job, Hint(h.Job, names))
			} else {
				job = j
			}
		}
		v.hookAuth(h, path)
		for _, name := range sortedKeys(h.Parameters) {
			p := h.Parameters[name]
			key := "parameters." + name
			if job != nil && job.Param(name) == nil {
				v.add(h.src.at(key, h.Pos), join(path, key), "job %s has no parameter %q%s", job.Name, name, Hint(name, paramNames(job)))
			}
			if !hookPath.MatchString(hookJSONPath(p)) {
				v.add(h.src.at(key, h.Pos), join(path, key), "invalid payload path %q (want dotted names such as order.number)", p)
			}
		}
		for _, name := range sortedKeys(h.Set) {
			key := "set." + name
			if job != nil && job.Param(name) == nil {
				v.add(h.src.at(key, h.Pos), join(path, key), "job %s has no parameter %q%s", job.Name, name, Hint(name, paramNames(job)))
			}
			if _, both := h.Parameters[name]; both {
				v.add(h.src.at(key, h.Pos), join(path, key), "parameter %s is both mapped (parameters) and set: keep one", name)
			}
		}
		if job != nil && !h.src.bad["parameters"] && !h.src.bad["set"] {
			for _, p := range job.Parameters {
				_, mapped := h.Parameters[p.Name]
				_, set := h.Set[p.Name]
				if !mapped && !set && p.Required && p.Default == nil {
					v.add(h.src.at("parameters", h.Pos), join(path, "parameters"), "job %s needs parameter %s, which the hook does not map: add %s: PAYLOAD.PATH", job.Name, p.Name, p.Name)
				}
			}
		}
		for _, e := range h.EventID {
			if !hookPath.MatchString(hookJSONPath(e)) {
				v.add(h.src.at("eventId", h.Pos), join(path, "eventId"), "invalid payload path %q (want dotted names such as event.id)", e)
			}
		}
		if h.Filter != "" && !h.src.bad["filter"] {
			prog, err := compileFilter(h.Filter)
			if err != nil {
				msg := strings.ReplaceAll(err.Error(), "\n", " ")
				v.add(h.src.at("filter", h.Pos), join(path, "filter"), "invalid filter: %s", msg)
			} else {
				h.filter = prog
			}
		}
	}
}

func (v *validator) hookAuth(h *Hook, path string) {
	a := h.Auth
	at := func(key string) Pos { return h.src.at("auth."+key, h.src.at("auth", h.Pos)) }
	if _, written := h.src.fields["auth"]; !written && !h.src.bad["auth"] {
		v.add(h.Pos, join(path, "auth"), "required: every hook checks its caller (type hmac, bearer or header, with a secret from the environment)")
		return
	}
	types := []string{HookAuthHMAC, HookAuthBearer, HookAuthHeader}
	switch {
	case a.Type == "" && !h.src.bad["auth.type"]:
		v.add(at("type"), join(path, "auth.type"), "required (%s)", strings.Join(types, ", "))
	case a.Type != "" && !slices.Contains(types, a.Type):
		v.add(at("type"), join(path, "auth.type"), "unknown auth type %q%s (want %s)", a.Type, Hint(a.Type, types), strings.Join(types, ", "))
	}
	switch {
	case a.Secret == "" && !h.src.bad["auth.secret"]:
		v.add(at("secret"), join(path, "auth.secret"), "required: the name of the environment variable holding the secret")
	case a.Secret != "" && !envName.MatchString(a.Secret):
		v.add(at("secret"), join(path, "auth.secret"), "%q is not an environment variable name: name the variable, never write the secret itself", a.Secret)
	}
	if a.Type == HookAuthHeader && a.Header == "" && !h.src.bad["auth.header"] {
		v.add(at("header"), join(path, "auth.header"), "required for type header: the header carrying the token")
	}
	if a.Type != HookAuthHMAC {
		for _, k := range []string{"prefix", "encoding", "timestampHeader", "tolerance"} {
			if _, ok := h.src.fields["auth."+k]; ok {
				v.add(at(k), join(path, "auth."+k), "only type hmac reads %s", k)
			}
		}
	}
	if a.Encoding != "" && a.Encoding != "hex" && a.Encoding != "base64" {
		v.add(at("encoding"), join(path, "auth.encoding"), "unknown encoding %q (want hex or base64)", a.Encoding)
	}
	if a.Tolerance < 0 || (a.Tolerance > 0 && a.Tolerance.D() > 24*time.Hour) {
		v.add(at("tolerance"), join(path, "auth.tolerance"), "want a duration from 1s to 24h, not %s", a.Tolerance.D())
	}
	for _, hd := range []struct{ key, val string }{{"header", a.Header}, {"timestampHeader", a.TimestampHeader}} {
		if hd.val != "" && !httpguts.ValidHeaderFieldName(hd.val) {
			v.add(at(hd.key), join(path, "auth."+hd.key), "invalid header name %q", hd.val)
		}
	}
}

func paramNames(j *Job) []string {
	out := make([]string, len(j.Parameters))
	for i, p := range j.Parameters {
		out[i] = p.Name
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
