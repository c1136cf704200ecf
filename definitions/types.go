// Package definitions owns what a job is before it runs: job definitions,
// ERP connections and typed parameters, their strict YAML loading with
// file:line errors, their validation, and the built-in example definitions
// embedded in the binary.
//
// A [Set] is loaded from a directory of YAML files ([LoadDir]) or from the
// embedded examples ([Builtin]), then validated against a [Catalog] of the
// processors and connection types the program has registered ([Set.Validate]).
// [LoadAndValidate] does both and reports every problem at once, each as
// "file:line: path: message" ([Problems]). Parameters given as text (CLI
// --param K=V, API, dashboard form) are parsed into typed [Values] by
// [Job.ParseParams]; [Values.MarshalJSON] and [Job.DecodeParams] store and
// reload them exactly. The optional orderStatuses section maps ERP order
// statuses to commerce statuses ([OrderStatusMap]).
package definitions

import (
	"time"
)

// JobType says how a job runs. Only [JobTypeExecution] exists today; the
// field leaves room for others (e.g. import/export jobs).
type JobType string

// JobTypeExecution is a job that runs a processor against a connection, as
// "execution" integration jobs do on the source platforms.
const JobTypeExecution JobType = "execution"

// ParamType is the type of a job parameter.
type ParamType string

// Parameter types. Values of each type parse into a fixed Go type, see
// [Values].
const (
	TypeString   ParamType = "string"   // string
	TypeInt      ParamType = "int"      // int64
	TypeDecimal  ParamType = "decimal"  // decimal.Decimal (exact, never float64)
	TypeBool     ParamType = "bool"     // bool
	TypeDate     ParamType = "date"     // Date
	TypeDateTime ParamType = "datetime" // time.Time in UTC
	TypeEnum     ParamType = "enum"     // string, one of Parameter.Values
)

// Overlap policies: what a schedule tick does while a run of the same job is
// still active.
const (
	OverlapAllow  = "allow"  // start another run
	OverlapForbid = "forbid" // skip the tick and record why
	OverlapQueue  = "queue"  // keep at most one waiting run
)

// Misfire policies: what a schedule does about ticks missed while no
// instance was up.
const (
	MisfireSkip    = "skip"    // no catch-up; the gap is recorded (default)
	MisfireRunOnce = "runOnce" // one catch-up run for the latest missed tick
)

// Step failure policies (multi-step jobs).
const (
	OnFailureStop     = "stop"     // default: the run stops at the failed step
	OnFailureContinue = "continue" // later steps still run
)

// Pos is where something was written: a file and a 1-based line.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// Duration is a time.Duration written in YAML as a Go duration ("30s",
// "1m30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Set is a loaded set of definitions: jobs and connections by name, in the
// order they were written.
type Set struct {
	Jobs        []*Job
	Connections []*Connection
	// Hooks are the inbound triggers (POST /hooks/{name}).
	Hooks []*Hook
	// OrderStatuses is the ERP -> commerce order status mapping (the
	// top-level orderStatuses section); nil when no file has one.
	OrderStatuses *OrderStatusMap
	// SMTP is the server e-mail notifications go through (the top-level
	// smtp section); nil when no file has one.
	SMTP *SMTPConfig
}

// Job is a validated job definition.
type Job struct {
	Name        string
	Description string
	Type        JobType // default JobTypeExecution
	// Connection names the Connection the processor talks to.
	Connection string
	// Processor names the registered processor that does the work.
	Processor string
	// Operation names the connection operation the generic "http"
	// processor runs (see the connection's Operations); "" otherwise.
	Operation string
	// Inputs binds operation inputs to job parameters (input name →
	// parameter name) where they are not named alike; nil: every input
	// binds to the parameter of its own name.
	Inputs map[string]string
	// PostProcessor optionally names a processor run after a successful
	// Processor, with its result as input.
	PostProcessor string
	Parameters    []Parameter
	Schedule      *Schedule // nil: on demand only
	Retry         RetryPolicy
	// Timeout bounds one attempt. Default 5m.
	Timeout     Duration
	Concurrency Concurrency
	// UniqueBy lists parameters that identify an active run: while a run
	// with the same values is queued or running, no second one is created
	// (e.g. one active OrderCancel per OrderNumber). Empty: no uniqueness.
	UniqueBy []string
	// MaxErrors and MaxWarnings: a run that records more errors (warnings)
	// than this is failed. -1 (the default) means no limit.
	MaxErrors   int
	MaxWarnings int
	// Steps lists ordered steps; a job without steps is a one-step job whose
	// only step is (Processor, Connection).
	Steps []Step
	// Links start other jobs when a run of this job finishes (see [Link]).
	Links []Link
	// Settings holds processor-specific settings (free-form).
	Settings map[string]any
	// Notify says whom finished runs are reported to; nil: nobody.
	Notify *Notify
	// Push is where a record-by-record job (OrderStatusSync) writes each
	// record; nil: nowhere.
	Push *Push
	// Version is a hash of the definition as written; runs record it.
	Version string
	Pos     Pos

	src source // where each field was written; zero for jobs built in code
}

// Parameter is one typed job parameter.
type Parameter struct {
	Name string
	Type ParamType
	// Prompt is the label shown to an operator ("Order Number").
	Prompt      string
	Description string
	Required    bool
	// Default is the default as written (text), parsed like an input;
	// nil when there is none.
	Default *string
	// Values lists the allowed values of an enum (matched exactly, case
	// sensitive).
	Values []string
	// Pattern is an optional regular expression (RE2) a string must match
	// in full.
	Pattern string
	// Min and Max bound int and decimal values (inclusive) and the length
	// in characters of strings; nil when absent. Written as text so that
	// decimals keep their precision.
	Min *string
	Max *string
	Pos Pos

	src source
}

// Schedule is when a job fires on its own.
type Schedule struct {
	// Cron is a cron spec: 5 fields, 6 with leading seconds, a descriptor
	// (@daily, @hourly …, any case) or @every DURATION.
	Cron string
	// Timezone is an IANA zone name; empty means UTC (never the server's
	// zone).
	Timezone string
	// Misfire is MisfireSkip (default) or MisfireRunOnce.
	Misfire string
	Pos     Pos

	src source
}

// RetryPolicy says how failed attempts are retried.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt; default 3, 1 means no retry.
	MaxAttempts int
	// Initial backoff before the 2nd attempt; default 1s.
	Initial Duration
	// Max caps a backoff; default 5m.
	Max Duration
	// Multiplier grows the backoff per attempt; default 2.
	Multiplier float64
	// Jitter is the fraction (0..1) of a backoff that is randomised;
	// default 0.2.
	Jitter float64
	// MaxSnoozes caps "come back later" reschedules that do not consume an
	// attempt; default 20.
	MaxSnoozes int
}

// Concurrency limits how runs of a job overlap.
type Concurrency struct {
	// Overlap is OverlapAllow (default for on-demand jobs), OverlapForbid
	// or OverlapQueue.
	Overlap string
	// MaxRunning caps the job's runs executing at once; 0 means no limit.
	MaxRunning int
}

// Step is one step of a multi-step job.
type Step struct {
	Name       string
	Processor  string
	Connection string // default: the job's connection
	// Operation and Inputs are as on [Job], for a step whose processor
	// runs a connection operation.
	Operation string
	Inputs    map[string]string
	// Parameters are extra fixed parameters for this step (text values).
	Parameters map[string]string
	OnFailure  string // OnFailureStop (default) or OnFailureContinue
	Pos        Pos

	src source
}

// Push is where a record-by-record job (OrderStatusSync) writes each
// record: a connection and the processor that writes one record there
// (default [PushDefaultProcessor], which runs Operation), with Inputs
// binding the operation's inputs to the record's fields ([PushFields]).
type Push struct {
	Connection string
	Processor  string
	Operation  string
	Inputs     map[string]string
	// Concurrency bounds the writes in flight; 0 means the connection's
	// MaxConcurrency, else 4.
	Concurrency int
	Pos         Pos

	src source
}

// PushDefaultProcessor is the processor of a push that names none.
const PushDefaultProcessor = "http"

// PushFields are the fields of a record a push writes, the names its
// inputs bind to: the order number, its commerce status (mapped), its
// ERP status and the ERP's change time (RFC 3339).
var PushFields = []string{"OrderNumber", "Status", "ERPStatus", "UpdatedAt"}

// PushRecordJob is the name of the job validation passes to
// [ConnectionChecker.CheckUse] for a push: its parameters are the
// [PushFields].
const PushRecordJob = "(pushed record)"

// RecordJob returns the job a push's inputs are checked against: one
// string parameter per field of [PushFields].
func RecordJob() *Job {
	j := &Job{Name: PushRecordJob}
	for _, f := range PushFields {
		j.Parameters = append(j.Parameters, Parameter{Name: f, Type: TypeString})
	}
	return j
}

// Connection is an ERP (or other system) connection.
type Connection struct {
	Name string
	// Type is "http", "exec" or a custom type registered by code.
	Type string
	// Preset names a built-in set of operations, outcome rules and auth
	// the connection type ships (http: oracle-commerce, vtex,
	// salesforce-b2c, reference-erp); "" for none. Settings and
	// Operations written on the connection override the preset's.
	Preset string
	// Operations are the connection's named operations (free-form, read
	// by the connection type; http: method, path, body, outcomes …), by
	// name. Nil: none besides the preset's.
	Operations map[string]any
	// Settings are the type's settings (base URL, timeout, argv …).
	Settings map[string]any
	// Secrets maps a secret's name (e.g. "token") to the name of the
	// environment variable that holds it. Values are resolved at run time
	// by [Connection.ResolveSecrets] and never stored.
	Secrets map[string]string
	// MaxConcurrency caps the runs executing at once, across all jobs and
	// instances, against this connection (an ERP must not be hammered by
	// every worker); 0 means no limit.
	MaxConcurrency int
	// RateLimit caps the requests per second sent to this connection,
	// across all runs and all instances sharing the database (each request
	// reserves the next free slot in the database and waits for it); 0
	// means no limit. At most [MaxRateLimit].
	RateLimit float64
	// Labels name groups of connections an instance can be told to serve
	// (serve --connections NAME|LABEL,...), e.g. a region or a network
	// zone.
	Labels []string
	// Maintenance lists the times the connection must not be called.
	Maintenance []MaintenanceWindow
	Pos         Pos

	src source
}

// Catalog tells validation what the program can run. processors.Registry
// implements it.
type Catalog interface {
	// HasProcessor reports whether any processor of that name is registered.
	HasProcessor(name string) bool
	// HasConnectionType reports whether a connection type is known.
	HasConnectionType(connType string) bool
	// Supports reports whether processor name can run on connType.
	Supports(name, connType string) bool
}

// FieldProblem is a problem a [ConnectionChecker] found. Key is the dotted
// path of the field below the object checked ("operations.cancel.path",
// "settings.baseURL", "inputs.id", "operation"); validation reports it at
// the line that field was written on.
type FieldProblem struct {
	Key     string
	Message string
}

// ConnectionChecker is implemented by a [Catalog] that can check what a
// connection type makes of its connections: their preset, settings and
// operations, and how a job (or a step) uses them. Validation calls it
// when the Catalog implements it.
type ConnectionChecker interface {
	// CheckConnection checks a connection of a known type. Keys are
	// relative to the connection.
	CheckConnection(c *Connection) []FieldProblem
	// CheckUse checks a job's use of a connection by processor: use holds
	// the processor, operation and inputs (of the job or the step). Keys
	// are relative to the job or step.
	CheckUse(j *Job, use Step, c *Connection) []FieldProblem
}
