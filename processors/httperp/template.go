package httperp

// Templates of operations. The choice: text/template from the standard
// library (no dependency, well known, a parse tree we can walk to check
// every reference at validation time) with a small function set, plus the
// OpenAPI-style shorthand {name} for "the input (or setting) name". JSON
// paths are gjson's (github.com/tidwall/gjson): one call per lookup on the
// raw body, no decoding into maps, and the syntax (fault.type,
// errors.0.code) users know from jq-like tools.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/shopspring/decimal"

	"github.com/jobrunner/jobrunner/definitions"
)

// escaping says how placeholder values are escaped where they land.
type escaping int

const (
	escNone escaping = iota // headers, query (url.Values encodes), body text, messages
	escPath                 // path segments: url.PathEscape
)

// shorthand matches {name} not part of {{ … }}.
var shorthand = regexp.MustCompile(`(^|[^{])\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// tmpl is one compiled template.
type tmpl struct {
	raw string
	t   *template.Template
	// single is the placeholder name when the whole text is exactly one
	// {name} or {{.name}}: a body leaf then takes the input's typed value
	// and is omitted when the input is absent.
	single string
	esc    escaping
}

// tmplEnv is what a template may refer to, for checks.
type tmplEnv struct {
	inputs   map[string]bool
	settings map[string]any
	// secrets are the connection's secret names; nil skips the check.
	secrets map[string]string
	// used, when not nil, records the settings templates refer to.
	used map[string]bool
	// headers is true while compiling a header: the only place a
	// template may send a secret (paths, queries and bodies are logged,
	// shown in previews and recorded).
	headers bool
}

var stubFuncs = template.FuncMap{
	"ph":          func(string) (string, error) { return "", nil },
	"secret":      func(string) (string, error) { return "", nil },
	"setting":     func(string) (string, error) { return "", nil },
	"json":        func(any) (string, error) { return "", nil },
	"lower":       strings.ToLower,
	"upper":       strings.ToUpper,
	"trim":        strings.TrimSpace,
	"default":     func(def, v string) string { return v },
	"pathescape":  url.PathEscape,
	"queryescape": url.QueryEscape,
}

func convertShorthand(s string) string {
	// Twice: adjacent placeholders ("{a}{b}") share a boundary character.
	for range 2 {
		s = shorthand.ReplaceAllString(s, `$1{{ph "$2"}}`)
	}
	return s
}

// compile parses s, checks its references against env and reports
// problems under key. It returns nil when s does not compile.
func (env tmplEnv) compile(p *problems, key, s string, esc escaping) *tmpl {
	t, err := template.New(key).Option("missingkey=error").Funcs(stubFuncs).Parse(convertShorthand(s))
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		p.add(key, "template %q: %s", s, msg)
		return nil
	}
	out := &tmpl{raw: s, t: t, esc: esc}
	if m := regexp.MustCompile(`^\{([A-Za-z_][A-Za-z0-9_]*)\}$`).FindStringSubmatch(s); m != nil {
		out.single = m[1]
	} else if m := regexp.MustCompile(`^\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$`).FindStringSubmatch(s); m != nil {
		out.single = m[1]
	}
	if t.Tree != nil && t.Tree.Root != nil {
		env.walk(p, key, s, t.Tree.Root)
	}
	return out
}

// walk checks the references in a parse tree.
func (env tmplEnv) walk(p *problems, key, raw string, n parse.Node) {
	switch x := n.(type) {
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			env.walk(p, key, raw, c)
		}
	case *parse.ActionNode:
		env.walk(p, key, raw, x.Pipe)
	case *parse.PipeNode:
		if x == nil {
			return
		}
		for _, c := range x.Cmds {
			env.walk(p, key, raw, c)
		}
	case *parse.CommandNode:
		if len(x.Args) >= 2 {
			if id, ok := x.Args[0].(*parse.IdentifierNode); ok {
				if sn, ok := x.Args[1].(*parse.StringNode); ok {
					env.ref(p, key, raw, id.Ident, sn.Text)
				}
			}
		}
		for _, a := range x.Args {
			env.walk(p, key, raw, a)
		}
	case *parse.FieldNode:
		if len(x.Ident) > 0 {
			if _, ok := env.inputs[x.Ident[0]]; !ok {
				p.add(key, "template %q: .%s is not an input of the operation%s", raw, x.Ident[0], inputsHint(env.inputs))
			}
		}
	case *parse.IfNode:
		env.walk(p, key, raw, x.Pipe)
		env.walk(p, key, raw, x.List)
		env.walk(p, key, raw, x.ElseList)
	case *parse.RangeNode:
		env.walk(p, key, raw, x.Pipe)
		env.walk(p, key, raw, x.List)
		env.walk(p, key, raw, x.ElseList)
	case *parse.WithNode:
		env.walk(p, key, raw, x.Pipe)
		env.walk(p, key, raw, x.List)
		env.walk(p, key, raw, x.ElseList)
	}
}

func inputsHint(in map[string]bool) string {
	if len(in) == 0 {
		return " (it declares no inputs)"
	}
	ns := make([]string, 0, len(in))
	for n := range in {
		ns = append(ns, n)
	}
	return " (inputs: " + strings.Join(sortStrings(ns), ", ") + ")"
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func (env tmplEnv) ref(p *problems, key, raw, fn, name string) {
	switch fn {
	case "ph":
		if _, ok := env.inputs[name]; ok {
			return
		}
		if env.used != nil {
			env.used[name] = true
		}
		if _, ok := env.settings[name]; ok {
			return
		}
		if name == "baseURL" {
			return
		}
		p.add(key, "template %q: {%s} is neither an input of the operation nor a setting of the connection%s", raw, name, inputsHint(env.inputs))
	case "secret":
		if !env.headers {
			p.add(key, "template %q: secrets may only be sent in headers (paths, queries and bodies are logged and recorded)", raw)
			return
		}
		if _, ok := env.secrets[name]; env.secrets != nil && !ok {
			p.add(key, "template %q: the connection has no secret %q", raw, name)
		}
	case "setting":
		if env.used != nil {
			env.used[name] = true
		}
		if _, ok := env.settings[name]; !ok {
			p.add(key, "template %q: setting %q is not set on the connection", raw, name)
		}
	}
}

// bodyNode is a JSON body template: a mapping, a list, a template leaf or
// a fixed value.
type bodyNode struct {
	obj   []bodyField
	list  []*bodyNode
	leaf  *tmpl
	fixed any // numbers, bools, null
	kind  int // 0 fixed, 1 object, 2 list, 3 template
}

type bodyField struct {
	name string
	node *bodyNode
}

func (env tmplEnv) body(p *problems, key string, v any, depth int) *bodyNode {
	if depth > 32 {
		p.add(key, "nested too deep")
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		n := &bodyNode{kind: 1}
		for _, k := range names(x) {
			if c := env.body(p, key+"."+k, x[k], depth+1); c != nil {
				n.obj = append(n.obj, bodyField{k, c})
			}
		}
		return n
	case []any:
		n := &bodyNode{kind: 2}
		for i, e := range x {
			if c := env.body(p, fmt.Sprintf("%s[%d]", key, i), e, depth+1); c != nil {
				n.list = append(n.list, c)
			}
		}
		return n
	case string:
		t := env.compile(p, key, x, escNone)
		if t == nil {
			return nil
		}
		return &bodyNode{kind: 3, leaf: t}
	default:
		return &bodyNode{kind: 0, fixed: x}
	}
}

// vars is what one request's templates see.
type vars struct {
	typed    definitions.Values // the bound inputs, typed; absent ones missing
	text     map[string]string  // every declared input as text ("" when absent)
	settings map[string]any
	secrets  map[string]string
}

func (v *vars) setting(name string) (string, bool) {
	x, ok := v.settings[name]
	if !ok || x == nil {
		return "", ok
	}
	s, good := asString(x)
	if !good {
		b, _ := json.Marshal(x)
		s = string(b)
	}
	return s, true
}

// placeholder resolves {name}: an input (escaped for a path), else a
// setting (whose own {x} are expanded, values escaped), else baseURL.
func (v *vars) placeholder(name string, esc escaping, depth int) (string, error) {
	if s, ok := v.text[name]; ok {
		if esc == escPath {
			return url.PathEscape(s), nil
		}
		return s, nil
	}
	if s, ok := v.setting(name); ok {
		// A setting may hold a path ("/s/-/dw/…/{site}/orders"): its own
		// {x} are expanded (escaped like inputs) and, in a path, its text
		// is escaped segment by segment (slashes kept).
		var b strings.Builder
		last := 0
		lit := func(t string) {
			if esc == escPath {
				t = escapeSegments(t)
			}
			b.WriteString(t)
		}
		for _, m := range shorthand.FindAllStringSubmatchIndex(s, -1) {
			// m[4]:m[5] is the name; the match may start with one
			// boundary character (group 1).
			lit(s[last:m[3]])
			if depth > 3 {
				lit(s[m[3]:m[1]])
			} else {
				r, err := v.placeholder(s[m[4]:m[5]], esc, depth+1)
				if err != nil {
					return "", err
				}
				b.WriteString(r)
			}
			last = m[1]
		}
		lit(s[last:])
		return b.String(), nil
	}
	return "", fmt.Errorf("{%s} is neither an input nor a setting", name)
}

var errMissingSecret = errors.New("secret not set")

// escapeSegments path-escapes each /-separated segment of t.
func escapeSegments(t string) string {
	parts := strings.Split(t, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// exec renders t with v.
func (t *tmpl) exec(v *vars) (string, error) {
	if t == nil {
		return "", nil
	}
	c, err := t.t.Clone()
	if err != nil {
		return "", err
	}
	c.Funcs(template.FuncMap{
		"ph": func(name string) (string, error) { return v.placeholder(name, t.esc, 0) },
		"secret": func(name string) (string, error) {
			s := v.secrets[name]
			if s == "" {
				return "", fmt.Errorf("secret %s: %w", name, errMissingSecret)
			}
			return s, nil
		},
		"setting": func(name string) (string, error) {
			s, ok := v.setting(name)
			if !ok {
				return "", fmt.Errorf("setting %s is not set", name)
			}
			return s, nil
		},
		"json": func(x any) (string, error) {
			b, err := json.Marshal(x)
			return string(b), err
		},
		"default": func(def, x string) string {
			if x == "" {
				return def
			}
			return x
		},
	})
	var b strings.Builder
	data := make(map[string]any, len(v.text))
	for k, s := range v.text {
		data[k] = s
	}
	if err := c.Execute(&b, data); err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return "", fmt.Errorf("template %q: %s", t.raw, msg)
	}
	return b.String(), nil
}

// render builds the JSON value of a body node; ok is false for a leaf to
// omit (a single placeholder whose input is absent or empty).
func (n *bodyNode) render(v *vars) (any, bool, error) {
	switch n.kind {
	case 1:
		out := make(orderedObject, 0, len(n.obj))
		for _, f := range n.obj {
			x, ok, err := f.node.render(v)
			if err != nil {
				return nil, false, err
			}
			if ok {
				out = append(out, kv{f.name, x})
			}
		}
		return out, true, nil
	case 2:
		out := make([]any, 0, len(n.list))
		for _, c := range n.list {
			x, ok, err := c.render(v)
			if err != nil {
				return nil, false, err
			}
			if ok {
				out = append(out, x)
			}
		}
		return out, true, nil
	case 3:
		if name := n.leaf.single; name != "" {
			if x, ok := v.typed[name]; ok {
				return jsonValue(x), true, nil
			}
			if _, isInput := v.text[name]; isInput {
				return nil, false, nil // absent optional input: omitted
			}
			s, ok := v.setting(name)
			if ok && s == "" {
				return nil, false, nil // empty setting: omitted
			}
		}
		s, err := n.leaf.exec(v)
		return s, err == nil, err
	default:
		return n.fixed, true, nil
	}
}

// jsonValue is how a typed parameter value is sent: ints and bools as
// JSON numbers and booleans, decimals as exact JSON numbers (never through
// a float), dates and datetimes as their text.
func jsonValue(x any) any {
	switch y := x.(type) {
	case decimal.Decimal:
		t := definitions.Values{"d": y}.Text()["d"]
		return json.Number(t)
	case string, int64, int, bool:
		return y
	default:
		return definitions.Values{"v": x}.Text()["v"]
	}
}

// orderedObject is a JSON object that keeps its key order.
type orderedObject []kv

type kv struct {
	k string
	v any
}

// MarshalJSON encodes the object in order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		b.Write(k)
		b.WriteByte(':')
		val, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(val)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}
