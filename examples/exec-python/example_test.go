package execpython_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/cli"
)

const key = "py-key-CANARY-0d4f"

type run struct {
	Status    string            `json:"status"`
	ErrorCode string            `json:"errorCode"`
	Result    map[string]string `json:"result"`
	Progress  int               `json:"progress"`
}

// TestGreetInPython runs the README's commands: the stock CLI, the example's
// definitions, the script behind an exec connection.
func TestGreetInPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 is required in CI: %v", err)
		}
		t.Skipf("python3 not on PATH (%v); CI does not skip", err)
	}
	t.Chdir("../..") // the README's commands run from the repository root
	t.Setenv("GREETER_KEY", key)
	db := filepath.Join(t.TempDir(), "x.db")
	jobrunner := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), append([]string{"--db", "sqlite:" + db, "--definitions", "examples/exec-python/definitions"}, args...),
			cli.Options{Stdout: &stdout, Stderr: &stderr})
		require.NotContains(t, stdout.String()+stderr.String(), key, "the secret is never printed")
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := jobrunner("run", "Greet", "--param", "Name=Ada", "--json")
	require.Equal(t, 0, code, "stdout: %s\nstderr: %s", out, errOut)
	var r run
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, "succeeded", r.Status)
	require.Equal(t, 100, r.Progress, "the jobrunner:progress directive")
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte("Hello, Ada!"))
	require.Equal(t, map[string]string{"text": "Hello, Ada!", "signature": hex.EncodeToString(mac.Sum(nil))}, r.Result,
		"the same result as the Go greeter: setting from stdin, secret from JOBRUNNER_SECRET_KEY")

	code, out, errOut = jobrunner("runs", "logs", "1", "--json")
	require.Equal(t, 0, code, errOut)
	var logs []struct{ Level, Message string }
	require.NoError(t, json.Unmarshal([]byte(out), &logs))
	levels := map[string]string{}
	for _, l := range logs {
		levels[l.Message] = l.Level
		require.NotContains(t, l.Message, "jobrunner:progress", "directives are not logged")
	}
	require.Equal(t, "info", levels["greeted Ada"])
	require.Equal(t, "debug", levels["attempt 1 of 1, run 1"], "a DEBUG: line is stored at debug level without its prefix")

	code, out, errOut = jobrunner("run", "Greet", "--param", "Name=nobody", "--json")
	require.Equal(t, 1, code, "stdout: %s\nstderr: %s", out, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, "failed", r.Status)
	require.Equal(t, "UNKNOWN_PERSON", r.ErrorCode, "exit 3 with {code}: a permanent failure with the script's code")

	code, _, errOut = jobrunner("run", "Greet")
	require.Equal(t, 2, code)
	require.Equal(t, "jobrunner: parameter Name: required\n", errOut)

	stored, err := os.ReadFile(db)
	require.NoError(t, err)
	require.Contains(t, string(stored), "Hello, Ada!")
	require.NotContains(t, string(stored), key)
}
