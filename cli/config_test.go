package cli_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigFilePrecedenceAndSources(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "jobrunner.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`
db: mysql://jr:topsecret-pw@db.internal:3306/jobrunner
log-level: warn
serve:
  workers: 32
  grace: 45s
  lease-ttl: 20s
`), 0o644))
	t.Setenv("JOBRUNNER_SERVE_GRACE", "10s") // env beats the file
	r := jobrunner(t, "--config", cfg, "config", "serve", "--json", "--log-level", "error")
	require.Equal(t, 0, r.code, "%s", r)
	rows := decodeJSON[[]struct{ Key, Value, Env, Source string }](t, r.stdout)
	got := map[string][2]string{}
	for _, row := range rows {
		got[row.Key] = [2]string{row.Value, row.Source}
	}
	require.Equal(t, [2]string{"32", "file " + cfg}, got["serve.workers"])
	require.Equal(t, [2]string{"10s", "env"}, got["serve.grace"], "environment over file")
	require.Equal(t, [2]string{"error", "flag"}, got["log-level"], "flag over file")
	require.Equal(t, [2]string{"20s", "file " + cfg}, got["serve.lease-ttl"])
	require.Equal(t, [2]string{"1s", "default"}, got["serve.poll"])
	require.Equal(t, "mysql://jr@db.internal:3306/jobrunner", got["db"][0], "the password is masked")
	require.NotContains(t, r.stdout, "topsecret-pw")

	// Unknown keys and bad values are refused with the file's name.
	require.NoError(t, os.WriteFile(cfg, []byte("serve:\n  workrs: 3\n"), 0o644))
	r = jobrunner(t, "--config", cfg, "config")
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stderr, "unknown settings serve.workrs")
	require.NoError(t, os.WriteFile(cfg, []byte("serve:\n  workers: many\n"), 0o644))
	r = jobrunner(t, "--config", cfg, "config")
	require.Equal(t, 2, r.code, "%s", r)
	require.Contains(t, r.stderr, cfg+": serve.workers")
}

func TestConfigFileDrivesARealCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "from-config.db")
	cfg := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("db: sqlite:"+db+"\n"), 0o644))
	t.Setenv("JOBRUNNER_CONFIG", cfg)
	r := jobrunner(t, "run", "Noop")
	require.Equal(t, 0, r.code, "%s", r)
	require.FileExists(t, db, "the database named in the file was used")
}
