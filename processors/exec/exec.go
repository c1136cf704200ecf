// Package exec owns the external-command processor: connections of type
// "exec" run a program (any language) as the processor for every processor
// name on that connection. It is registered as a connection runner
// ([processors.Registry.RegisterConnectionRunner]) by [Register].
//
// # Connection settings
//
//	type: exec
//	settings:
//	  command: [/usr/bin/python3, /opt/erp/cancel.py, --verbose]  # argv, required
//	  dir: /opt/erp             # working directory (default: the runner's)
//	  env: {ERP_REGION: eu}     # extra, non-secret environment variables
//	  inheritEnv: [HTTPS_PROXY] # runner environment variables passed through
//	  killGrace: 5s             # SIGTERM → SIGKILL grace (default 5s)
//	secrets:
//	  token: ERP_TOKEN          # arrives as JOBRUNNER_SECRET_TOKEN
//
// command is an argv list executed directly, never through a shell: an
// argument such as "; rm -rf /" is passed verbatim. A relative command
// path is resolved against dir; a bare name through PATH.
//
// The child does NOT inherit the runner's environment (it holds the
// database DSN and other connections' secrets). It gets PATH, HOME, USER,
// LOGNAME, SHELL, LANG, LANGUAGE, TZ, TMPDIR and LC_* from the runner, the
// variables named in inheritEnv, the env settings, and the connection's
// secrets, each as JOBRUNNER_SECRET_<NAME> (NAME upper-cased, characters
// other than A-Z, 0-9 and _ replaced by _). Secrets are passed only in the
// environment: never in stdin, argv or logs. Stderr lines and error
// messages have secret values replaced by [REDACTED]; the result is stored
// as the command wrote it, so a command must not put secrets in it.
//
// # Protocol
//
// stdin receives one JSON object, then EOF:
//
//	{"runId":42,"job":"OrderCancel","processor":"OrderCancel","step":"",
//	 "attempt":1,"maxAttempts":3,
//	 "parameters":{"OrderNumber":"SO-1001","Amount":"12.50"},
//	 "connection":{"name":"erp","type":"exec","settings":{…}},
//	 "input":null,"preview":false,"idempotencyKey":"run-42"}
//
// parameters are the run's typed parameters as the runner stores them;
// input is the previous processor's or step's result, or null; preview
// true means the command must not change anything (it is responsible for
// honouring it).
//
// stdout is the result: on exit 0 it must be empty (the result is null) or
// one JSON value (normally an object), stored verbatim as the run's
// result. stdout beyond [DefaultMaxStdout] (1 MiB) or not valid JSON fails
// the attempt (retryable) with a message quoting its first 200 bytes.
//
// The exit status says what happens next:
//
//	exit   outcome                                      stdout read as
//	0      success                                      the result
//	3      permanent failure (no retry)                 {"code","message"}, both optional:
//	                                                    code default EXEC_PERMANENT,
//	                                                    message default the last stderr line
//	75     retry later (EX_TEMPFAIL; no attempt used)   {"retryAfter":"30s","message"}, optional:
//	                                                    retryAfter a Go duration or seconds;
//	                                                    absent: the job's backoff
//	other  failed attempt, retried with backoff         ignored; error "exit status N: <last stderr line>"
//
// A command killed by a signal it was not sent by the runner is a failed
// attempt ("signal: killed: <last stderr line>"). A command that cannot be
// started because it does not exist or is not executable, and invalid
// settings, are permanent failures (code EXEC_CONFIG).
//
// stderr is the command's log: each line becomes a run log line at Info
// level, or Error / Warn / Debug when it starts with "ERROR:", "WARN:" (or
// "WARNING:"), "DEBUG:" (the prefix is removed). Lines are capped at 8 KiB
// and a run's stderr at [DefaultMaxStderrLines] lines, after which one
// "stderr truncated" warning is logged and the rest is discarded. Three
// directive lines update the run instead of being logged:
//
//	jobrunner:progress N   progress in percent
//	jobrunner:read N       add N to the records-read counter
//	jobrunner:changed N    add N to the records-changed counter
//
// # Processes
//
// The command runs in its own process group. When ctx is done (timeout,
// cancel, lost lease) the group gets SIGTERM, and SIGKILL after killGrace;
// the attempt then returns an error wrapping ctx.Err(), so
// [processors.Classify] reports a timeout or a cancellation. When the
// command exits, processes it left running in its group are killed with
// SIGKILL: nothing of an attempt outlives it. The command is always
// reaped.
package exec

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	osexec "os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// ConnectionType is the connection type the exec processor serves.
const ConnectionType = "exec"

// Exit statuses with a meaning beyond failure, see the package doc.
const (
	ExitPermanent = 3  // permanent failure: no retry
	ExitTempFail  = 75 // EX_TEMPFAIL: retry later without using an attempt
)

// Defaults of [Processor].
const (
	DefaultMaxStdout      = 1 << 20 // bytes of stdout kept
	DefaultMaxStderrLines = 10000   // stderr lines logged per attempt
	DefaultKillGrace      = 5 * time.Second
	// MaxLineBytes caps one logged stderr line.
	MaxLineBytes = 8 << 10
	// SecretEnvPrefix prefixes the environment variables carrying secrets.
	SecretEnvPrefix = "JOBRUNNER_SECRET_"
	// CodeConfig is the error code of invalid settings and commands that
	// cannot be started.
	CodeConfig = "EXEC_CONFIG"
	// CodePermanent is the default code of exit status 3.
	CodePermanent = "EXEC_PERMANENT"
)

// inheritedEnv are the runner's variables every command gets.
var inheritedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

// Processor runs a connection's command for any processor name. The zero
// value is ready to use with the defaults.
type Processor struct {
	// MaxStdout caps the stdout kept, in bytes; 0 means DefaultMaxStdout.
	MaxStdout int
	// MaxStderrLines caps the stderr lines logged per attempt; 0 means
	// DefaultMaxStderrLines.
	MaxStderrLines int
}

// Register registers a zero [Processor] in r as the connection runner of
// [ConnectionType], with preview support (the command receives "preview"
// and is responsible for honouring it). It panics if "exec" already has a
// runner.
func Register(r *processors.Registry) {
	r.RegisterConnectionRunner(ConnectionType, &Processor{},
		processors.WithPreview(),
		processors.WithDescription("Runs the connection's external command; any processor name"))
}

// settings are a connection's parsed settings.
type settings struct {
	argv      []string
	dir       string
	env       []string // KEY=VALUE, sorted
	killGrace time.Duration
}

func parseSettings(c processors.Connection) (*settings, error) {
	s := &settings{killGrace: DefaultKillGrace}
	raw := c.Settings
	switch v := raw["command"].(type) {
	case nil:
		return nil, errors.New("setting command is required (an argv list)")
	case []string:
		s.argv = append(s.argv, v...)
	case []any:
		for i, a := range v {
			str, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("setting command[%d] is %T, want a string", i, a)
			}
			s.argv = append(s.argv, str)
		}
	case string:
		return nil, errors.New("setting command must be an argv list, not a string (no shell is used)")
	default:
		return nil, fmt.Errorf("setting command is %T, want a list of strings", v)
	}
	if len(s.argv) == 0 || s.argv[0] == "" {
		return nil, errors.New("setting command is empty")
	}
	if v, ok := raw["dir"]; ok && v != nil {
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("setting dir is %T, want a string", v)
		}
		s.dir = str
	}
	if v, ok := raw["killGrace"]; ok && v != nil {
		var err error
		switch d := v.(type) {
		case string:
			s.killGrace, err = time.ParseDuration(d)
		case time.Duration:
			s.killGrace = d
		case definitions.Duration:
			s.killGrace = time.Duration(d)
		default:
			err = fmt.Errorf("is %T, want a duration such as \"5s\"", v)
		}
		if err != nil {
			return nil, fmt.Errorf("setting killGrace: %w", err)
		}
		if s.killGrace < 0 {
			return nil, errors.New("setting killGrace is negative")
		}
	}

	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		for _, name := range inheritedEnv {
			if k == name {
				env[k] = v
			}
		}
		if strings.HasPrefix(k, "LC_") {
			env[k] = v
		}
	}
	if v, ok := raw["inheritEnv"]; ok && v != nil {
		names, err := stringList(v)
		if err != nil {
			return nil, fmt.Errorf("setting inheritEnv: %w", err)
		}
		for _, name := range names {
			if err := checkEnvName(name); err != nil {
				return nil, fmt.Errorf("setting inheritEnv: %w", err)
			}
			if val, ok := os.LookupEnv(name); ok {
				env[name] = val
			}
		}
	}
	if v, ok := raw["env"]; ok && v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			if ms, ok2 := v.(map[string]string); ok2 {
				m = map[string]any{}
				for k, x := range ms {
					m[k] = x
				}
			} else {
				return nil, fmt.Errorf("setting env is %T, want a map of names to values", v)
			}
		}
		for k, x := range m {
			if err := checkEnvName(k); err != nil {
				return nil, fmt.Errorf("setting env: %w", err)
			}
			switch x.(type) {
			case string, bool, int, int64, float64, uint64:
			default:
				return nil, fmt.Errorf("setting env.%s is %T, want a scalar", k, x)
			}
			env[k] = fmt.Sprint(x)
		}
	}
	seen := map[string]string{}
	for name, val := range c.Secrets {
		envName := SecretEnvName(name)
		if prev, dup := seen[envName]; dup {
			return nil, fmt.Errorf("secrets %q and %q both map to %s", prev, name, envName)
		}
		seen[envName] = name
		env[envName] = val
	}
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	sort.Strings(s.env)
	return s, nil
}

func stringList(v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("item %d is %T, want a string", i, x)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("is %T, want a list of strings", v)
}

func checkEnvName(k string) error {
	if k == "" || strings.ContainsAny(k, "=\x00") {
		return fmt.Errorf("invalid variable name %q", k)
	}
	if strings.HasPrefix(k, SecretEnvPrefix) {
		return fmt.Errorf("variable %s: the prefix %s is reserved for the connection's secrets", k, SecretEnvPrefix)
	}
	return nil
}

// SecretEnvName returns the environment variable that carries the secret
// named name: JOBRUNNER_SECRET_ + name upper-cased, with characters other
// than A-Z, 0-9 and _ replaced by _ ("api-token" → JOBRUNNER_SECRET_API_TOKEN).
func SecretEnvName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return SecretEnvPrefix + string(b)
}

// request is the JSON object written to the command's stdin.
type request struct {
	RunID          int64           `json:"runId"`
	Job            string          `json:"job"`
	Processor      string          `json:"processor"`
	Step           string          `json:"step"`
	Attempt        int             `json:"attempt"`
	MaxAttempts    int             `json:"maxAttempts"`
	Parameters     json.RawMessage `json:"parameters"`
	Connection     connInfo        `json:"connection"`
	Input          json.RawMessage `json:"input"`
	Preview        bool            `json:"preview"`
	IdempotencyKey string          `json:"idempotencyKey"`
}

type connInfo struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Settings map[string]any `json:"settings"`
}

// processorName is the name resolved by the registry, else derived from
// the run's job and step.
func processorName(ctx context.Context, run *processors.Run) string {
	if n := processors.ProcessorName(ctx); n != "" {
		return n
	}
	if run.Job == nil {
		return ""
	}
	if run.Step != "" {
		for _, st := range run.Job.Steps {
			if st.Name == run.Step {
				return st.Processor
			}
		}
	}
	return run.Job.Processor
}

func buildRequest(ctx context.Context, run *processors.Run) ([]byte, error) {
	params := run.Params
	if params == nil {
		params = definitions.Values{}
	}
	pj, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encode parameters: %w", err)
	}
	req := request{
		RunID:          run.ID,
		Processor:      processorName(ctx, run),
		Step:           run.Step,
		Attempt:        run.Attempt,
		MaxAttempts:    run.MaxAttempts,
		Parameters:     pj,
		Connection:     connInfo{Name: run.Connection.Name, Type: run.Connection.Type, Settings: run.Connection.Settings},
		Input:          run.Input,
		Preview:        run.Preview,
		IdempotencyKey: run.IdempotencyKey,
	}
	if run.Job != nil {
		req.Job = run.Job.Name
	}
	if len(bytes.TrimSpace(req.Input)) == 0 {
		req.Input = json.RawMessage("null")
	} else if !json.Valid(req.Input) {
		return nil, errors.New("encode request: input is not valid JSON")
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(b, '\n'), nil
}

// Process runs the connection's command once; see the package doc for the
// protocol and the errors returned.
func (p *Processor) Process(ctx context.Context, run *processors.Run) error {
	log := run.Log
	if log == nil {
		log = nopLogger{}
	}
	red := newRedactor(run.Connection.Secrets)

	set, err := parseSettings(run.Connection)
	if err != nil {
		return processors.Permanent(CodeConfig, fmt.Sprintf("exec connection %q: %s", run.Connection.Name, red.Redact(err.Error())))
	}
	name := set.argv[0]
	req, err := buildRequest(ctx, run)
	if err != nil {
		return fmt.Errorf("exec %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("exec %s: not started: %w", name, err)
	}

	res, err := p.run(ctx, set, req, run, log, red)
	if err != nil {
		return err
	}
	return p.interpret(run, set, res, log, red)
}

// result is what one execution of the command produced.
type result struct {
	state    *os.ProcessState
	stdout   []byte
	overflow bool // stdout exceeded the limit
	lastErr  string
	ctxErr   error
}

func (p *Processor) run(ctx context.Context, set *settings, req []byte, run *processors.Run, log processors.Logger, red *redactor) (*result, error) {
	name := set.argv[0]
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("exec %s: stdin pipe: %w", name, err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("exec %s: stdout pipe: %w", name, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("exec %s: stderr pipe: %w", name, err)
	}

	cmd := osexec.Command(set.argv[0], set.argv[1:]...)
	cmd.Dir = set.dir
	cmd.Env = set.env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		closeAll()
		msg := fmt.Sprintf("exec %s: start: %s", name, red.Redact(err.Error()))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, osexec.ErrNotFound) {
			return nil, processors.Permanent(CodeConfig, msg)
		}
		return nil, errors.New(msg)
	}
	// The child holds its ends now.
	_ = inR.Close()
	_ = outW.Close()
	_ = errW.Close()
	pgid := cmd.Process.Pid

	res := &result{}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // stdin
		defer wg.Done()
		_, _ = inW.Write(req) // EPIPE when the command does not read it: fine
		_ = inW.Close()
	}()
	go func() { // stdout
		defer wg.Done()
		res.stdout, res.overflow = readLimited(outR, p.maxStdout())
	}()
	go func() { // stderr
		defer wg.Done()
		res.lastErr = p.readStderr(errR, run, log, red)
	}()
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	kill := func(sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }
	select {
	case <-waitCh:
	case <-ctx.Done():
		select {
		case <-waitCh: // exited already: its own outcome counts
		default:
			res.ctxErr = ctx.Err()
			kill(syscall.SIGTERM)
			grace := time.NewTimer(set.killGrace)
			select {
			case <-waitCh:
				grace.Stop()
			case <-grace.C:
				kill(syscall.SIGKILL)
				<-waitCh
			}
		}
	}
	res.state = cmd.ProcessState
	// The leader is reaped; kill whatever it left in its group so that the
	// pipes close and nothing of the attempt outlives it.
	if syscall.Kill(-pgid, 0) == nil {
		kill(syscall.SIGKILL)
	}
	// Processes that left the group may still hold the pipes: wait a
	// little for EOF, then close our ends to unblock the readers.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drain := time.NewTimer(min(max(set.killGrace, 100*time.Millisecond), 2*time.Second))
	select {
	case <-done:
		drain.Stop()
	case <-drain.C:
		log.Warn("exec: command exited but its stdout/stderr stayed open; closing them")
		closeAll()
		<-done
	}
	closeAll()
	return res, nil
}

func (p *Processor) maxStdout() int {
	if p.MaxStdout > 0 {
		return p.MaxStdout
	}
	return DefaultMaxStdout
}

func (p *Processor) maxStderrLines() int {
	if p.MaxStderrLines > 0 {
		return p.MaxStderrLines
	}
	return DefaultMaxStderrLines
}

// readLimited reads r to EOF keeping at most limit bytes; overflow reports
// whether there was more (which is read and discarded so the writer never
// blocks).
func readLimited(r io.Reader, limit int) ([]byte, bool) {
	var buf bytes.Buffer
	n, _ := io.Copy(&buf, io.LimitReader(r, int64(limit)+1))
	if n <= int64(limit) {
		return buf.Bytes(), false
	}
	_, _ = io.Copy(io.Discard, r)
	return buf.Bytes()[:limit], true
}

// readStderr logs r line by line and returns the last non-empty line.
func (p *Processor) readStderr(r io.Reader, run *processors.Run, log processors.Logger, red *redactor) string {
	br := bufio.NewReaderSize(r, MaxLineBytes)
	maxLines := p.maxStderrLines()
	lines := 0
	last := ""
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Over-long line: keep its first MaxLineBytes, skip the rest.
			text := string(line) + " …[line truncated]"
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			line = []byte(text)
		}
		if len(line) > 0 {
			text := red.Redact(strings.TrimRight(string(line), "\r\n"))
			if strings.TrimSpace(text) != "" {
				if !directive(run, text) {
					last = stripLevel(text)
					lines++
					switch {
					case lines <= maxLines:
						logLine(log, text)
					case lines == maxLines+1:
						log.Warn(fmt.Sprintf("exec: stderr truncated after %d lines", maxLines))
					}
				}
			}
		}
		if err != nil {
			return last
		}
	}
}

// directive applies a "jobrunner:…" line and reports whether it was one.
func directive(run *processors.Run, line string) bool {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "jobrunner:")
	if !ok {
		return false
	}
	verb, arg, _ := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(strings.TrimSpace(arg), 10, 64)
	if err != nil {
		return false
	}
	switch verb {
	case "progress":
		run.SetProgress(int(min(max(n, 0), 100)))
	case "read":
		run.AddRead(n)
	case "changed":
		run.AddChanged(n)
	default:
		return false
	}
	return true
}

// stripLevel removes a level prefix for use in an error message.
func stripLevel(line string) string {
	for _, pre := range []string{"ERROR:", "WARNING:", "WARN:", "DEBUG:"} {
		if rest, ok := strings.CutPrefix(line, pre); ok {
			return strings.TrimSpace(rest)
		}
	}
	return strings.TrimSpace(line)
}

func logLine(log processors.Logger, line string) {
	for _, pre := range []struct {
		prefix string
		f      func(string, ...any)
	}{
		{"ERROR:", log.Error},
		{"WARNING:", log.Warn},
		{"WARN:", log.Warn},
		{"DEBUG:", log.Debug},
	} {
		if rest, ok := strings.CutPrefix(line, pre.prefix); ok {
			pre.f(strings.TrimSpace(rest))
			return
		}
	}
	log.Info(line)
}

// interpret turns the command's exit into the attempt's outcome.
func (p *Processor) interpret(run *processors.Run, set *settings, res *result, log processors.Logger, red *redactor) error {
	name := set.argv[0]
	if res.ctxErr != nil {
		return fmt.Errorf("exec %s: stopped (%s): %w", name, exitText(res.state), res.ctxErr)
	}
	ws, _ := res.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return fmt.Errorf("exec %s: %s%s", name, res.state.String(), suffix(res.lastErr))
	}
	code := res.state.ExitCode()
	out := bytes.TrimSpace(res.stdout)
	switch code {
	case 0:
		if res.overflow {
			return fmt.Errorf("exec %s: stdout exceeded the %d byte limit (starts with %q)", name, p.maxStdout(), red.Redact(head(out)))
		}
		if len(out) == 0 {
			run.SetResult(nil)
			return nil
		}
		if !json.Valid(out) {
			return fmt.Errorf("exec %s: exit status 0 but stdout was not JSON (starts with %q)", name, red.Redact(head(out)))
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, out); err != nil {
			return fmt.Errorf("exec %s: compact stdout: %w", name, err)
		}
		run.SetResult(json.RawMessage(compact.Bytes()))
		return nil
	case ExitPermanent:
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		if !res.overflow && len(out) > 0 {
			_ = json.Unmarshal(out, &body)
		}
		if body.Code == "" {
			body.Code = CodePermanent
		}
		if body.Message == "" {
			body.Message = res.lastErr
		}
		if body.Message == "" {
			body.Message = fmt.Sprintf("exec %s: exit status %d", name, code)
		}
		return processors.Permanent(body.Code, red.Redact(body.Message))
	case ExitTempFail:
		var body struct {
			RetryAfter json.RawMessage `json:"retryAfter"`
			Message    string          `json:"message"`
		}
		if !res.overflow && len(out) > 0 {
			_ = json.Unmarshal(out, &body)
		}
		after, err := parseRetryAfter(body.RetryAfter)
		if err != nil {
			log.Warn("exec: ignoring invalid retryAfter", "error", err.Error())
		}
		reason := body.Message
		if reason == "" {
			reason = res.lastErr
		}
		if reason == "" {
			reason = fmt.Sprintf("exec %s: exit status %d (EX_TEMPFAIL)", name, code)
		}
		return processors.RetryLater(after, red.Redact(reason))
	default:
		return fmt.Errorf("exec %s: exit status %d%s", name, code, suffix(res.lastErr))
	}
}

func parseRetryAfter(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			if secs, err2 := strconv.ParseFloat(s, 64); err2 == nil {
				d, err = time.Duration(secs*float64(time.Second)), nil
			}
		}
		if err != nil || d < 0 {
			return 0, fmt.Errorf("retryAfter %q is not a non-negative duration", s)
		}
		return d, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil || secs < 0 {
		return 0, fmt.Errorf("retryAfter %s is not a duration or a number of seconds", raw)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

func exitText(st *os.ProcessState) string {
	if st == nil {
		return "not exited"
	}
	return st.String()
}

func suffix(lastErr string) string {
	if lastErr == "" {
		return ""
	}
	return ": " + lastErr
}

func head(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// redactor is the shared secret-hiding rule set (processors.Redactor).
type redactor = processors.Redactor

func newRedactor(secrets map[string]string) *redactor { return processors.NewRedactor(secrets) }

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}
