package processors

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jobrunner/jobrunner/definitions"
)

// Checker checks, at validation time, what a connection type makes of its
// connections (preset, settings, operations) and how jobs use them
// (operation, inputs). Register one per connection type with
// [Registry.SetChecker]; the Registry then implements
// definitions.ConnectionChecker for `jobrunner definitions validate`.
type Checker interface {
	// CheckConnection checks one connection of the checker's type.
	CheckConnection(c *definitions.Connection) []definitions.FieldProblem
	// CheckUse checks one job's (or step's) use of such a connection.
	CheckUse(j *definitions.Job, use definitions.Step, c *definitions.Connection) []definitions.FieldProblem
}

// SetChecker sets the [Checker] of connType, replacing any earlier one. It
// panics when ch is nil or connType is not a valid name.
func (r *Registry) SetChecker(connType string, ch Checker) {
	if ch == nil {
		panic("processors: SetChecker: nil checker")
	}
	if err := validName("connection type", connType); err != nil {
		panic(fmt.Sprintf("processors: SetChecker: %v", err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checkers == nil {
		r.checkers = map[string]Checker{}
	}
	r.checkers[connType] = ch
}

func (r *Registry) checker(connType string) Checker {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.checkers[connType]
}

// CheckConnection runs the checker of c's type; without one, a preset or
// operations on the connection are reported as unknown to that type. Part
// of definitions.ConnectionChecker.
func (r *Registry) CheckConnection(c *definitions.Connection) []definitions.FieldProblem {
	if ch := r.checker(c.Type); ch != nil {
		return ch.CheckConnection(c)
	}
	return noOperations(c)
}

// CheckUse runs the checker of c's type; without one, an operation or
// inputs on the job or step are reported as unknown to that type. Part of
// definitions.ConnectionChecker.
func (r *Registry) CheckUse(j *definitions.Job, use definitions.Step, c *definitions.Connection) []definitions.FieldProblem {
	if ch := r.checker(c.Type); ch != nil {
		return ch.CheckUse(j, use, c)
	}
	return noUse(use, c)
}

// noOperations reports a preset or operations on a connection whose type
// has none.
func noOperations(c *definitions.Connection) []definitions.FieldProblem {
	var out []definitions.FieldProblem
	if c.Preset != "" {
		out = append(out, definitions.FieldProblem{Key: "preset", Message: fmt.Sprintf("connection type %q has no presets", c.Type)})
	}
	if len(c.Operations) > 0 {
		out = append(out, definitions.FieldProblem{Key: "operations", Message: fmt.Sprintf("connection type %q has no operations", c.Type)})
	}
	return out
}

// noUse reports an operation or inputs on a job or step whose connection
// type has none.
func noUse(use definitions.Step, c *definitions.Connection) []definitions.FieldProblem {
	var out []definitions.FieldProblem
	if use.Operation != "" {
		out = append(out, definitions.FieldProblem{Key: "operation", Message: fmt.Sprintf("connection %s (type %s) has no operations", c.Name, c.Type)})
	}
	if len(use.Inputs) > 0 {
		out = append(out, definitions.FieldProblem{Key: "inputs", Message: fmt.Sprintf("connection %s (type %s) has no operation inputs", c.Name, c.Type)})
	}
	return out
}

// KnownSettings returns a Checker for a connection type whose settings
// are exactly keys (no presets, no operations): any other setting is an
// error, with the nearest known one suggested, so that a typo such as
// "timout" does not pass silently.
func KnownSettings(keys ...string) Checker { return knownSettings(keys) }

type knownSettings []string

// CheckConnection reports unknown settings, presets and operations.
func (k knownSettings) CheckConnection(c *definitions.Connection) []definitions.FieldProblem {
	var out []definitions.FieldProblem
	names := make([]string, 0, len(c.Settings))
	for n := range c.Settings {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !slices.Contains(k, n) {
			known := "it has none"
			if len(k) > 0 {
				known = "known: " + strings.Join(k, ", ")
			}
			out = append(out, definitions.FieldProblem{Key: "settings." + n,
				Message: fmt.Sprintf("unknown setting %q%s (%s)", n, definitions.Hint(n, k), known)})
		}
	}
	return append(out, noOperations(c)...)
}

// CheckUse reports an operation or inputs, which such types do not read.
func (k knownSettings) CheckUse(_ *definitions.Job, use definitions.Step, c *definitions.Connection) []definitions.FieldProblem {
	return noUse(use, c)
}
