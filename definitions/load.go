package definitions

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize caps the size of one definitions file.
const MaxFileSize = 4 << 20

// maxSettingsDepth caps how deeply free-form settings may nest.
const maxSettingsDepth = 64

// Problem is one mistake in the definitions, located where it was written.
type Problem struct {
	Pos
	// Path names the field, e.g. "jobs[0].parameters[1].type" (indexes
	// count within the file); empty for file-level problems.
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// Error returns "file:line: path: message" (the line and path are left
// out when unknown).
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems lists every mistake found in a set of definitions.
type Problems []Problem

// Error returns one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by file and line, keeping the order of
// problems on the same line.
func sortProblems(ps Problems) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
}

// source records where an object and each of its fields were written.
type source struct {
	path   string          // e.g. "jobs[0]"
	fields map[string]Pos  // field key (dotted for nested) -> where written
	bad    map[string]bool // fields whose value failed to load (already reported)
}

func (s *source) set(key string, p Pos) {
	if s.fields == nil {
		s.fields = map[string]Pos{}
	}
	s.fields[key] = p
}

func (s *source) markBad(key string) {
	if s.bad == nil {
		s.bad = map[string]bool{}
	}
	s.bad[key] = true
}

// loaded reports whether the object came from a file (not built in code).
func (s source) loaded() bool { return s.fields != nil }

func (s source) written(key string) bool { _, ok := s.fields[key]; return ok }

// at returns where a field was written, or fallback.
func (s source) at(key string, fallback Pos) Pos {
	if p, ok := s.fields[key]; ok {
		return p
	}
	return fallback
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

//go:embed builtin/*.yaml
var builtinFS embed.FS

// Builtin loads the example definitions embedded in the binary (the
// default when no definitions directory is given), with defaults applied.
// Each call returns a fresh Set. It panics if they do not load, which a
// test guards against.
func Builtin() *Set {
	s, err := LoadFS(builtinFS, "builtin")
	if err != nil {
		panic("definitions: loading the built-in definitions: " + err.Error())
	}
	return s
}

// LoadAndValidate loads the definitions in dir ([LoadDir]), or the
// built-in examples when dir is "", and validates them against c
// ([Set.Validate]). It returns the problems of both steps at once, as one
// [Problems] sorted by file and line, and then a nil Set; other errors are
// returned as they are.
func LoadAndValidate(dir string, c Catalog) (*Set, error) {
	var set *Set
	var err error
	if dir == "" {
		set, err = LoadFS(builtinFS, "builtin")
	} else {
		set, err = LoadDir(dir)
	}
	var all Problems
	if err != nil {
		if !errors.As(err, &all) {
			return nil, err
		}
	}
	if verr := set.Validate(c); verr != nil {
		var ps Problems
		if !errors.As(verr, &ps) {
			return nil, verr
		}
		all = append(all, ps...)
	}
	if len(all) > 0 {
		sortProblems(all)
		return nil, all
	}
	return set, nil
}

// LoadDir loads every *.yaml and *.yml file directly inside dir (not
// subdirectories), in lexical order; see [LoadFS].
func LoadDir(dir string) (*Set, error) {
	return loadFS(os.DirFS(dir), ".", dir)
}

// LoadFS loads every *.yaml and *.yml file directly inside dir of fsys, in
// lexical order, checks their structure (known fields only, right kinds of
// values, durations and numbers that parse, at most one orderStatuses
// section) and applies defaults ([Set.ApplyDefaults]). Cross-checks need a
// [Catalog] and are done by [Set.Validate].
//
// Structural mistakes are returned all at once as [Problems], with file
// names relative to dir; the Set returned alongside holds everything that
// did load, so that Validate can report the remaining problems too. Other
// errors (unreadable directory, no definition files) return a nil Set.
func LoadFS(fsys fs.FS, dir string) (*Set, error) {
	return loadFS(fsys, dir, dir)
}

// loadFS is LoadFS; shown names dir in errors.
func loadFS(fsys fs.FS, dir, shown string) (*Set, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("loading definitions from %s: %w", shown, err)
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(path.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("loading definitions from %s: no *.yaml or *.yml files", shown)
	}
	sort.Strings(names)
	set := &Set{}
	var probs Problems
	var statusesAt Pos
	for _, name := range names {
		l := &loader{file: name, probs: &probs}
		// Refuse a huge file before reading it (a 50 MB file must not be
		// read whole to be refused).
		if st, err := fs.Stat(fsys, path.Join(dir, name)); err == nil && st.Size() > MaxFileSize {
			l.add(Pos{File: name}, "", "file is larger than %d bytes (%d bytes)", MaxFileSize, st.Size())
			continue
		}
		data, err := readCapped(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("loading definitions from %s: %w", shown, err)
		}
		if len(data) > MaxFileSize {
			l.add(Pos{File: name}, "", "file is larger than %d bytes", MaxFileSize)
			continue
		}
		l.loadFile(data, set, &statusesAt)
	}
	set.ApplyDefaults()
	if len(probs) > 0 {
		sortProblems(probs)
		return set, probs
	}
	return set, nil
}

// readCapped reads at most MaxFileSize+1 bytes of a file (one that grew
// after its Stat is still not read whole).
func readCapped(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxFileSize+1))
}

// loader walks the YAML nodes of one file.
type loader struct {
	file  string
	probs *Problems
}

func (l *loader) pos(n *yaml.Node) Pos { return Pos{File: l.file, Line: n.Line} }

func (l *loader) add(p Pos, path, format string, args ...any) {
	*l.probs = append(*l.probs, Problem{Pos: p, Path: path, Message: fmt.Sprintf(format, args...)})
}

func (l *loader) problem(n *yaml.Node, path, format string, args ...any) {
	l.add(l.pos(n), path, format, args...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a YAML syntax error with its line when the parser gave
// one. yaml.v3 names the line where the enclosing block starts ("line 1:
// did not find expected key" for a bad indent on line 4); the line of the
// problem itself is found by parsing ever longer prefixes of the file
// (see problemLine) and reported, with the block's start when it differs.
func (l *loader) syntax(err error, data []byte) {
	msg := err.Error()
	p := Pos{File: l.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if at := problemLine(data, msg); at > p.Line {
			msg = fmt.Sprintf("%s (in the block that starts at line %d)", msg, p.Line)
			p.Line = at
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	l.add(p, "", "YAML syntax error: %s", msg)
}

// problemLine returns the first line n such that the file's first n lines
// already fail with msg, or 0 when none does (or the file is too long to
// search). The search is a binary search: a prefix that contains the
// problem fails with the same message.
func problemLine(data []byte, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > 100000 {
		return 0
	}
	fails := func(n int) bool {
		prefix := bytes.Join(lines[:n], nil)
		var doc yaml.Node
		err := decode(yaml.NewDecoder(bytes.NewReader(prefix)), &doc)
		if err == nil {
			return false
		}
		m := yamlLine.FindStringSubmatch(err.Error())
		return m != nil && m[2] == msg
	}
	lo, hi := 1, len(lines)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	// The last line of the prefix may be an empty remainder after the
	// final newline: name the last line with content.
	for lo > 1 && len(bytes.TrimSpace(lines[lo-1])) == 0 {
		lo--
	}
	return lo
}

// decode decodes the next document; a panic in the YAML parser becomes an
// error rather than taking the program down.
func decode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: invalid YAML: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (l *loader) loadFile(data []byte, set *Set, statusesAt *Pos) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decode(dec, &doc); err != nil {
		if !errors.Is(err, io.EOF) {
			l.syntax(err, data)
		}
		return
	}
	var extra yaml.Node
	if err := decode(dec, &extra); err == nil {
		l.problem(&extra, "", "a file holds one YAML document; found a second one")
	} else if !errors.Is(err, io.EOF) {
		l.syntax(err, data)
		return
	}
	l.rejectAliases(&doc, 0)
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	if isNull(root) {
		return
	}
	l.each(root, "", []string{"connections", "jobs", "hooks", "orderStatuses", "smtp"}, nil, func(key string, k, v *yaml.Node) {
		switch key {
		case "connections":
			l.seq(v, key, func(i int, item *yaml.Node) {
				if c, ok := l.connection(item, index(key, i)); ok {
					set.Connections = append(set.Connections, c)
				}
			})
		case "jobs":
			l.seq(v, key, func(i int, item *yaml.Node) {
				if j, ok := l.job(item, index(key, i)); ok {
					set.Jobs = append(set.Jobs, j)
				}
			})
		case "hooks":
			l.seq(v, key, func(i int, item *yaml.Node) {
				if h, ok := l.hook(item, index(key, i)); ok {
					set.Hooks = append(set.Hooks, h)
				}
			})
		case "orderStatuses":
			if set.OrderStatuses != nil || statusesAt.File != "" {
				l.problem(k, key, "a second orderStatuses section (the first is at %s:%d); at most one file may have one", statusesAt.File, statusesAt.Line)
				return
			}
			*statusesAt = l.pos(k)
			if m, ok := l.orderStatuses(v, key); ok {
				m.Pos = l.pos(k)
				set.OrderStatuses = m
			}
		case "smtp":
			if set.SMTP != nil {
				l.problem(k, key, "a second smtp section (the first is at %s:%d); at most one file may have one", set.SMTP.Pos.File, set.SMTP.Pos.Line)
				return
			}
			if c, ok := l.smtp(v, key); ok {
				c.Pos = l.pos(k)
				set.SMTP = c
			}
		}
	})
}

// rejectAliases reports every alias (*name): definitions are plain data,
// and expanding aliases could blow up.
func (l *loader) rejectAliases(n *yaml.Node, depth int) {
	if n == nil || depth > 10000 {
		return
	}
	if n.Kind == yaml.AliasNode {
		l.problem(n, "", "YAML aliases (*%s) are not supported; write the value out", n.Value)
		return
	}
	for _, c := range n.Content {
		l.rejectAliases(c, depth+1)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) && (n.Value == "" || n.Value == "~") {
			return "nothing"
		}
		return quote(n.Value)
	default:
		return "an unsupported YAML node"
	}
}

// each walks the mapping n: it reports a node that is not a mapping,
// non-scalar and duplicate keys and keys not in known, and calls fn for the
// others. A null n is an empty mapping. It reports whether n was usable.
//
// When an unknown key looks like a misspelt known one, that field is
// marked bad in src (if not nil), so that validation does not also call it
// missing.
func (l *loader) each(n *yaml.Node, path string, known []string, src *source, fn func(key string, k, v *yaml.Node)) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind != yaml.AliasNode {
			l.problem(n, path, "expected a mapping, got %s", describe(n))
		}
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			if k.Kind != yaml.AliasNode {
				l.problem(k, path, "keys must be plain strings, got %s", describe(k))
			}
			continue
		}
		key := k.Value
		kp := join(path, key)
		if line, dup := seen[key]; dup {
			l.problem(k, kp, "duplicate key (first at line %d)", line)
			continue
		}
		seen[key] = k.Line
		if known != nil && !contains(known, key) {
			hint, best := suggest(key, known)
			l.problem(k, kp, "unknown field %q%s", key, hint)
			if src != nil && best != "" && !src.written(best) {
				src.markBad(best)
			}
			continue
		}
		fn(key, k, v)
	}
	return true
}

// seq walks the list n (null is an empty list).
func (l *loader) seq(n *yaml.Node, path string, fn func(i int, item *yaml.Node)) bool {
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.SequenceNode {
		if n.Kind != yaml.AliasNode {
			l.problem(n, path, "expected a list, got %s", describe(n))
		}
		return false
	}
	for i, item := range n.Content {
		fn(i, item)
	}
	return true
}

// str returns any scalar's text as written ("" for null).
func (l *loader) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		if n.Kind != yaml.AliasNode {
			l.problem(n, path, "expected a string, got %s", describe(n))
		}
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// text returns a scalar's text as written, nil for null.
func (l *loader) text(n *yaml.Node, path string) (*string, bool) {
	s, ok := l.str(n, path)
	if !ok || isNull(n) {
		return nil, ok
	}
	return &s, true
}

func (l *loader) int(n *yaml.Node, path string) (int, bool) {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.Atoi(n.Value); err == nil {
			return v, true
		}
	}
	if n.Kind != yaml.AliasNode {
		l.problem(n, path, "expected an integer, got %s", describe(n))
	}
	return 0, false
}

func (l *loader) float(n *yaml.Node, path string) (float64, bool) {
	if n.Kind == yaml.ScalarNode {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			return v, true
		}
	}
	if n.Kind != yaml.AliasNode {
		l.problem(n, path, "expected a number, got %s", describe(n))
	}
	return 0, false
}

func (l *loader) bool(n *yaml.Node, path string) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	if n.Kind != yaml.AliasNode {
		l.problem(n, path, "expected true or false, got %s", describe(n))
	}
	return false, false
}

func (l *loader) duration(n *yaml.Node, path string) (Duration, bool) {
	if n.Kind == yaml.ScalarNode {
		if d, err := time.ParseDuration(n.Value); err == nil {
			return Duration(d), true
		}
	}
	if n.Kind != yaml.AliasNode {
		l.problem(n, path, "expected a duration such as 30s or 1m30s, got %s", describe(n))
	}
	return 0, false
}

// strList reads a list of scalars.
func (l *loader) strList(n *yaml.Node, path string) ([]string, bool) {
	var out []string
	ok := l.seq(n, path, func(i int, item *yaml.Node) {
		if s, good := l.str(item, index(path, i)); good {
			out = append(out, s)
		}
	})
	return out, ok
}

// strMap reads a mapping of scalars to scalars.
func (l *loader) strMap(n *yaml.Node, path string) (map[string]string, bool) {
	out := map[string]string{}
	ok := l.each(n, path, nil, nil, func(key string, _, v *yaml.Node) {
		if s, good := l.str(v, join(path, key)); good {
			out[key] = s
		}
	})
	if isNull(n) {
		return nil, true
	}
	return out, ok
}

// settings reads a free-form mapping.
func (l *loader) settings(n *yaml.Node, path string) (map[string]any, bool) {
	if isNull(n) {
		return nil, true
	}
	v, ok := l.anyValue(n, path, 0)
	if !ok {
		return nil, false
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		l.problem(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	return m, true
}

// positions records in src where every key below a free-form node was
// written, as dotted paths below prefix ("operations.cancel.path",
// "operations.cancel.outcomes[0].code"), so that checks of free-form
// settings report the right line.
func (l *loader) positions(n *yaml.Node, prefix string, src *source, depth int) {
	if depth > maxSettingsDepth {
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := join(prefix, k.Value)
			src.set(p, l.pos(k))
			l.positions(n.Content[i+1], p, src, depth+1)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := index(prefix, i)
			src.set(p, l.pos(item))
			l.positions(item, p, src, depth+1)
		}
	}
}

// anyValue converts a free-form node: mappings to map[string]any, lists to
// []any, scalars to nil, bool, int64, float64 or string by their YAML tag
// (the text when a number does not fit).
func (l *loader) anyValue(n *yaml.Node, path string, depth int) (any, bool) {
	if depth > maxSettingsDepth {
		l.problem(n, path, "nested more than %d levels deep", maxSettingsDepth)
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		ok := l.each(n, path, nil, nil, func(key string, _, v *yaml.Node) {
			if x, good := l.anyValue(v, join(path, key), depth+1); good {
				m[key] = x
			}
		})
		return m, ok
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		ok := true
		for i, item := range n.Content {
			x, good := l.anyValue(item, index(path, i), depth+1)
			ok = ok && good
			list = append(list, x)
		}
		return list, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			if b, ok := l.bool(n, path); ok {
				return b, true
			}
			return n.Value, true
		case "!!int":
			if v, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
				return v, true
			}
		case "!!float":
			if v, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v, true
			}
		}
		return n.Value, true
	default:
		return nil, false // aliases are reported by rejectAliases
	}
}

var (
	connectionKeys = []string{"name", "type", "preset", "settings", "operations", "secrets", "maxConcurrency", "maintenance", "rateLimit", "labels"}
	jobKeys        = []string{"name", "description", "type", "connection", "processor", "operation", "inputs", "postProcessor",
		"parameters", "schedule", "retry", "timeout", "concurrency", "uniqueBy", "maxErrors",
		"maxWarnings", "steps", "links", "settings", "notify", "push"}
	parameterKeys   = []string{"name", "type", "prompt", "description", "required", "default", "values", "pattern", "min", "max"}
	scheduleKeys    = []string{"cron", "timezone", "misfire"}
	retryKeys       = []string{"maxAttempts", "initial", "max", "multiplier", "jitter", "maxSnoozes"}
	concurrencyKeys = []string{"overlap", "maxRunning"}
	stepKeys        = []string{"name", "processor", "operation", "inputs", "connection", "parameters", "onFailure"}
	pushKeys        = []string{"connection", "processor", "operation", "inputs", "concurrency"}
	orderStatusKeys = []string{"mappings", "cancellableStatuses"}
	mappingKeys     = []string{"erpStatus", "commerceStatus", "allowCancellation"}
)

func (l *loader) connection(n *yaml.Node, path string) (*Connection, bool) {
	c := &Connection{Pos: l.pos(n)}
	c.src.path = path
	c.src.set("", c.Pos)
	ok := l.each(n, path, connectionKeys, &c.src, func(key string, k, v *yaml.Node) {
		c.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "name":
			c.Name, good = l.str(v, fp)
		case "type":
			c.Type, good = l.str(v, fp)
		case "preset":
			c.Preset, good = l.str(v, fp)
		case "settings":
			c.Settings, good = l.settings(v, fp)
			l.positions(v, key, &c.src, 0)
		case "operations":
			c.Operations, good = l.settings(v, fp)
			l.positions(v, key, &c.src, 0)
		case "secrets":
			c.Secrets, good = l.strMap(v, fp)
		case "maintenance":
			c.Maintenance, good = l.maintenance(v, fp)
		case "maxConcurrency":
			c.MaxConcurrency, good = l.int(v, fp)
			if good && c.MaxConcurrency < 0 {
				l.problem(v, fp, "must not be negative, got %d", c.MaxConcurrency)
				good = false
			}
		case "rateLimit":
			c.RateLimit, good = l.float(v, fp)
			if good && (c.RateLimit < 0 || c.RateLimit > MaxRateLimit) {
				l.problem(v, fp, "must be between 0 (no limit) and %d requests per second, got %v", MaxRateLimit, c.RateLimit)
				good = false
			}
		case "labels":
			c.Labels, good = l.strList(v, fp)
			for _, lb := range c.Labels {
				if good && !labelName.MatchString(lb) {
					l.problem(v, fp, "label %q: use letters, digits, '-', '_' or '.', starting with a letter or digit", lb)
					good = false
				}
			}
		}
		if !good {
			c.src.markBad(key)
		}
	})
	return c, ok && !isNull(n)
}

func (l *loader) job(n *yaml.Node, path string) (*Job, bool) {
	j := &Job{Pos: l.pos(n)}
	j.src.path = path
	j.src.set("", j.Pos)
	ok := l.each(n, path, jobKeys, &j.src, func(key string, k, v *yaml.Node) {
		j.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		var s string
		switch key {
		case "name":
			j.Name, good = l.str(v, fp)
		case "description":
			j.Description, good = l.str(v, fp)
		case "type":
			s, good = l.str(v, fp)
			j.Type = JobType(s)
		case "connection":
			j.Connection, good = l.str(v, fp)
		case "processor":
			j.Processor, good = l.str(v, fp)
		case "operation":
			j.Operation, good = l.str(v, fp)
		case "inputs":
			j.Inputs, good = l.strMap(v, fp)
			l.positions(v, key, &j.src, 0)
		case "postProcessor":
			j.PostProcessor, good = l.str(v, fp)
		case "parameters":
			good = l.seq(v, fp, func(i int, item *yaml.Node) {
				if p, ok := l.parameter(item, index(fp, i)); ok {
					j.Parameters = append(j.Parameters, p)
				}
			})
		case "schedule":
			j.Schedule, good = l.schedule(v, fp)
		case "retry":
			good = l.each(v, fp, retryKeys, nil, func(key string, k, v *yaml.Node) {
				sub := "retry." + key
				j.src.set(sub, l.pos(k))
				rp := join(fp, key)
				ok := true
				switch key {
				case "maxAttempts":
					j.Retry.MaxAttempts, ok = l.int(v, rp)
				case "initial":
					j.Retry.Initial, ok = l.duration(v, rp)
				case "max":
					j.Retry.Max, ok = l.duration(v, rp)
				case "multiplier":
					j.Retry.Multiplier, ok = l.float(v, rp)
				case "jitter":
					j.Retry.Jitter, ok = l.float(v, rp)
				case "maxSnoozes":
					j.Retry.MaxSnoozes, ok = l.int(v, rp)
				}
				if !ok {
					j.src.markBad(sub)
				}
			})
		case "timeout":
			j.Timeout, good = l.duration(v, fp)
		case "concurrency":
			good = l.each(v, fp, concurrencyKeys, nil, func(key string, k, v *yaml.Node) {
				sub := "concurrency." + key
				j.src.set(sub, l.pos(k))
				ok := true
				switch key {
				case "overlap":
					j.Concurrency.Overlap, ok = l.str(v, join(fp, key))
				case "maxRunning":
					j.Concurrency.MaxRunning, ok = l.int(v, join(fp, key))
				}
				if !ok {
					j.src.markBad(sub)
				}
			})
		case "uniqueBy":
			j.UniqueBy, good = l.strList(v, fp)
		case "maxErrors":
			j.MaxErrors, good = l.int(v, fp)
		case "maxWarnings":
			j.MaxWarnings, good = l.int(v, fp)
		case "steps":
			good = l.seq(v, fp, func(i int, item *yaml.Node) {
				if st, ok := l.step(item, index(fp, i)); ok {
					j.Steps = append(j.Steps, st)
				}
			})
		case "links":
			good = l.seq(v, fp, func(i int, item *yaml.Node) {
				if lk, ok := l.link(item, index(fp, i)); ok {
					j.Links = append(j.Links, lk)
				}
			})
		case "settings":
			j.Settings, good = l.settings(v, fp)
		case "notify":
			j.Notify, good = l.notify(k, v, fp)
		case "push":
			j.Push, good = l.push(v, fp)
		}
		if !good {
			j.src.markBad(key)
		}
	})
	return j, ok && !isNull(n)
}

func (l *loader) parameter(n *yaml.Node, path string) (Parameter, bool) {
	p := Parameter{Pos: l.pos(n)}
	p.src.path = path
	p.src.set("", p.Pos)
	ok := l.each(n, path, parameterKeys, &p.src, func(key string, k, v *yaml.Node) {
		p.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		var s string
		switch key {
		case "name":
			p.Name, good = l.str(v, fp)
		case "type":
			s, good = l.str(v, fp)
			p.Type = ParamType(s)
		case "prompt":
			p.Prompt, good = l.str(v, fp)
		case "description":
			p.Description, good = l.str(v, fp)
		case "required":
			p.Required, good = l.bool(v, fp)
		case "default":
			p.Default, good = l.text(v, fp)
		case "values":
			p.Values, good = l.strList(v, fp)
		case "pattern":
			p.Pattern, good = l.str(v, fp)
		case "min":
			p.Min, good = l.text(v, fp)
		case "max":
			p.Max, good = l.text(v, fp)
		}
		if !good {
			p.src.markBad(key)
		}
	})
	return p, ok && !isNull(n)
}

func (l *loader) schedule(n *yaml.Node, path string) (*Schedule, bool) {
	if isNull(n) {
		return nil, true
	}
	s := &Schedule{Pos: l.pos(n)}
	s.src.path = path
	s.src.set("", s.Pos)
	ok := l.each(n, path, scheduleKeys, &s.src, func(key string, k, v *yaml.Node) {
		s.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "cron":
			s.Cron, good = l.str(v, fp)
		case "timezone":
			s.Timezone, good = l.str(v, fp)
		case "misfire":
			s.Misfire, good = l.str(v, fp)
		}
		if !good {
			s.src.markBad(key)
		}
	})
	if !ok {
		return nil, false
	}
	return s, true
}

func (l *loader) step(n *yaml.Node, path string) (Step, bool) {
	st := Step{Pos: l.pos(n)}
	st.src.path = path
	st.src.set("", st.Pos)
	ok := l.each(n, path, stepKeys, &st.src, func(key string, k, v *yaml.Node) {
		st.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "name":
			st.Name, good = l.str(v, fp)
		case "processor":
			st.Processor, good = l.str(v, fp)
		case "operation":
			st.Operation, good = l.str(v, fp)
		case "inputs":
			st.Inputs, good = l.strMap(v, fp)
			l.positions(v, key, &st.src, 0)
		case "connection":
			st.Connection, good = l.str(v, fp)
		case "parameters":
			st.Parameters, good = l.strMap(v, fp)
		case "onFailure":
			st.OnFailure, good = l.str(v, fp)
		}
		if !good {
			st.src.markBad(key)
		}
	})
	return st, ok && !isNull(n)
}

func (l *loader) push(n *yaml.Node, path string) (*Push, bool) {
	if isNull(n) {
		return nil, true
	}
	p := &Push{Pos: l.pos(n)}
	p.src.path = path
	p.src.set("", p.Pos)
	ok := l.each(n, path, pushKeys, &p.src, func(key string, k, v *yaml.Node) {
		p.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "connection":
			p.Connection, good = l.str(v, fp)
		case "processor":
			p.Processor, good = l.str(v, fp)
		case "operation":
			p.Operation, good = l.str(v, fp)
		case "inputs":
			p.Inputs, good = l.strMap(v, fp)
			l.positions(v, key, &p.src, 0)
		case "concurrency":
			p.Concurrency, good = l.int(v, fp)
		}
		if !good {
			p.src.markBad(key)
		}
	})
	return p, ok
}

func (l *loader) orderStatuses(n *yaml.Node, path string) (*OrderStatusMap, bool) {
	m := &OrderStatusMap{Pos: l.pos(n)}
	m.src.path = path
	m.src.set("", m.Pos)
	ok := l.each(n, path, orderStatusKeys, nil, func(key string, k, v *yaml.Node) {
		m.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "mappings":
			good = l.seq(v, fp, func(i int, item *yaml.Node) {
				sm := StatusMapping{Pos: l.pos(item)}
				ip := index(fp, i)
				sm.src.path = ip
				sm.src.set("", sm.Pos)
				if !l.each(item, ip, mappingKeys, &sm.src, func(key string, k, v *yaml.Node) {
					sm.src.set(key, l.pos(k))
					var ok bool
					switch key {
					case "erpStatus":
						sm.ERPStatus, ok = l.str(v, join(ip, key))
					case "commerceStatus":
						sm.CommerceStatus, ok = l.str(v, join(ip, key))
					case "allowCancellation":
						sm.AllowCancellation, ok = l.bool(v, join(ip, key))
					}
					if !ok {
						sm.src.markBad(key)
					}
				}) || isNull(item) {
					return
				}
				m.Mappings = append(m.Mappings, sm)
			})
		case "cancellableStatuses":
			m.CancellableStatuses, good = l.strList(v, fp)
			m.cancellableLines = nil
			if v.Kind == yaml.SequenceNode {
				for _, item := range v.Content {
					m.cancellableLines = append(m.cancellableLines, item.Line)
				}
			}
		}
		if !good {
			m.src.markBad(key)
		}
	})
	return m, ok
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "x"?)` and x for the known word closest
// to s, or "" when none is close.
func suggest(s string, known []string) (hint, best string) {
	bestDist := 3
	for _, k := range known {
		if strings.EqualFold(k, s) {
			best = k
			break
		}
		if d := editDistance(strings.ToLower(s), strings.ToLower(k)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return "", ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best), best
}

// editDistance is the Levenshtein distance between a and b (bytes), capped
// for long inputs.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 100
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
