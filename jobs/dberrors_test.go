package jobs_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/jobs/jobstest"
)

// mysqlAdmin opens the test server as its admin user, or skips where the
// MySQL tests skip (never in CI).
func mysqlAdmin(t *testing.T) (*sql.DB, *jobs.DSN) {
	t.Helper()
	dsn := jobstest.DSN(t, "mysql") // skips or fails like every MySQL test
	d, err := jobs.ParseDSN(dsn)
	require.NoError(t, err)
	admin := d.MySQL.Clone()
	admin.Params = nil
	db, err := sql.Open("mysql", admin.FormatDSN())
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db, d
}

func TestOpenWaitFailsFastOnPermanentRefusals(t *testing.T) {
	t.Parallel()
	_, d := mysqlAdmin(t)
	host := d.MySQL.Addr
	cases := []struct{ dsn, want string }{
		{fmt.Sprintf("mysql://root@%s/jr_no_such_database_x", host), "create the database"},
		{fmt.Sprintf("mysql://jr_nobody:wrong-secret-pw@%s/%s", host, d.MySQL.DBName), "check the DSN's user and password"},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		_, err := jobs.OpenWait(ctx, tc.dsn, jobs.OpenOptions{}, nil)
		cancel()
		require.ErrorIs(t, err, jobs.ErrDatabaseRefused, tc.dsn)
		require.Contains(t, err.Error(), tc.want)
		require.NotContains(t, err.Error(), "wrong-secret-pw", "the password is not printed")
		require.Less(t, time.Since(start), 10*time.Second, "no retrying for minutes")
	}
}

// TestReadOnlyDatabaseIsNamed: a server in read_only mode refuses the
// write check by name. (The account must lack SUPER, which bypasses
// read_only; the global flag is restored at once.)
func TestReadOnlyDatabaseIsNamed(t *testing.T) {
	admin, d := mysqlAdmin(t)
	db := d.MySQL.DBName
	user := "jr_ro_" + strings.TrimPrefix(db, "jrtest_")
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw'", user),
		fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY 'pw'", user),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'%%'", db, user),
		fmt.Sprintf("GRANT ALL ON %s.* TO '%s'@'localhost'", db, user),
	} {
		_, err := admin.Exec(q)
		require.NoError(t, err, q)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(fmt.Sprintf("DROP USER '%s'@'%%'", user))
		_, _ = admin.Exec(fmt.Sprintf("DROP USER '%s'@'localhost'", user))
	})
	ctx := context.Background()
	s, err := jobs.Open(ctx, fmt.Sprintf("mysql://%s:pw@%s/%s", user, d.MySQL.Addr, db), jobs.OpenOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.CheckWritable(ctx))

	_, err = admin.Exec("SET GLOBAL read_only = 1")
	require.NoError(t, err)
	err = s.CheckWritable(ctx)
	_, rerr := admin.Exec("SET GLOBAL read_only = 0")
	require.NoError(t, rerr)
	require.ErrorIs(t, err, jobs.ErrReadOnly)
	require.True(t, jobs.IsReadOnly(err))
	require.Contains(t, err.Error(), "read-only")
	require.NoError(t, s.CheckWritable(ctx))
}
