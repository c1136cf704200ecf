package httperp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// NameHTTP is the generic processor that runs one connection operation
// (the job's operation), registered by [Register].
const NameHTTP = "http"

// OperationResult is the result of the generic http processor.
type OperationResult struct {
	Operation string `json:"operation"`
	// Status is the HTTP status of the answer (0 in a preview that sent
	// nothing).
	Status int `json:"status,omitempty"`
	// Code and Message are the platform's, when its answer had them.
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Result holds the fields the operation extracts (or the whole JSON
	// answer when it extracts none and it is small).
	Result json.RawMessage `json:"result,omitempty"`
	// Preview is true for a preview; WouldSend is the request a real run
	// would send (without credentials).
	Preview   bool         `json:"preview,omitempty"`
	WouldSend *SentRequest `json:"wouldSend,omitempty"`
	Missing   []string     `json:"missingFields,omitempty"`
}

// SentRequest describes a request without its credentials.
type SentRequest struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Query  string          `json:"query,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// generic is the http processor.
type generic struct{ *base }

// Process runs the run's operation (job or step operation) with its
// inputs bound from the run's parameters. A preview of an operation that
// changes something sends nothing and records the request it would send;
// a preview of a read (GET) performs it.
func (p *generic) Process(ctx context.Context, run *processors.Run) error {
	e, err := p.newERP(run)
	if err != nil {
		return err
	}
	name := run.Operation
	if name == "" {
		return processors.Permanent(CodeConfig, "processor http needs an operation: set operation on the job (or step)")
	}
	op := e.spec.ops[name]
	if op == nil {
		return processors.Permanent(CodeConfig, fmt.Sprintf("connection %s has no operation %q%s", run.Connection.Name, name, opsHint(e.spec)))
	}
	in, err := bindInputs(op, run)
	if err != nil {
		return err
	}
	res := OperationResult{Operation: name, Preview: run.Preview}
	if run.Preview && op.changes {
		req, err := e.build(op, e.vars(op, in))
		if err != nil {
			return err
		}
		sr := &SentRequest{Method: req.method, Path: req.path, Body: json.RawMessage(e.red.s(string(req.body)))}
		if len(req.query) > 0 {
			sr.Query = req.query.Encode()
		}
		if len(req.body) == 0 {
			sr.Body = nil
		}
		res.WouldSend = sr
		e.log().Info(fmt.Sprintf("preview: would send %s %s", req.method, req.path), "operation", name)
		run.SetResult(res)
		return nil
	}
	a, err := e.do(ctx, name, in)
	if err != nil {
		return err
	}
	res.Status, res.Code, res.Message, res.Result = a.resp.status, a.code, a.message, a.result
	if miss := op.missing(a.resp); len(miss) > 0 {
		res.Missing = miss
		run.RecordWarning(fmt.Sprintf("operation %s: the answer has no %s", name, strings.Join(miss, ", ")), "operation", name)
	}
	if op.changes {
		run.AddChanged(1)
	} else {
		run.AddRead(1)
	}
	line := fmt.Sprintf("%s: %s", name, statusText(a.resp.status))
	if a.code != "" || a.message != "" {
		line += strings.TrimRight(" ("+strings.TrimSpace(a.code+" "+a.message)+")", " ")
	}
	e.log().Info(line, "operation", name, "status", a.resp.status, "code", a.code)
	run.SetResult(res)
	return nil
}

// checker is the http connection type's [processors.Checker].
type checker struct{}

// CheckConnection compiles the connection's preset, settings, auth and
// operations and reports every problem.
func (checker) CheckConnection(c *definitions.Connection) []definitions.FieldProblem {
	spec, p := compileSpec(c.Preset, c.Settings, c.Operations, c.Secrets)
	if len(p) > 0 {
		return p
	}
	// Unknown settings are errors (a typo such as "timout" must not pass):
	// known are the type's own, the preset's, and those templates use.
	var presetKeys map[string]any
	if pr, ok := loadPresets()[spec.preset]; ok {
		presetKeys = pr.Settings
	}
	for _, k := range names(c.Settings) {
		if _, ok := presetKeys[k]; ok || slices.Contains(baseSettings, k) || spec.used[k] {
			continue
		}
		known := append([]string{}, baseSettings...)
		known = append(known, names(presetKeys)...)
		for u := range spec.used {
			if !slices.Contains(known, u) {
				known = append(known, u)
			}
		}
		p.add("settings."+k, "unknown setting %q%s (known: %s; a setting an operation refers to as {%s} is known too)", k, definitions.Hint(k, known), strings.Join(sortStrings(known), ", "), k)
	}
	settings, _, _, _ := effective(c.Preset, c.Settings, nil)
	if raw, ok := settings["baseURL"].(string); ok && !strings.Contains(raw, "${") {
		if _, err := parseConfig(settings); err != nil {
			p.add("settings", "%v", err)
		}
	}
	return p
}

// baseSettings are the http connection type's own settings.
var baseSettings = []string{"baseURL", "timeout", "auth", "headers", "tls", "maxResponseBytes"}

// refOps are the operations the reference processors call.
var refOps = map[string][]string{
	NameOrderCancel:     {"getOrder", "orderAction"},
	NameOrderAction:     {"getOrder", "orderAction"},
	NameOrderStatusSync: {"listOrders"},
}

// CheckUse checks a job's (or step's) operation and its input bindings.
func (checker) CheckUse(j *definitions.Job, use definitions.Step, c *definitions.Connection) []definitions.FieldProblem {
	spec, p := compileSpec(c.Preset, c.Settings, c.Operations, c.Secrets)
	if len(p) > 0 || spec == nil {
		return nil // reported on the connection
	}
	var out problems
	if use.Processor != NameHTTP {
		if use.Operation != "" {
			out.add("operation", "only processor http runs an operation; processor %s does not read it", use.Processor)
		}
		if len(use.Inputs) > 0 {
			out.add("inputs", "only processor http binds operation inputs; processor %s does not read them", use.Processor)
		}
		for _, need := range refOps[use.Processor] {
			if spec.ops[need] == nil {
				out.add("processor", "processor %s calls operation %s, which connection %s does not have%s (it is in preset %s)", use.Processor, need, c.Name, opsHint(spec), PresetReferenceERP)
			}
		}
		if use.Processor == NameOrderStatusSync && j.Name != definitions.PushRecordJob {
			out = append(out, checkSyncJob(j)...)
		}
		return out
	}
	if use.Operation == "" {
		out.add("operation", "required: processor http runs one operation of connection %s%s", c.Name, opsHint(spec))
		return out
	}
	op := spec.ops[use.Operation]
	if op == nil {
		names := make([]string, 0, len(spec.ops))
		for n := range spec.ops {
			names = append(names, n)
		}
		out.add("operation", "connection %s has no operation %q%s%s", c.Name, use.Operation, definitions.Hint(use.Operation, names), opsHint(spec))
		return out
	}
	for _, in := range sortedKeys(use.Inputs) {
		param := use.Inputs[in]
		if _, ok := op.inputs[in]; !ok {
			out.add("inputs."+in, "operation %s has no input %q%s%s", op.name, in, definitions.Hint(in, sortedBoolKeys(op.inputs)), inputsHint(op.inputs))
			continue
		}
		if j.Param(param) == nil {
			if j.Name == definitions.PushRecordJob {
				out.add("inputs."+in, "a pushed record has no field %q to bind input %s to%s (fields: %s)", param, in, definitions.Hint(param, definitions.PushFields), strings.Join(definitions.PushFields, ", "))
				continue
			}
			out.add("inputs."+in, "job %s has no parameter %q to bind input %s to", j.Name, param, in)
		}
	}
	for _, in := range sortedBoolKeys(op.inputs) {
		if _, mapped := use.Inputs[in]; mapped {
			continue
		}
		if j.Param(in) == nil && op.inputs[in] {
			if j.Name == definitions.PushRecordJob {
				out.add("operation", "operation %s needs input %s, which no field of a pushed record provides: map one (inputs: {%s: FIELD}, fields: %s)", op.name, in, in, strings.Join(definitions.PushFields, ", "))
				continue
			}
			out.add("operation", "operation %s needs input %s, which no parameter provides: add parameter %s or map one (inputs: {%s: PARAMETER})", op.name, in, in, in)
		}
	}
	return out
}

// checkSyncJob checks what OrderStatusSync needs of its job: a push, one
// run at a time, and valid settings.
func checkSyncJob(j *definitions.Job) problems {
	var out problems
	if j.Push == nil {
		out.add("push", "processor %s writes each changed order to the commerce platform: add push: {connection: SHOP, operation: updateOrderStatus, inputs: {ORDER_INPUT: OrderNumber, STATUS_INPUT: Status}}", NameOrderStatusSync)
	}
	if j.Concurrency.Overlap == definitions.OverlapAllow || (j.Concurrency.Overlap == "" && j.Schedule == nil) {
		out.add("concurrency.overlap", "processor %s keeps one mark per job: two runs at once would push the same orders; set concurrency.overlap to forbid or queue", NameOrderStatusSync)
	}
	_, p := parseSyncSettings(j.Settings)
	return append(out, p...)
}

func sortedBoolKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return sortStrings(out)
}
