package definitions

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones validate the same on hosts without zoneinfo

	"github.com/jobrunner/jobrunner/cronspec"
)

// Defaults applied by [Set.ApplyDefaults] to fields that were not written.
const (
	DefaultMaxAttempts = 3
	DefaultInitial     = Duration(time.Second)
	DefaultMaxBackoff  = Duration(5 * time.Minute)
	DefaultMultiplier  = 2.0
	DefaultJitter      = 0.2
	DefaultMaxSnoozes  = 20
	DefaultTimeout     = Duration(5 * time.Minute)
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,99}$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// MaxRateLimit is the highest connection rateLimit (requests per second)
// a definition may set: every request reserves its slot with one write to
// one database row, so far higher rates would make that row the
// bottleneck; use maxConcurrency to bound a faster ERP.
const MaxRateLimit = 1000

const nameRule = "want a letter, then letters, digits, _ . or -, at most 100 characters"

// Job returns the job of that name (the first, if there are duplicates).
func (s *Set) Job(name string) (*Job, bool) {
	for _, j := range s.Jobs {
		if j.Name == name {
			return j, true
		}
	}
	return nil, false
}

// Connection returns the connection of that name (the first, if there are
// duplicates).
func (s *Set) Connection(name string) (*Connection, bool) {
	for _, c := range s.Connections {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// ApplyDefaults fills in the defaults of fields that were not written and
// recomputes every job's Version. Loading calls it; call it yourself on a
// Set built in code, before Validate. Defaults: Type execution; retry
// MaxAttempts 3, Initial 1s, Max 5m, Multiplier 2, Jitter 0.2, MaxSnoozes
// 20; Timeout 5m; MaxErrors and MaxWarnings -1 (no limit); Overlap "forbid"
// for scheduled jobs and "allow" for others; Misfire "skip"; a step's
// OnFailure "stop". For a job built in code, "not written" means zero (so
// MaxErrors 0 becomes -1). It is idempotent.
func (s *Set) ApplyDefaults() {
	for _, j := range s.Jobs {
		j.applyDefaults()
	}
	for _, j := range s.Jobs {
		j.Version = s.version(j)
	}
}

func (j *Job) applyDefaults() {
	// absent reports whether a field gets its default.
	absent := func(key string, zero bool) bool {
		if j.src.bad[key] {
			return true
		}
		if j.src.loaded() {
			return !j.src.written(key)
		}
		return zero
	}
	if j.Type == "" {
		j.Type = JobTypeExecution
	}
	r := &j.Retry
	if absent("retry.maxAttempts", r.MaxAttempts == 0) {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if absent("retry.initial", r.Initial == 0) {
		r.Initial = DefaultInitial
	}
	if absent("retry.max", r.Max == 0) {
		r.Max = DefaultMaxBackoff
	}
	if absent("retry.multiplier", r.Multiplier == 0) {
		r.Multiplier = DefaultMultiplier
	}
	if absent("retry.jitter", r.Jitter == 0) {
		r.Jitter = DefaultJitter
	}
	if absent("retry.maxSnoozes", r.MaxSnoozes == 0) {
		r.MaxSnoozes = DefaultMaxSnoozes
	}
	if absent("timeout", j.Timeout == 0) {
		j.Timeout = DefaultTimeout
	}
	if absent("maxErrors", j.MaxErrors == 0) {
		j.MaxErrors = -1
	}
	if absent("maxWarnings", j.MaxWarnings == 0) {
		j.MaxWarnings = -1
	}
	if j.Concurrency.Overlap == "" {
		if j.Schedule != nil {
			j.Concurrency.Overlap = OverlapForbid
		} else {
			j.Concurrency.Overlap = OverlapAllow
		}
	}
	if j.Schedule != nil && j.Schedule.Misfire == "" {
		j.Schedule.Misfire = MisfireSkip
	}
	for i := range j.Steps {
		if j.Steps[i].OnFailure == "" {
			j.Steps[i].OnFailure = OnFailureStop
		}
	}
	j.applyLinkDefaults()
}

// version hashes the job's content (without positions and version) and the
// connections it uses: the first 16 hex digits of a SHA-256.
func (s *Set) version(j *Job) string {
	c := *j
	c.Pos, c.Version, c.src = Pos{}, "", source{}
	c.Parameters = make([]Parameter, len(j.Parameters))
	for i, p := range j.Parameters {
		p.Pos, p.src = Pos{}, source{}
		c.Parameters[i] = p
	}
	c.Steps = make([]Step, len(j.Steps))
	names := []string{j.Connection}
	for i, st := range j.Steps {
		st.Pos, st.src = Pos{}, source{}
		c.Steps[i] = st
		names = append(names, st.Connection)
	}
	if j.Schedule != nil {
		sc := *j.Schedule
		sc.Pos, sc.src = Pos{}, source{}
		c.Schedule = &sc
	}
	c.Links = linksForVersion(j.Links)
	sort.Strings(names)
	type conn struct {
		Name, Type, Preset   string
		Settings, Operations map[string]any
	}
	var conns []conn
	for i, name := range names {
		if name == "" || (i > 0 && names[i-1] == name) {
			continue
		}
		if cn, ok := s.Connection(name); ok {
			conns = append(conns, conn{cn.Name, cn.Type, cn.Preset, cn.Settings, cn.Operations})
		}
	}
	data, err := json.Marshal(struct {
		Job         Job
		Connections []conn
	}{c, conns})
	if err != nil { // settings hold only JSON-encodable values; be safe anyway
		data = fmt.Appendf(nil, "%#v %#v", c, conns)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

// validator collects problems.
type validator struct {
	c     Catalog
	probs Problems
	conns map[string]*Connection
}

func (v *validator) add(p Pos, path, format string, args ...any) {
	v.probs = append(v.probs, Problem{Pos: p, Path: path, Message: fmt.Sprintf(format, args...)})
}

func at(p Pos) string { return p.File + ":" + strconv.Itoa(p.Line) }

func pathOr(p, list string, i int) string {
	if p != "" {
		return p
	}
	return index(list, i)
}

// Validate cross-checks the Set against what the program can run and
// returns every problem at once as [Problems], or nil. It checks names
// (syntax, duplicates), references (connections, processors and whether
// they support the connection's type, also for post-processors and steps),
// schedules (cron spec, time zone, misfire), parameters (types, enum
// values, patterns, min/max, defaults), retry, timeout, concurrency,
// uniqueBy and the order status mapping. A nil Catalog skips the checks
// that need one (processors and connection types). Validate does not apply
// defaults: a Set built in code should get [Set.ApplyDefaults] first.
func (s *Set) Validate(c Catalog) error {
	v := &validator{c: c, conns: map[string]*Connection{}}
	for i, cn := range s.Connections {
		v.connection(cn, pathOr(cn.src.path, "connections", i))
	}
	first := map[string]Pos{}
	for i, j := range s.Jobs {
		path := pathOr(j.src.path, "jobs", i)
		if v.name(j.src, j.Pos, path, j.Name) {
			if p, dup := first[j.Name]; dup {
				v.add(j.src.at("name", j.Pos), join(path, "name"), "duplicate job name %q (first defined at %s)", j.Name, at(p))
			} else {
				first[j.Name] = j.src.at("name", j.Pos)
			}
		}
		v.job(j, path)
		if j.Notify != nil {
			v.notify(j.Notify, path, s.SMTP)
		}
	}
	if s.OrderStatuses != nil {
		v.orderStatuses(s.OrderStatuses)
	}
	if s.SMTP != nil {
		v.smtp(s.SMTP)
	}
	v.hooks(s)
	v.links(s)
	if len(v.probs) == 0 {
		return nil
	}
	sortProblems(v.probs)
	return v.probs
}

// name checks an object's name field; it reports whether the name is
// usable (non-empty and valid).
func (v *validator) name(src source, pos Pos, path, name string) bool {
	if src.bad["name"] {
		return false
	}
	p := src.at("name", pos)
	switch {
	case name == "":
		v.add(p, join(path, "name"), "required")
	case !namePattern.MatchString(name):
		v.add(p, join(path, "name"), "invalid name %q (%s)", name, nameRule)
	default:
		return true
	}
	return false
}

// required reports a missing (not badly written) field.
func (v *validator) required(src source, pos Pos, path, key, value string) bool {
	if value != "" || src.bad[key] {
		return false
	}
	v.add(src.at(key, pos), join(path, key), "required")
	return true
}

func (v *validator) connection(c *Connection, path string) {
	if v.name(c.src, c.Pos, path, c.Name) {
		if prev, dup := v.conns[c.Name]; dup {
			v.add(c.src.at("name", c.Pos), join(path, "name"), "duplicate connection name %q (first defined at %s)", c.Name, at(prev.src.at("name", prev.Pos)))
		} else {
			v.conns[c.Name] = c
		}
	}
	v.maintenance(c, path)
	if !v.required(c.src, c.Pos, path, "type", c.Type) && !c.src.bad["type"] && v.c != nil && !v.c.HasConnectionType(c.Type) {
		v.add(c.src.at("type", c.Pos), join(path, "type"), "unknown connection type %q", c.Type)
	}
	if ch, ok := v.c.(ConnectionChecker); ok && c.Type != "" && !c.src.bad["type"] && v.c.HasConnectionType(c.Type) {
		for _, fp := range ch.CheckConnection(c) {
			v.add(fieldAt(c.src, fp.Key, c.Pos), join(path, fp.Key), "%s", fp.Message)
		}
	}
	names := make([]string, 0, len(c.Secrets))
	for name := range c.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if env := c.Secrets[name]; !envName.MatchString(env) {
			v.add(c.src.at("secrets", c.Pos), join(path, "secrets."+name), "invalid environment variable name %q (want letters, digits and _, not starting with a digit)", env)
		}
	}
}

// connRef checks a reference to a connection and returns it (nil when
// unknown or absent).
func (v *validator) connRef(src source, pos Pos, path, key, name string, required bool) *Connection {
	if src.bad[key] {
		return nil
	}
	if name == "" {
		if required {
			v.add(src.at(key, pos), join(path, key), "required")
		}
		return nil
	}
	c, ok := v.conns[name]
	if !ok {
		known := make([]string, 0, len(v.conns))
		for n := range v.conns {
			known = append(known, n)
		}
		sort.Strings(known)
		v.add(src.at(key, pos), join(path, key), "unknown connection %q%s", name, hint(name, known))
		return nil
	}
	return c
}

// procRef checks a reference to a processor that runs on conn.
func (v *validator) procRef(src source, pos Pos, path, key, name string, conn *Connection, required bool) {
	if src.bad[key] {
		return
	}
	if name == "" {
		if required {
			v.add(src.at(key, pos), join(path, key), "required")
		}
		return
	}
	if v.c == nil {
		return
	}
	if !v.c.HasProcessor(name) {
		v.add(src.at(key, pos), join(path, key), "unknown processor %q", name)
		return
	}
	if conn != nil && conn.Type != "" && v.c.HasConnectionType(conn.Type) && !v.c.Supports(name, conn.Type) {
		v.add(src.at(key, pos), join(path, key), "processor %q does not support connection type %q (connection %q)", name, conn.Type, conn.Name)
	}
}

// fieldAt returns where the dotted key (or, when it was not written, the
// nearest enclosing key) was written, else fallback.
func fieldAt(src source, key string, fallback Pos) Pos {
	for key != "" {
		if p, ok := src.fields[key]; ok {
			return p
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return fallback
}

// use lets the connection type check how a job or step uses its
// connection (operation, inputs), when the Catalog can.
func (v *validator) use(j *Job, use Step, src source, pos Pos, path string, conn *Connection) {
	ch, ok := v.c.(ConnectionChecker)
	if !ok || conn == nil || src.bad["processor"] || src.bad["operation"] || src.bad["inputs"] {
		return
	}
	if use.Processor != "" && !v.c.Supports(use.Processor, conn.Type) {
		return // already reported
	}
	for _, fp := range ch.CheckUse(j, use, conn) {
		v.add(fieldAt(src, fp.Key, pos), join(path, fp.Key), "%s", fp.Message)
	}
}

func (v *validator) job(j *Job, path string) {
	if j.Type != "" && j.Type != JobTypeExecution && !j.src.bad["type"] {
		v.add(j.src.at("type", j.Pos), join(path, "type"), "unknown job type %q (want %s)", string(j.Type), JobTypeExecution)
	}
	params := v.params(j, path)

	var conn *Connection
	if len(j.Steps) == 0 {
		conn = v.connRef(j.src, j.Pos, path, "connection", j.Connection, true)
		v.procRef(j.src, j.Pos, path, "processor", j.Processor, conn, true)
		v.use(j, Step{Processor: j.Processor, Operation: j.Operation, Inputs: j.Inputs}, j.src, j.Pos, path, conn)
	} else {
		if j.Operation != "" || len(j.Inputs) > 0 {
			key := "operation"
			if j.Operation == "" {
				key = "inputs"
			}
			v.add(j.src.at(key, j.Pos), join(path, key), "a job with steps names its operations in the steps; remove %s", key)
		}
		conn = v.connRef(j.src, j.Pos, path, "connection", j.Connection, false)
		if j.Processor != "" {
			v.add(j.src.at("processor", j.Pos), join(path, "processor"), "a job with steps names its processors in the steps; remove processor")
		}
		v.steps(j, path, conn)
	}
	if j.PostProcessor != "" {
		v.procRef(j.src, j.Pos, path, "postProcessor", j.PostProcessor, conn, false)
	}
	if j.Push != nil {
		pp := j.Push.src.path
		if pp == "" {
			pp = join(path, "push")
		}
		v.push(j, j.Push, pp)
	}
	if j.Schedule != nil {
		sp := j.Schedule.src.path
		if sp == "" {
			sp = join(path, "schedule")
		}
		v.schedule(j.Schedule, sp)
	}

	// Retry, timeout, limits: a badly written field was reported by Load.
	check := func(key string, bad bool, format string, args ...any) {
		if bad && !j.src.bad[key] {
			v.add(j.src.at(key, j.src.at(strings.Split(key, ".")[0], j.Pos)), join(path, key), format, args...)
		}
	}
	r := j.Retry
	check("retry.maxAttempts", r.MaxAttempts < 1 || r.MaxAttempts > 100, "must be between 1 and 100, got %d", r.MaxAttempts)
	check("retry.initial", r.Initial < 0, "must not be negative, got %s", r.Initial.D())
	check("retry.max", r.Max < r.Initial, "must not be less than initial (%s), got %s", r.Initial.D(), r.Max.D())
	check("retry.multiplier", r.Multiplier < 1, "must be at least 1, got %v", r.Multiplier)
	check("retry.jitter", r.Jitter < 0 || r.Jitter > 1, "must be between 0 and 1, got %v", r.Jitter)
	check("retry.maxSnoozes", r.MaxSnoozes < 0, "must not be negative, got %d", r.MaxSnoozes)
	check("timeout", j.Timeout <= 0, "must be positive, got %s", j.Timeout.D())
	switch j.Concurrency.Overlap {
	case OverlapAllow, OverlapForbid, OverlapQueue:
	default:
		check("concurrency.overlap", true, "unknown overlap policy %q (want allow, forbid or queue)", j.Concurrency.Overlap)
	}
	check("concurrency.maxRunning", j.Concurrency.MaxRunning < 0, "must not be negative, got %d", j.Concurrency.MaxRunning)
	check("maxErrors", j.MaxErrors < -1, "must be -1 (no limit) or more, got %d", j.MaxErrors)
	check("maxWarnings", j.MaxWarnings < -1, "must be -1 (no limit) or more, got %d", j.MaxWarnings)

	seen := map[string]bool{}
	for i, name := range j.UniqueBy {
		p := j.src.at("uniqueBy", j.Pos)
		switch {
		case seen[name]:
			v.add(p, index(join(path, "uniqueBy"), i), "%q is listed twice", name)
		case params[name] == nil:
			v.add(p, index(join(path, "uniqueBy"), i), "unknown parameter %q%s", name, hint(name, j.paramNames()))
		}
		seen[name] = true
	}
}

func (v *validator) steps(j *Job, path string, jobConn *Connection) {
	first := map[string]int{}
	for i, st := range j.Steps {
		sp := pathOr(st.src.path, join(path, "steps"), i)
		if v.name(st.src, st.Pos, sp, st.Name) {
			if line, dup := first[st.Name]; dup {
				v.add(st.src.at("name", st.Pos), join(sp, "name"), "duplicate step name %q (first at line %d)", st.Name, line)
			} else {
				first[st.Name] = st.src.at("name", st.Pos).Line
			}
		}
		conn := jobConn
		if st.Connection != "" || st.src.bad["connection"] {
			conn = v.connRef(st.src, st.Pos, sp, "connection", st.Connection, true)
		} else if j.Connection == "" && !j.src.bad["connection"] {
			v.add(st.Pos, join(sp, "connection"), "required (neither the step nor the job names a connection)")
		}
		v.procRef(st.src, st.Pos, sp, "processor", st.Processor, conn, true)
		v.use(j, st, st.src, st.Pos, sp, conn)
		v.stepParams(j, st, sp)
		switch st.OnFailure {
		case "", OnFailureStop, OnFailureContinue:
		default:
			if !st.src.bad["onFailure"] {
				v.add(st.src.at("onFailure", st.Pos), join(sp, "onFailure"), "unknown onFailure policy %q (want stop or continue)", st.OnFailure)
			}
		}
	}
}

// push checks a job's push: its connection, its processor (default
// http) and how it uses the connection, against the record's fields.
func (v *validator) push(j *Job, p *Push, path string) {
	if len(j.Steps) > 0 {
		v.add(j.src.at("push", j.Pos), path, "a job with steps cannot push records; push is for a one-step record-by-record job (OrderStatusSync)")
		return
	}
	conn := v.connRef(p.src, p.Pos, path, "connection", p.Connection, true)
	proc := p.Processor
	if proc == "" {
		proc = PushDefaultProcessor
	}
	if !p.src.bad["processor"] {
		v.procRef(p.src, p.Pos, path, "processor", proc, conn, true)
	}
	if v.c != nil && v.c.HasProcessor(proc) {
		v.use(RecordJob(), Step{Processor: proc, Operation: p.Operation, Inputs: p.Inputs}, p.src, p.Pos, path, conn)
	}
	if p.Concurrency < 0 && !p.src.bad["concurrency"] {
		v.add(p.src.at("concurrency", p.Pos), join(path, "concurrency"), "must be 0 (the connection's maxConcurrency) or more, not %d", p.Concurrency)
	} else if p.Concurrency > 256 {
		v.add(p.src.at("concurrency", p.Pos), join(path, "concurrency"), "at most 256 writes in flight, not %d", p.Concurrency)
	}
}

func (v *validator) schedule(s *Schedule, path string) {
	var loc *time.Location
	locOK := true
	if s.Timezone != "" && !s.src.bad["timezone"] {
		p := s.src.at("timezone", s.Pos)
		if s.Timezone == "Local" {
			v.add(p, join(path, "timezone"), "time zone \"Local\" is not allowed: name an IANA zone such as Europe/Amsterdam, or leave it out for UTC")
			locOK = false
		} else if l, err := time.LoadLocation(s.Timezone); err != nil {
			v.add(p, join(path, "timezone"), "unknown time zone %q (want an IANA name such as Europe/Amsterdam)", s.Timezone)
			locOK = false
		} else {
			loc = l
		}
	}
	if !v.required(s.src, s.Pos, path, "cron", s.Cron) && !s.src.bad["cron"] && locOK {
		if _, err := cronspec.Parse(s.Cron, loc); err != nil {
			v.add(s.src.at("cron", s.Pos), join(path, "cron"), "invalid cron spec: %s", strings.TrimPrefix(err.Error(), "cronspec: "))
		}
	}
	switch s.Misfire {
	case "", MisfireSkip, MisfireRunOnce:
	default:
		if !s.src.bad["misfire"] {
			v.add(s.src.at("misfire", s.Pos), join(path, "misfire"), "unknown misfire policy %q (want skip or runOnce)", s.Misfire)
		}
	}
}

var paramTypes = []ParamType{TypeString, TypeInt, TypeDecimal, TypeBool, TypeDate, TypeDateTime, TypeEnum}

func knownParamType(t ParamType) bool {
	for _, k := range paramTypes {
		if t == k {
			return true
		}
	}
	return false
}

// params checks a job's parameters and returns them by name.
func (v *validator) params(j *Job, path string) map[string]*Parameter {
	byName := map[string]*Parameter{}
	for i := range j.Parameters {
		p := &j.Parameters[i]
		pp := pathOr(p.src.path, join(path, "parameters"), i)
		if v.name(p.src, p.Pos, pp, p.Name) {
			if prev, dup := byName[p.Name]; dup {
				v.add(p.src.at("name", p.Pos), join(pp, "name"), "duplicate parameter name %q (first at line %d)", p.Name, prev.src.at("name", prev.Pos).Line)
			} else {
				byName[p.Name] = p
			}
		}
		v.param(p, pp)
	}
	return byName
}

func (v *validator) param(p *Parameter, path string) {
	pos := func(key string) Pos { return p.src.at(key, p.Pos) }
	if p.src.bad["type"] {
		return
	}
	if v.required(p.src, p.Pos, path, "type", string(p.Type)) {
		return
	}
	if !knownParamType(p.Type) {
		names := make([]string, len(paramTypes))
		for i, t := range paramTypes {
			names[i] = string(t)
		}
		v.add(pos("type"), join(path, "type"), "unknown parameter type %q (want %s)", string(p.Type), strings.Join(names, ", "))
		return
	}
	ok := true // the definition is sound enough to parse the default
	if p.Type == TypeEnum {
		if len(p.Values) == 0 && !p.src.bad["values"] {
			v.add(pos("values"), join(path, "values"), "an enum parameter needs values")
			ok = false
		}
		seen := map[string]bool{}
		for i, val := range p.Values {
			if seen[val] {
				v.add(pos("values"), index(join(path, "values"), i), "duplicate value %q", val)
			}
			seen[val] = true
		}
	} else if len(p.Values) > 0 {
		v.add(pos("values"), join(path, "values"), "values apply only to enum parameters")
	}
	if p.Pattern != "" {
		if p.Type != TypeString {
			v.add(pos("pattern"), join(path, "pattern"), "pattern applies only to string parameters")
		} else if _, err := compilePattern(p.Pattern); err != nil {
			v.add(pos("pattern"), join(path, "pattern"), "invalid pattern: %v", err)
			ok = false
		}
	}
	if !v.bounds(p, path) {
		ok = false
	}
	if p.Default == nil {
		return
	}
	if p.Required {
		v.add(pos("default"), join(path, "default"), "required parameters cannot have a default")
		return
	}
	if !ok {
		return
	}
	if _, err := p.Parse(*p.Default); err != nil {
		v.add(pos("default"), join(path, "default"), "invalid default: %s", asFieldError(p.Name, err).Message)
	}
}

// bounds checks min and max; it reports whether they are usable.
func (v *validator) bounds(p *Parameter, path string) bool {
	if p.Min == nil && p.Max == nil {
		return true
	}
	type cmp func(a, b string) int
	var parse func(string) error
	var compare cmp
	switch p.Type {
	case TypeString:
		parse = func(s string) error { _, err := parseLength(s); return err }
		compare = func(a, b string) int {
			x, _ := parseLength(a)
			y, _ := parseLength(b)
			return x - y
		}
	case TypeInt:
		parse = func(s string) error {
			_, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return fmt.Errorf("expected an int64")
			}
			return nil
		}
		compare = func(a, b string) int {
			x, _ := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
			y, _ := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	case TypeDecimal:
		parse = func(s string) error { _, err := parseDecimalText(strings.TrimSpace(s)); return err }
		compare = func(a, b string) int {
			x, _ := parseDecimalText(strings.TrimSpace(a))
			y, _ := parseDecimalText(strings.TrimSpace(b))
			return x.Cmp(y)
		}
	default:
		for _, k := range []string{"min", "max"} {
			if (k == "min" && p.Min != nil) || (k == "max" && p.Max != nil) {
				v.add(p.src.at(k, p.Pos), join(path, k), "%s applies only to int, decimal and string parameters", k)
			}
		}
		return false
	}
	ok := true
	for _, b := range []struct {
		key string
		val *string
	}{{"min", p.Min}, {"max", p.Max}} {
		if b.val == nil {
			continue
		}
		if err := parse(*b.val); err != nil {
			v.add(p.src.at(b.key, p.Pos), join(path, b.key), "invalid %s %q for type %s: %v", b.key, *b.val, p.Type, err)
			ok = false
		}
	}
	if ok && p.Min != nil && p.Max != nil && compare(*p.Min, *p.Max) > 0 {
		v.add(p.src.at("min", p.Pos), join(path, "min"), "min %s is greater than max %s", *p.Min, *p.Max)
		ok = false
	}
	return ok
}

func (v *validator) orderStatuses(m *OrderStatusMap) {
	path := m.src.path
	if path == "" {
		path = "orderStatuses"
	}
	produced := map[string]bool{}
	first := map[string]int{}
	for i, sm := range m.Mappings {
		mp := pathOr(sm.src.path, join(path, "mappings"), i)
		if !v.required(sm.src, sm.Pos, mp, "erpStatus", sm.ERPStatus) && !sm.src.bad["erpStatus"] {
			if line, dup := first[sm.ERPStatus]; dup {
				v.add(sm.src.at("erpStatus", sm.Pos), join(mp, "erpStatus"), "duplicate erpStatus %q (first at line %d)", sm.ERPStatus, line)
			} else {
				first[sm.ERPStatus] = sm.src.at("erpStatus", sm.Pos).Line
			}
		}
		v.required(sm.src, sm.Pos, mp, "commerceStatus", sm.CommerceStatus)
		produced[sm.CommerceStatus] = true
	}
	for i, s := range m.CancellableStatuses {
		p := m.src.at("cancellableStatuses", m.Pos)
		if i < len(m.cancellableLines) {
			p.Line = m.cancellableLines[i]
		}
		if !produced[s] {
			v.add(p, index(join(path, "cancellableStatuses"), i), "status %q is not the commerceStatus of any mapping", s)
		}
	}
}

func hint(s string, known []string) string {
	h, _ := suggest(s, known)
	return h
}

// Hint returns ` (did you mean "X"?)` for the name in known closest to s
// (case-insensitive, at most two edits away), or "": the suggestion every
// definitions message makes, for checkers of connection types to make too.
func Hint(s string, known []string) string { return hint(s, known) }
