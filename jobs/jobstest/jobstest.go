// Package jobstest gives tests an isolated, migrated run store: a SQLite
// file in t.TempDir, or a fresh database on the MySQL/MariaDB server named
// by JOBRUNNER_TEST_MYSQL_DSN (dropped when the test ends), as River's
// rivertest does for its schemas.
//
// With CI set, a missing or unreachable MySQL fails the test; it never
// skips. Outside CI, MySQL defaults to mysql://root@127.0.0.1:3306/test and
// tests skip their MySQL half when no server answers.
package jobstest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers the "mysql" driver

	"github.com/jobrunner/jobrunner/jobs"
)

// Dialects lists the store kinds For iterates over.
var Dialects = []string{"sqlite", "mysql"}

// For runs fn as a subtest against a fresh store of each dialect.
func For(t *testing.T, fn func(t *testing.T, s *jobs.Store)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh migrated store of dialect "sqlite" or "mysql",
// closed (and for MySQL dropped) when the test ends.
func Open(t testing.TB, dialect string) *jobs.Store {
	t.Helper()
	dsn := DSN(t, dialect)
	s, err := jobs.Open(context.Background(), dsn, jobs.OpenOptions{})
	if err != nil {
		t.Fatalf("jobstest: open %s: %v", jobs.RedactDSN(dsn), err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// DSN returns the DSN of a fresh, empty database of dialect (not yet
// migrated), removed when the test ends.
func DSN(t testing.TB, dialect string) string {
	t.Helper()
	switch dialect {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "jobrunner.db")
	case "mysql":
		return mysqlDatabase(t)
	}
	t.Fatalf("jobstest: unknown dialect %q", dialect)
	return ""
}

// ServerDSN returns the MySQL server DSN tests use.
func ServerDSN() string {
	if v := os.Getenv("JOBRUNNER_TEST_MYSQL_DSN"); v != "" {
		return v
	}
	return "mysql://root@127.0.0.1:3306/test"
}

func mysqlDatabase(t testing.TB) string {
	base := ServerDSN()
	d, err := jobs.ParseDSN(base)
	if err != nil || d.MySQL == nil {
		t.Fatalf("jobstest: JOBRUNNER_TEST_MYSQL_DSN: want mysql://user:pass@host:port/db")
	}
	admin := d.MySQL.Clone()
	admin.DBName = ""
	admin.Params = nil
	db, err := sql.Open("mysql", admin.FormatDSN())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" || os.Getenv("JOBRUNNER_TEST_MYSQL_DSN") != "" {
			t.Fatalf("jobstest: MySQL at %s is required: %v", d, err)
		}
		t.Skipf("jobstest: no MySQL at %s (set JOBRUNNER_TEST_MYSQL_DSN): %v", d, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "jrtest_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("jobstest: create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name)
		_ = db.Close()
	})
	cfg := d.MySQL.Clone()
	cfg.DBName = name
	u := url.URL{Scheme: "mysql", User: url.UserPassword(cfg.User, cfg.Passwd), Host: cfg.Addr, Path: "/" + name}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	return u.String()
}
