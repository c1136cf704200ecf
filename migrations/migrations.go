// Package migrations owns the database schema: versioned SQL migrations for
// MySQL/MariaDB and SQLite, embedded in the binary, and [Apply], which brings
// a database up to the latest version and records each applied version in
// the schema_migrations table.
//
// Migrations are numbered files (NNNN_name.sql) per dialect; the same number
// must exist for both dialects. Applying is idempotent: versions already
// recorded are skipped, and each file is written so that re-running it after
// a crash half-way (MySQL DDL is not transactional) succeeds. On MySQL
// concurrent Apply calls from several instances are serialised with
// GET_LOCK.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

//go:embed mysql/*.sql sqlite/*.sql
var files embed.FS

// Dialects.
const (
	MySQL  = "mysql"
	SQLite = "sqlite"
)

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// List returns the migrations of dialect in version order. It returns an
// error for an unknown dialect or a badly named file.
func List(dialect string) ([]Migration, error) {
	if dialect != MySQL && dialect != SQLite {
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	entries, err := fs.ReadDir(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", dialect, err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: bad file name %s/%s (want NNNN_name.sql)", dialect, name)
		}
		b, err := files.ReadFile(path.Join(dialect, name))
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Latest returns the highest migration version (the same for every dialect).
func Latest() int {
	ms, err := List(SQLite)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Current returns the highest applied version, 0 when none (or no
// schema_migrations table yet).
func Current(ctx context.Context, db *gorm.DB) (int, error) {
	if !db.Migrator().HasTable("schema_migrations") {
		return 0, nil
	}
	var v *int
	if err := db.WithContext(ctx).Raw("SELECT MAX(version) FROM schema_migrations").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("migrations: read current version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// Apply applies every migration newer than the database's version, in
// order, and returns the versions it applied (none when up to date).
func Apply(ctx context.Context, db *gorm.DB, dialect string) ([]int, error) {
	ms, err := List(dialect)
	if err != nil {
		return nil, err
	}
	var applied []int
	err = db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if dialect == MySQL {
			var got *int
			if err := conn.Raw("SELECT GET_LOCK('jobrunner_migrate', 60)").Scan(&got).Error; err != nil {
				return fmt.Errorf("migrations: take lock: %w", err)
			}
			if got == nil || *got != 1 {
				return fmt.Errorf("migrations: another instance holds the migration lock for over 60s")
			}
			defer conn.Exec("SELECT RELEASE_LOCK('jobrunner_migrate')")
		}
		create := `CREATE TABLE IF NOT EXISTS schema_migrations (version INT NOT NULL PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at DATETIME(6) NOT NULL)`
		if dialect == SQLite {
			create = `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at DATETIME NOT NULL)`
		}
		if err := conn.Exec(create).Error; err != nil {
			return fmt.Errorf("migrations: create schema_migrations: %w", err)
		}
		cur, err := Current(ctx, conn)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Version <= cur {
				continue
			}
			for _, stmt := range Statements(m.SQL) {
				if err := conn.Exec(stmt).Error; err != nil {
					if !rerunColumn(stmt, err) && !rerunDropIndex(stmt, err) {
						return fmt.Errorf("migrations: apply %04d_%s: %w", m.Version, m.Name, err)
					}
					conn.Error = nil // the handle keeps the error otherwise
				}
			}
			if err := conn.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, time.Now().UTC()).Error; err != nil {
				return fmt.Errorf("migrations: record %04d_%s: %w", m.Version, m.Name, err)
			}
			applied = append(applied, m.Version)
		}
		return nil
	})
	return applied, err
}

// Statements splits a migration file into statements: it drops "--" comment
// lines and splits on ";" at the end of a line.
func Statements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(t, ";") {
			s := strings.TrimSuffix(strings.TrimSpace(cur.String()), ";")
			out = append(out, s)
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// rerunDropIndex reports a DROP INDEX that failed because the index is
// gone: the migration ran this far before a crash (MySQL has no DROP INDEX
// IF EXISTS; error 1091 "Can't DROP …; check that column/key exists").
func rerunDropIndex(stmt string, err error) bool {
	return strings.Contains(strings.ToUpper(stmt), "DROP INDEX") &&
		strings.Contains(strings.ToLower(err.Error()), "check that")
}

// rerunColumn reports an ADD COLUMN that failed because the column is
// there: the migration ran this far before a crash (MySQL has no ADD
// COLUMN IF NOT EXISTS; MySQL error 1060, SQLite "duplicate column name").
func rerunColumn(stmt string, err error) bool {
	return strings.Contains(strings.ToUpper(stmt), "ADD COLUMN") &&
		strings.Contains(strings.ToLower(err.Error()), "duplicate column name")
}
