package processors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// AnyName is the Name that [Registry.List] reports for a connection runner
// registered by [Registry.RegisterConnectionRunner]: it serves any
// processor name on its connection type.
const AnyName = "*"

// Option configures one registration; see [ForConnectionTypes],
// [WithPreview] and [WithDescription]. Options are validated when the
// registration is made: an invalid option makes Register panic and
// RegisterSafely return an error.
type Option func(*regConfig) error

type regConfig struct {
	types       []string
	preview     bool
	description string
}

// ForConnectionTypes names the connection types a processor can run on.
// Required (at least one type) for [Registry.Register]; not allowed for
// [Registry.RegisterConnectionRunner], whose type is its argument. Types
// must be non-empty and contain no white space; repeats are ignored. It may
// be given more than once: the types add up.
func ForConnectionTypes(types ...string) Option {
	return func(c *regConfig) error {
		if len(types) == 0 {
			return errors.New("ForConnectionTypes: no connection type given")
		}
		for _, t := range types {
			if err := validName("connection type", t); err != nil {
				return fmt.Errorf("ForConnectionTypes: %w", err)
			}
			if !slices.Contains(c.types, t) {
				c.types = append(c.types, t)
			}
		}
		return nil
	}
}

// WithPreview declares that the processor honours [Run.Preview]: in a
// preview it reads and records what it would do but changes nothing.
// Without it, [Registry.Resolve] refuses previews with
// [ErrPreviewUnsupported].
func WithPreview() Option {
	return func(c *regConfig) error {
		c.preview = true
		return nil
	}
}

// WithDescription sets the one-line description shown by [Registry.List]
// (`jobrunner definitions list`, the API). Default: empty.
func WithDescription(s string) Option {
	return func(c *regConfig) error {
		c.description = strings.TrimSpace(s)
		return nil
	}
}

func validName(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
		return fmt.Errorf("%s %q contains white space", what, s)
	}
	return nil
}

// registration is one Register/RegisterConnectionRunner call.
type registration struct {
	name        string // AnyName for a connection runner
	types       []string
	p           Processor
	preview     bool
	description string
}

type key struct{ name, connType string }

// Registry maps (processor name, connection type) to the [Processor] that
// runs it. It is safe for concurrent use. The zero value is not usable;
// call [NewRegistry].
//
// A Registry implements definitions.Catalog, so job definitions can be
// validated against what the program has registered.
type Registry struct {
	mu      sync.RWMutex
	exact   map[key]*registration
	runners map[string]*registration // by connection type
	byName  map[string][]string      // name -> connection types with an exact registration
	allRegs []*registration
	// checkers by connection type, see SetChecker.
	checkers map[string]Checker
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{
		exact:   make(map[key]*registration),
		runners: make(map[string]*registration),
		byName:  make(map[string][]string),
	}
}

// Register registers p as processor name for the connection types given by
// [ForConnectionTypes] (required). Like database/sql's Register it panics
// on invalid input (empty name, nil p, no connection type, an invalid
// option) and when any (name, connection type) pair is already registered;
// in that case nothing is registered. Use [Registry.RegisterSafely] to get
// an error instead.
func (r *Registry) Register(name string, p Processor, opts ...Option) {
	if err := r.RegisterSafely(name, p, opts...); err != nil {
		panic(err)
	}
}

// RegisterSafely is [Registry.Register] returning an error instead of
// panicking. The error wraps [ErrDuplicate] when a (name, connection type)
// pair is already registered.
func (r *Registry) RegisterSafely(name string, p Processor, opts ...Option) error {
	if err := validName("processor name", name); err != nil {
		return fmt.Errorf("processors: register: %w", err)
	}
	if name == AnyName {
		return fmt.Errorf("processors: register: processor name %q is reserved for connection runners", AnyName)
	}
	if p == nil {
		return fmt.Errorf("processors: register %s: nil processor", name)
	}
	cfg, err := applyOptions(opts)
	if err != nil {
		return fmt.Errorf("processors: register %s: %w", name, err)
	}
	if len(cfg.types) == 0 {
		return fmt.Errorf("processors: register %s: no connection type (use ForConnectionTypes)", name)
	}
	reg := &registration{name: name, types: cfg.types, p: p, preview: cfg.preview, description: cfg.description}

	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range cfg.types {
		if _, dup := r.exact[key{name, t}]; dup {
			return fmt.Errorf("processors: register %s for connection type %q: %w", name, t, ErrDuplicate)
		}
	}
	for _, t := range cfg.types {
		r.exact[key{name, t}] = reg
		r.byName[name] = append(r.byName[name], t)
	}
	r.allRegs = append(r.allRegs, reg)
	return nil
}

// RegisterConnectionRunner registers p as the runner of every processor
// name on connections of type connType: Resolve(anyName, connType, …)
// returns p unless an exact (name, connType) registration exists, which is
// preferred. This is how the exec connection type works: the external
// command is the processor and receives the processor name
// ([ProcessorName] on the context). It panics on invalid input (empty
// connType, nil p, an invalid option, [ForConnectionTypes] given) and when
// connType already has a runner.
func (r *Registry) RegisterConnectionRunner(connType string, p Processor, opts ...Option) {
	if err := r.RegisterConnectionRunnerSafely(connType, p, opts...); err != nil {
		panic(err)
	}
}

// RegisterConnectionRunnerSafely is [Registry.RegisterConnectionRunner]
// returning an error instead of panicking; the error wraps [ErrDuplicate]
// when connType already has a runner.
func (r *Registry) RegisterConnectionRunnerSafely(connType string, p Processor, opts ...Option) error {
	if err := validName("connection type", connType); err != nil {
		return fmt.Errorf("processors: register connection runner: %w", err)
	}
	if p == nil {
		return fmt.Errorf("processors: register connection runner %s: nil processor", connType)
	}
	cfg, err := applyOptions(opts)
	if err != nil {
		return fmt.Errorf("processors: register connection runner %s: %w", connType, err)
	}
	if len(cfg.types) > 0 {
		return fmt.Errorf("processors: register connection runner %s: ForConnectionTypes is not allowed (the type is the first argument)", connType)
	}
	reg := &registration{name: AnyName, types: []string{connType}, p: p, preview: cfg.preview, description: cfg.description}

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.runners[connType]; dup {
		return fmt.Errorf("processors: register connection runner for connection type %q: %w", connType, ErrDuplicate)
	}
	r.runners[connType] = reg
	r.allRegs = append(r.allRegs, reg)
	return nil
}

func applyOptions(opts []Option) (regConfig, error) {
	var cfg regConfig
	for _, o := range opts {
		if o == nil {
			return cfg, errors.New("nil option")
		}
		if err := o(&cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// Resolve returns the processor that runs processor name on a connection
// of type connType: the exact (name, connType) registration if there is
// one, else connType's connection runner. A processor returned from a
// connection runner sees name through [ProcessorName].
//
// Errors: [ErrProcessorNotFound] when name is not registered for any type
// and connType has no runner; [ErrUnsupportedConnection] when name is
// registered but not for connType (the message lists the types it
// supports); [ErrPreviewUnsupported] when preview is true and the
// processor was not registered [WithPreview].
func (r *Registry) Resolve(name, connType string, preview bool) (Processor, error) {
	r.mu.RLock()
	reg, ok := r.exact[key{name, connType}]
	wildcard := false
	if !ok {
		reg, ok = r.runners[connType]
		wildcard = ok
	}
	var supported []string
	if !ok {
		supported = append(supported, r.byName[name]...)
	}
	r.mu.RUnlock()

	if !ok {
		if len(supported) == 0 {
			return nil, fmt.Errorf("resolve processor %q for connection type %q: %w", name, connType, ErrProcessorNotFound)
		}
		sort.Strings(supported)
		return nil, fmt.Errorf("resolve processor %q: %w %q (it supports: %s)",
			name, ErrUnsupportedConnection, connType, strings.Join(supported, ", "))
	}
	if preview && !reg.preview {
		return nil, fmt.Errorf("resolve processor %q for connection type %q: %w", name, connType, ErrPreviewUnsupported)
	}
	if wildcard {
		return namedProcessor{name: name, p: reg.p}, nil
	}
	return reg.p, nil
}

// namedProcessor passes the resolved processor name to a connection runner.
type namedProcessor struct {
	name string
	p    Processor
}

func (n namedProcessor) Process(ctx context.Context, run *Run) error {
	return n.p.Process(WithProcessorName(ctx, n.name), run)
}

type processorNameKey struct{}

// WithProcessorName returns ctx carrying the processor name being run.
// [Registry.Resolve] does this for connection runners; a runner that calls
// a connection runner directly (tests) may do it too.
func WithProcessorName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, processorNameKey{}, name)
}

// ProcessorName returns the processor name set by [WithProcessorName], or
// "" when there is none.
func ProcessorName(ctx context.Context) string {
	s, _ := ctx.Value(processorNameKey{}).(string)
	return s
}

// HasProcessor reports whether name can be resolved on some connection
// type: it has an exact registration, or any connection runner exists
// (a runner such as exec serves every name). Part of definitions.Catalog.
func (r *Registry) HasProcessor(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byName[name]) > 0 || len(r.runners) > 0
}

// HasConnectionType reports whether any registration or connection runner
// names connType. Part of definitions.Catalog.
func (r *Registry) HasConnectionType(connType string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.runners[connType]; ok {
		return true
	}
	for k := range r.exact {
		if k.connType == connType {
			return true
		}
	}
	return false
}

// Supports reports whether processor name resolves on connType, exactly or
// through connType's runner (preview not considered). Part of
// definitions.Catalog.
func (r *Registry) Supports(name, connType string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, ok := r.exact[key{name, connType}]; ok {
		return true
	}
	_, ok := r.runners[connType]
	return ok
}

// Info describes one registration, as listed by [Registry.List].
type Info struct {
	// Name is the processor name, or [AnyName] for a connection runner.
	Name string `json:"name"`
	// ConnectionTypes are the types it was registered for, sorted.
	ConnectionTypes []string `json:"connectionTypes"`
	// Preview is true when it was registered [WithPreview].
	Preview bool `json:"preview"`
	// Description is what [WithDescription] set.
	Description string `json:"description,omitempty"`
}

// List returns one Info per registration, sorted by name then connection
// types (connection runners, named [AnyName], sort first).
func (r *Registry) List() []Info {
	r.mu.RLock()
	out := make([]Info, 0, len(r.allRegs))
	for _, reg := range r.allRegs {
		types := slices.Clone(reg.types)
		sort.Strings(types)
		out = append(out, Info{Name: reg.name, ConnectionTypes: types, Preview: reg.preview, Description: reg.description})
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return strings.Join(out[i].ConnectionTypes, ",") < strings.Join(out[j].ConnectionTypes, ",")
	})
	return out
}

// Default is the registry cmd/jobrunner resolves processors from; built-in
// and custom processors register into it with [Register], typically from
// main or an init function. Libraries should not rely on Default: take a
// *Registry explicitly so callers (and tests) can use their own.
var Default = NewRegistry()

// Register registers p as processor name in [Default]; it panics like
// [Registry.Register] (invalid input or a duplicate pair).
func Register(name string, p Processor, opts ...Option) {
	Default.Register(name, p, opts...)
}
