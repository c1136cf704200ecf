package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/jobrunner/jobrunner/cli"
)

// need returns the path of a tool the test needs; outside CI a missing
// tool skips the test, in CI it fails it (scripts/test installs them).
func need(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI (scripts/test installs it): %v", name, err)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

func run(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestImage builds the image offline and checks it: non-root, a
// healthcheck, and a binary that runs (`jobrunner version`, a time zone
// without /usr/share/zoneinfo). Where the sandbox forbids starting
// containers, the binary is run from the image's exported filesystem.
func TestImage(t *testing.T) {
	podman := need(t, "podman")
	tag := "localhost/jobrunner:test-" + strings.ReplaceAll(t.Name(), "/", "-")
	out, err := run(t, "..", "./scripts/image", tag)
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _, _ = run(t, "", podman, "rmi", "-f", tag) })

	user, err := run(t, "", podman, "image", "inspect", "--format", "{{.Config.User}}", tag)
	require.NoError(t, err, user)
	require.Equal(t, "65532:65532", strings.TrimSpace(user), "the image runs as a non-root user")
	hc, err := run(t, "", podman, "image", "inspect", "--format", "{{json .Config.Healthcheck}}", tag)
	require.NoError(t, err, hc)
	require.Contains(t, hc, "healthcheck", "HEALTHCHECK runs jobrunner healthcheck")

	version, err := run(t, "", podman, "run", "--rm", tag, "version")
	if err != nil && strings.Contains(version, "permission") {
		// No containers here: check the image's filesystem instead.
		t.Logf("cannot start containers here (%s); running the binary from the exported image", strings.TrimSpace(version))
		cid, err := run(t, "", podman, "create", tag)
		require.NoError(t, err, cid)
		cid = strings.TrimSpace(cid)
		t.Cleanup(func() { _, _ = run(t, "", podman, "rm", "-f", cid) })
		dir := t.TempDir()
		tarPath := filepath.Join(dir, "fs.tar")
		out, err := run(t, "", podman, "export", "-o", tarPath, cid)
		require.NoError(t, err, out)
		root := filepath.Join(dir, "root")
		require.NoError(t, os.MkdirAll(root, 0o755))
		out, err = run(t, "", "tar", "-xf", tarPath, "-C", root)
		require.NoError(t, err, out)
		require.FileExists(t, filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), "CA certificates are in the image")
		bin := filepath.Join(root, "usr/local/bin/jobrunner")
		version, err = run(t, "", bin, "version")
		require.NoError(t, err, version)
		cmd := exec.Command(bin, "schedule", "next", "0 9 * * *", "--tz", "Europe/Amsterdam", "--count", "1")
		cmd.Env = []string{"ZONEINFO=/nonexistent"}
		tz, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", tz)
		require.Contains(t, string(tz), ":00:00", "time zones work from the binary alone")
	} else {
		require.NoError(t, err, version)
	}
	require.True(t, strings.HasPrefix(version, "jobrunner "), version)
	require.Contains(t, version, "revision:", "the image's binary carries its VCS revision")
}

// TestSystemdUnit checks the unit with systemd-analyze verify (no
// warnings) and its hardening and stop timing.
func TestSystemdUnit(t *testing.T) {
	analyze := need(t, "systemd-analyze")
	unit, err := os.ReadFile("systemd/jobrunner.service")
	require.NoError(t, err)
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "Restart=on-failure", "TimeoutStopSec=45s", "--grace 30s"} {
		require.Contains(t, string(unit), want)
	}
	// verify checks that ExecStart's binary exists: point it at one.
	dir := t.TempDir()
	bin := filepath.Join(dir, "jobrunner")
	require.NoError(t, os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755))
	path := filepath.Join(dir, "jobrunner.service")
	require.NoError(t, os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/jobrunner"), []byte(bin)), 0o644))
	out, err := run(t, "", analyze, "verify", "--man=no", path)
	require.NoError(t, err, out)
	require.Empty(t, strings.TrimSpace(out), "systemd-analyze verify warns")
}

// TestComposeFile checks the compose file's shape and that every
// jobrunner command in it is one the CLI accepts.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	require.Contains(t, doc.Services, "mariadb")
	require.Contains(t, doc.Services, "erp")
	require.Contains(t, doc.Services, "jobrunner-1")
	require.Contains(t, doc.Services, "jobrunner-2")
	for name, s := range doc.Services {
		if !strings.Contains(s.Image, "jobrunner") {
			continue
		}
		require.NotEmpty(t, s.Command, name)
		var stdout, stderr bytes.Buffer
		code := cli.Main(context.Background(), append(append([]string{}, s.Command[0]), "--help"), cli.Options{Stdout: &stdout, Stderr: &stderr})
		require.Equal(t, 0, code, "%s: jobrunner %s: %s", name, s.Command[0], stderr.String())
	}
	require.Equal(t, doc.Services["jobrunner-1"].Environment["JOBRUNNER_DB"], doc.Services["jobrunner-2"].Environment["JOBRUNNER_DB"], "both instances share one database")
}
