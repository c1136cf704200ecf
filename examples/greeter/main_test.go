package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/cli"
)

const key = "greeter-key-CANARY-5c1e"

// greeter runs the program's CLI in this process against db, as main does,
// and returns its exit code, stdout and stderr.
func greeter(t *testing.T, db string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts := options()
	opts.Stdout, opts.Stderr = &stdout, &stderr
	code := cli.Main(context.Background(), append([]string{"--db", "sqlite:" + db}, args...), opts)
	return code, stdout.String(), stderr.String()
}

type run struct {
	ID        int64             `json:"id"`
	Job       string            `json:"job"`
	Status    string            `json:"status"`
	ErrorCode string            `json:"errorCode"`
	Params    map[string]string `json:"parameters"`
	Result    map[string]string `json:"result"`
	Attempts  []struct {
		Status string `json:"status"`
	} `json:"attempts"`
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(s), &v), "not JSON: %s", s)
	return v
}

func signature(text string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(text))
	return hex.EncodeToString(mac.Sum(nil))
}

// TestGreet runs the embedded Greet definition with the program's own
// processor through the whole CLI: a success with its result and logs, a
// permanent failure, bad input, and the secret kept out of every output and
// of the database.
func TestGreet(t *testing.T) {
	t.Setenv("GREETER_KEY", key) // cli.Main reads the process environment: not parallel
	db := filepath.Join(t.TempDir(), "x.db")
	var outputs []string

	code, out, errOut := greeter(t, db, "run", "Greet", "--param", "Name=Ada", "--json")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	r := decode[run](t, out)
	require.Equal(t, "Greet", r.Job)
	require.Equal(t, "succeeded", r.Status)
	require.Equal(t, map[string]string{"Name": "Ada"}, r.Params)
	require.Equal(t, map[string]string{"text": "Hello, Ada!", "signature": signature("Hello, Ada!")}, r.Result,
		"the greeting from the connection's settings, signed with the key from GREETER_KEY")
	require.Len(t, r.Attempts, 1)
	require.Equal(t, "succeeded", r.Attempts[0].Status)

	code, out, errOut = greeter(t, db, "runs", "logs", "1", "--json")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	var greeted bool
	for _, l := range decode[[]struct {
		Level, Message string
		Fields         map[string]string
	}](t, out) {
		if l.Message == "greeted Ada" {
			greeted = true
			require.Equal(t, "info", l.Level)
			require.Equal(t, map[string]string{"text": "Hello, Ada!"}, l.Fields)
		}
	}
	require.True(t, greeted, "the processor's log line is stored with the run: %s", out)

	// A permanent failure: exit 1, the processor's code recorded, one attempt.
	code, out, errOut = greeter(t, db, "run", "Greet", "--param", "Name=nobody", "--json")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
	r = decode[run](t, out)
	require.Equal(t, "failed", r.Status)
	require.Equal(t, "UNKNOWN_PERSON", r.ErrorCode)
	require.Len(t, r.Attempts, 1)

	// Bad input: exit 2, one line naming the parameter, nothing recorded.
	code, out, errOut = greeter(t, db, "run", "Greet")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 2, code)
	require.Equal(t, "jobrunner: parameter Name: required\n", errOut)
	code, out, errOut = greeter(t, db, "run", "Gret", "--param", "Name=Ada")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `unknown job "Gret"`)

	code, out, errOut = greeter(t, db, "runs", "list", "--json")
	outputs = append(outputs, out, errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	runs := decode[[]run](t, out)
	require.Len(t, runs, 2, "bad input records no run")
	require.Equal(t, []string{"failed", "succeeded"}, []string{runs[0].Status, runs[1].Status})

	for _, o := range outputs {
		require.NotContains(t, o, key)
	}
	data, err := os.ReadFile(db)
	require.NoError(t, err)
	require.NotContains(t, string(data), key, "the secret is not stored")
	require.Contains(t, string(data), "Hello, Ada!", "the database file holds the runs (sanity check of the grep)")
}

func TestGreetWithoutSecret(t *testing.T) {
	t.Setenv("GREETER_KEY", "")
	db := filepath.Join(t.TempDir(), "x.db")
	code, _, errOut := greeter(t, db, "run", "Greet", "--param", "Name=Ada", "--json")
	require.Equal(t, 2, code, "refused before anything is recorded: %s", errOut)
	require.Contains(t, errOut, "GREETER_KEY is not set", "names the variable, never a value")
	code, out, errOut := greeter(t, db, "runs", "list", "--json")
	require.Equal(t, 0, code, "stderr: %s", errOut)
	require.Equal(t, "[]\n", out, "no run was recorded")
}

// TestBinary builds the program and runs it as a user would: the exit
// codes are the process's.
func TestBinary(t *testing.T) {
	t.Parallel()
	gotool, err := exec.LookPath("go")
	require.NoError(t, err, "the go tool is needed to build the example")
	dir := t.TempDir()
	bin := filepath.Join(dir, "greeter")
	build := exec.Command(gotool, "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	env := append(os.Environ(), "GREETER_KEY="+key, "JOBRUNNER_DB=sqlite:"+filepath.Join(dir, "x.db"))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "Greet", "--param", "Name=Ada"}, 0, "Hello, Ada!"},
		{[]string{"run", "Greet", "--param", "Name=nobody"}, 1, "UNKNOWN_PERSON: there is nobody to greet"},
		{[]string{"run", "Greet", "--param", "Nme=Ada"}, 2, "Nme"},
		{[]string{"definitions", "list"}, 0, "Greet"},
		{[]string{"runs", "list", "--job", "Greet", "--status", "succeeded"}, 0, "Ada"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else {
			require.NoError(t, err)
		}
		require.Equal(t, tc.code, code, "%v\nstdout: %s\nstderr: %s", tc.args, stdout.String(), stderr.String())
		require.Contains(t, stdout.String()+stderr.String(), tc.want, "%v", tc.args)
		require.NotContains(t, stdout.String()+stderr.String(), key)
	}
}
