package definitions

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Link conditions: which final outcomes of a run start the linked job.
const (
	LinkOnSuccess = "success" // succeeded or succeeded_with_warnings (default)
	LinkOnFailure = "failure" // failed
	LinkOnAlways  = "always"  // any of the above; a cancelled run starts no linked job
)

// Link starts another job when a run of this job finishes:
//
//	links:
//	  - job: OrderStatusSync
//	    on: success            # success (default) | failure | always
//	    parameters:
//	      OrderNumber: "${param.OrderNumber}"   # the source run's value, as text
//	      Mode: fixed                          # a fixed value, parsed under the target's type
//	    preview: false         # start it from preview runs too (as a preview)
//
// The linked run is enqueued in the same transaction that records the
// source run's final status (trigger "link", parent_run_id = the source
// run), so it is never lost nor started twice. Preview runs start linked
// jobs only when the link says preview: true, and then as preview runs.
type Link struct {
	// Job names the job to start.
	Job string
	// On is LinkOnSuccess, LinkOnFailure or LinkOnAlways.
	On string
	// Parameters map the target's parameter names to text: fixed values,
	// or templates where ${param.NAME} stands for the source run's value of
	// its parameter NAME (as text). A value that is exactly one
	// ${param.NAME} of an unset optional parameter leaves the target's
	// parameter unset (its default applies).
	Parameters map[string]string
	// Preview: also start the job from a preview run (as a preview run).
	Preview bool
	Pos     Pos

	src source
}

// Matches reports whether a run that ended in status (a final run status:
// "succeeded", "succeeded_with_warnings", "failed", "cancelled") starts
// the link.
func (l Link) Matches(status string) bool {
	success := status == "succeeded" || status == "succeeded_with_warnings"
	failure := status == "failed"
	switch l.On {
	case LinkOnFailure:
		return failure
	case LinkOnAlways:
		return success || failure
	default:
		return success
	}
}

var paramRef = regexp.MustCompile(`\$\{param\.([^}]*)\}`)

// Expand returns the link's parameters as text for the target job, with
// every ${param.NAME} replaced by source[NAME] (the source run's values as
// [Values.Text] gives them).
func (l Link) Expand(source map[string]string) map[string]string {
	out := make(map[string]string, len(l.Parameters))
	for k, tmpl := range l.Parameters {
		if m := paramRef.FindStringSubmatch(tmpl); m != nil && m[0] == tmpl {
			if v, ok := source[m[1]]; ok {
				out[k] = v
			}
			continue
		}
		out[k] = paramRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
			return source[paramRef.FindStringSubmatch(ref)[1]]
		})
	}
	return out
}

// RunSteps returns the steps a run of j executes: its Steps, or for a
// one-step job the single step (Processor, Connection) without a name.
func (j *Job) RunSteps() []Step {
	if len(j.Steps) > 0 {
		out := make([]Step, len(j.Steps))
		for i, st := range j.Steps {
			if st.Connection == "" {
				st.Connection = j.Connection
			}
			out[i] = st
		}
		return out
	}
	return []Step{{Processor: j.Processor, Operation: j.Operation, Inputs: j.Inputs, Connection: j.Connection, OnFailure: OnFailureStop}}
}

// StepValues returns the parameters a step sees: the run's values, with
// the step's fixed parameters of the same name as a job parameter
// overriding them (parsed under that parameter's type; validation checked
// they parse). Step parameters the job does not declare reach the
// processor only as text, in processors.Run.StepParams.
func (j *Job) StepValues(run Values, st Step) Values {
	if len(st.Parameters) == 0 {
		return run
	}
	var out Values
	for name, text := range st.Parameters {
		p := j.Param(name)
		if p == nil {
			continue
		}
		v, err := p.Parse(text)
		if err != nil {
			continue
		}
		if out == nil {
			out = make(Values, len(run)+1)
			for k, x := range run {
				out[k] = x
			}
		}
		out[name] = v
	}
	if out == nil {
		return run
	}
	return out
}

var linkKeys = []string{"job", "on", "parameters", "preview"}

func (l *loader) link(n *yaml.Node, path string) (Link, bool) {
	lk := Link{Pos: l.pos(n)}
	lk.src.path = path
	lk.src.set("", lk.Pos)
	ok := l.each(n, path, linkKeys, &lk.src, func(key string, k, v *yaml.Node) {
		lk.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "job":
			lk.Job, good = l.str(v, fp)
		case "on":
			lk.On, good = l.str(v, fp)
		case "preview":
			lk.Preview, good = l.bool(v, fp)
		case "parameters":
			lk.Parameters = map[string]string{}
			good = l.each(v, fp, nil, nil, func(name string, pk, pv *yaml.Node) {
				lk.src.set("parameters."+name, l.pos(pk))
				if s, ok := l.str(pv, join(fp, name)); ok {
					lk.Parameters[name] = s
				} else {
					lk.src.markBad("parameters." + name)
				}
			})
		}
		if !good {
			lk.src.markBad(key)
		}
	})
	return lk, ok && !isNull(n)
}

func (j *Job) applyLinkDefaults() {
	for i := range j.Links {
		if j.Links[i].On == "" {
			j.Links[i].On = LinkOnSuccess
		}
	}
}

func linksForVersion(links []Link) []Link {
	if links == nil {
		return nil
	}
	out := make([]Link, len(links))
	for i, l := range links {
		l.Pos, l.src = Pos{}, source{}
		out[i] = l
	}
	return out
}

// stepParams checks a step's fixed parameters: those named like a job
// parameter must parse under its type.
func (v *validator) stepParams(j *Job, st Step, path string) {
	names := make([]string, 0, len(st.Parameters))
	for n := range st.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		p := j.Param(name)
		if p == nil || !knownParamType(p.Type) {
			continue
		}
		if _, err := p.Parse(st.Parameters[name]); err != nil {
			v.add(st.src.at("parameters", st.Pos), join(join(path, "parameters"), name),
				"value %q does not fit job parameter %s: %s", st.Parameters[name], name, asFieldError(name, err).Message)
		}
	}
}

// links checks every job's links against the whole set: target jobs exist,
// target parameters are declared and fixed values parse, ${param.X} names a
// parameter of the source job, required target parameters are given, and
// links form no cycle.
func (v *validator) links(s *Set) {
	byName := map[string]*Job{}
	for _, j := range s.Jobs {
		if _, dup := byName[j.Name]; !dup && j.Name != "" {
			byName[j.Name] = j
		}
	}
	known := make([]string, 0, len(byName))
	for n := range byName {
		known = append(known, n)
	}
	sort.Strings(known)
	for ji, j := range s.Jobs {
		jp := pathOr(j.src.path, "jobs", ji)
		for i, lk := range j.Links {
			lp := pathOr(lk.src.path, join(jp, "links"), i)
			at := func(key string) Pos { return lk.src.at(key, lk.Pos) }
			switch lk.On {
			case "", LinkOnSuccess, LinkOnFailure, LinkOnAlways:
			default:
				if !lk.src.bad["on"] {
					v.add(at("on"), join(lp, "on"), "unknown link condition %q (want success, failure or always)", lk.On)
				}
			}
			if lk.src.bad["job"] {
				continue
			}
			if lk.Job == "" {
				v.add(at("job"), join(lp, "job"), "required")
				continue
			}
			target, ok := byName[lk.Job]
			if !ok {
				v.add(at("job"), join(lp, "job"), "unknown job %q%s", lk.Job, hint(lk.Job, known))
				continue
			}
			names := make([]string, 0, len(lk.Parameters))
			for n := range lk.Parameters {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, name := range names {
				tmpl := lk.Parameters[name]
				pp := join(join(lp, "parameters"), name)
				pos := lk.src.at("parameters."+name, at("parameters"))
				tp := target.Param(name)
				if tp == nil {
					v.add(pos, pp, "job %s has no parameter %q%s", target.Name, name, hint(name, target.paramNames()))
					continue
				}
				refs := paramRef.FindAllStringSubmatch(tmpl, -1)
				bad := false
				for _, m := range refs {
					sp := j.Param(m[1])
					if sp == nil {
						v.add(pos, pp, "${param.%s}: job %s has no parameter %q%s", m[1], j.Name, m[1], hint(m[1], j.paramNames()))
						bad = true
						continue
					}
					if len(refs) == 1 && m[0] == tmpl && !typesCompatible(sp, tp) {
						v.add(pos, pp, "${param.%s} is a %s parameter; %s's %s is %s and may not accept its values", m[1], sp.Type, target.Name, name, tp.Type)
						bad = true
					}
				}
				if bad || len(refs) > 0 || !knownParamType(tp.Type) {
					continue
				}
				if _, err := tp.Parse(tmpl); err != nil {
					v.add(pos, pp, "value %q does not fit %s's parameter %s: %s", tmpl, target.Name, name, asFieldError(name, err).Message)
				}
			}
			for _, tp := range target.Parameters {
				if _, given := lk.Parameters[tp.Name]; tp.Required && !given {
					v.add(at("job"), join(lp, "parameters"), "job %s requires parameter %s: map it (e.g. %s: \"${param.%s}\")", target.Name, tp.Name, tp.Name, tp.Name)
				}
			}
		}
	}
	v.linkCycles(s, byName)
}

// typesCompatible reports whether every value of parameter src parses
// under dst's type.
func typesCompatible(src, dst *Parameter) bool {
	switch {
	case dst.Type == TypeString && dst.Pattern == "" && dst.Min == nil && dst.Max == nil:
		return true
	case src.Type == dst.Type && src.Type != TypeEnum:
		return true
	case src.Type == TypeInt && dst.Type == TypeDecimal:
		return true
	case src.Type == TypeEnum && (dst.Type == TypeEnum || dst.Type == TypeString):
		if dst.Type == TypeString {
			return true
		}
		for _, val := range src.Values {
			if !contains(dst.Values, val) {
				return false
			}
		}
		return true
	}
	return false
}

// linkCycles reports each cycle of links once, spelled out
// ("A → B → A"), at the link that closes it.
func (v *validator) linkCycles(s *Set, byName map[string]*Job) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	seen := map[string]bool{}
	var visit func(j *Job)
	visit = func(j *Job) {
		color[j.Name] = grey
		stack = append(stack, j.Name)
		for i, lk := range j.Links {
			t, ok := byName[lk.Job]
			if !ok {
				continue
			}
			switch color[t.Name] {
			case white:
				visit(t)
			case grey:
				start := 0
				for k, n := range stack {
					if n == t.Name {
						start = k
					}
				}
				cycle := append(append([]string{}, stack[start:]...), t.Name)
				key := canonicalCycle(cycle)
				if seen[key] {
					continue
				}
				seen[key] = true
				jp := j.src.path
				if jp == "" {
					jp = "jobs"
				}
				lp := pathOr(lk.src.path, join(jp, "links"), i)
				v.add(lk.src.at("job", lk.Pos), join(lp, "job"), "links form a cycle: %s", strings.Join(cycle, " → "))
			}
		}
		stack = stack[:len(stack)-1]
		color[j.Name] = black
	}
	for _, j := range s.Jobs {
		if byName[j.Name] == j && color[j.Name] == white {
			visit(j)
		}
	}
}

// canonicalCycle names a cycle independently of where it was entered.
func canonicalCycle(c []string) string {
	ring := c[:len(c)-1]
	best := 0
	for i := range ring {
		if ring[i] < ring[best] {
			best = i
		}
	}
	rot := append(append([]string{}, ring[best:]...), ring[:best]...)
	return fmt.Sprint(rot)
}
