package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver
	"github.com/stretchr/testify/require"
)

// privateMariaDB is a MariaDB server of the test's own (its own datadir and
// port), so that a test can stop and restart it without disturbing the
// shared server other packages' tests use.
type privateMariaDB struct {
	t       *testing.T
	bin     string
	dir     string
	port    int
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	// args are extra server options (replication, semi-sync); with
	// logBin the server writes a binary log (default --skip-log-bin).
	args   []string
	logBin bool
}

// findProgram looks name up in PATH and in /usr/sbin (not always in PATH).
func findProgram(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin"} {
			p := filepath.Join(d, n)
			if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return p
			}
		}
	}
	return ""
}

// newPrivateMariaDB installs a fresh MariaDB datadir (not started). Without
// the MariaDB programs the test fails in CI and is skipped elsewhere.
func newPrivateMariaDB(t *testing.T) *privateMariaDB {
	t.Helper()
	install := findProgram("mariadb-install-db", "mysql_install_db")
	server := findProgram("mariadbd", "mysqld")
	if install == "" || server == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("the outage tests need mariadb-install-db and mariadbd (found %q, %q)", install, server)
		}
		t.Skipf("mariadb-install-db / mariadbd not installed (found %q, %q)", install, server)
	}
	// Not t.TempDir: the socket path must stay under ~100 bytes.
	dir, err := os.MkdirTemp("", "jr-mariadb-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	u, err := user.Current()
	require.NoError(t, err)
	m := &privateMariaDB{t: t, bin: server, dir: dir, logPath: filepath.Join(dir, "mariadbd.log")}
	out, err := exec.Command(install, "--no-defaults", "--datadir="+filepath.Join(dir, "data"), "--user="+u.Username,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	require.NoError(t, err, "mariadb-install-db: %s", out)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	_, _ = fmt.Sscan(port, &m.port)
	t.Cleanup(func() {
		m.kill()
		if t.Failed() {
			b, _ := os.ReadFile(m.logPath)
			t.Logf("==== private mariadbd log ====\n%s", b)
		}
	})
	return m
}

// dsn returns the jobrunner DSN of database db on this server.
func (m *privateMariaDB) dsn(db string) string {
	return fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", m.port, db)
}

// start starts mariadbd on the datadir and port and waits until it answers.
func (m *privateMariaDB) start() {
	t := m.t
	t.Helper()
	require.True(t, m.cmd == nil || m.exited(), "mariadbd already running")
	u, err := user.Current()
	require.NoError(t, err)
	f, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	defer f.Close()
	cmd := exec.Command(m.bin, "--no-defaults",
		"--datadir="+filepath.Join(m.dir, "data"),
		"--socket="+filepath.Join(m.dir, "s.sock"),
		"--pid-file="+filepath.Join(m.dir, "mariadbd.pid"),
		"--tmpdir="+m.dir,
		fmt.Sprintf("--port=%d", m.port), "--bind-address=127.0.0.1", "--skip-networking=0",
		"--user="+u.Username,
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
		"--max-connections=200", "--skip-name-resolve")
	if m.logBin {
		cmd.Args = append(cmd.Args, "--log-bin="+filepath.Join(m.dir, "data", "binlog"), "--binlog-format=ROW")
	} else {
		cmd.Args = append(cmd.Args, "--skip-log-bin")
	}
	cmd.Args = append(cmd.Args, m.args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	m.cmd, m.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(m.done) }()

	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	require.NoError(t, err)
	defer db.Close()
	eventually(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		if m.exited() {
			b, _ := os.ReadFile(m.logPath)
			t.Fatalf("mariadbd exited at start-up:\n%s", b)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return db.PingContext(ctx) == nil, "the private mariadbd to accept connections"
	})
}

// stop sends SIGTERM and waits for mariadbd to exit.
func (m *privateMariaDB) stop() {
	m.t.Helper()
	require.NoError(m.t, m.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-m.done:
	case <-time.After(60 * time.Second):
		m.t.Fatal("mariadbd did not stop within 60s of SIGTERM")
	}
}

func (m *privateMariaDB) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func (m *privateMariaDB) kill() {
	if m.cmd != nil && !m.exited() {
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.done
	}
}

// createDatabase creates database name on the running server.
func (m *privateMariaDB) createDatabase(name string) {
	m.t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	require.NoError(m.t, err)
	defer db.Close()
	_, err = db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	require.NoError(m.t, err)
}

// exec runs statements on the server as root (directly, not through a
// test's switch).
func (m *privateMariaDB) exec(stmts ...string) {
	m.t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	require.NoError(m.t, err)
	defer db.Close()
	for _, q := range stmts {
		_, err = db.Exec(q)
		require.NoError(m.t, err, q)
	}
}

// query returns the first column of the first row of q, as text.
func (m *privateMariaDB) query(q string, args ...any) string {
	m.t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.port))
	require.NoError(m.t, err)
	defer db.Close()
	var v sql.NullString
	require.NoError(m.t, db.QueryRow(q, args...).Scan(&v), q)
	return v.String
}

// countLines counts the lines of s that contain every one of subs.
func countLines(s string, subs ...string) int {
	n := 0
lines:
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if !strings.Contains(l, sub) {
				continue lines
			}
		}
		n++
	}
	return n
}
