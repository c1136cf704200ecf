package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/jobrunner/jobrunner/migrations"
)

// DefaultDSN is the embedded default database: a SQLite file in the working
// directory.
const DefaultDSN = "sqlite:jobrunner.db"

// ErrBadDSN is returned by ParseDSN for a DSN it cannot use.
var ErrBadDSN = errors.New("jobs: bad database DSN")

// DSN is a parsed database address.
type DSN struct {
	// Dialect is migrations.MySQL or migrations.SQLite.
	Dialect string
	// Path is the SQLite file (SQLite only).
	Path string
	// MySQL is the driver configuration (MySQL only).
	MySQL *gomysql.Config
}

// ParseDSN parses "sqlite:PATH" or "mysql://user:pass@host:port/db?opts".
// The returned error never contains the password.
func ParseDSN(s string) (*DSN, error) {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(s, "sqlite:"), "//")
		if p == "" {
			return nil, fmt.Errorf("%w: sqlite DSN needs a path (sqlite:jobrunner.db)", ErrBadDSN)
		}
		return &DSN{Dialect: migrations.SQLite, Path: p}, nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: mysql DSN is not a URL (want mysql://user:pass@host:port/db)", ErrBadDSN)
		}
		cfg := gomysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		if u.Port() == "" {
			cfg.Addr = u.Hostname() + ":3306"
		}
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		if cfg.DBName == "" || strings.Contains(cfg.DBName, "/") {
			return nil, fmt.Errorf("%w: mysql DSN needs a database name (mysql://user@host:3306/db)", ErrBadDSN)
		}
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		cfg.RejectReadOnly = true
		cfg.ClientFoundRows = true
		cfg.InterpolateParams = true
		cfg.Timeout = 5 * time.Second
		cfg.Params = map[string]string{"time_zone": "'+00:00'"}
		for k, v := range u.Query() {
			cfg.Params[k] = v[0]
		}
		return &DSN{Dialect: migrations.MySQL, MySQL: cfg}, nil
	default:
		return nil, fmt.Errorf("%w: want sqlite:PATH or mysql://user:pass@host:port/db", ErrBadDSN)
	}
}

// String returns the DSN without its password: "sqlite:PATH" or
// "mysql://user@host:port/db".
func (d *DSN) String() string {
	if d.Dialect == migrations.SQLite {
		return "sqlite:" + d.Path
	}
	user := d.MySQL.User
	if user != "" {
		user += "@"
	}
	return "mysql://" + user + d.MySQL.Addr + "/" + d.MySQL.DBName
}

// RedactDSN returns s with any password removed, for logs and errors. An
// unparsable DSN prints as "(invalid DSN)".
func RedactDSN(s string) string {
	d, err := ParseDSN(s)
	if err != nil {
		return "(invalid DSN)"
	}
	return d.String()
}

// OpenOptions tune Open.
type OpenOptions struct {
	// MaxOpenConns caps MySQL connections; default 20.
	MaxOpenConns int
	// NoMigrate skips applying migrations.
	NoMigrate bool
}

// Open connects to the database of dsn ("sqlite:PATH" or "mysql://…"),
// applies pending migrations unless opts.NoMigrate, and returns a Store.
// On MySQL it refuses a server where SELECT … FOR UPDATE SKIP LOCKED is
// missing. Errors never contain the DSN's password.
func Open(ctx context.Context, dsn string, opts OpenOptions) (*Store, error) {
	d, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
		TranslateError:         true,
	}
	var db *gorm.DB
	switch d.Dialect {
	case migrations.SQLite:
		if dir := filepath.Dir(d.Path); d.Path != ":memory:" {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return nil, fmt.Errorf("%w: %s: the directory %s does not exist (create it, or choose another --db path)", ErrBadDSN, d, dir)
			}
		}
		db, err = gorm.Open(sqlite.Open(d.Path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"), cfg)
		if err != nil {
			return nil, fmt.Errorf("jobs: open %s: %w", d, err)
		}
		sqlDB, _ := db.DB()
		sqlDB.SetMaxOpenConns(1)
	case migrations.MySQL:
		db, err = openMySQL(ctx, d, cfg)
		if err != nil {
			return nil, err
		}
		sqlDB, _ := db.DB()
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxLifetime(3 * time.Minute)
	}
	s := &Store{db: db, dialect: d.Dialect, dsn: d}
	if !opts.NoMigrate {
		if err := s.Migrate(ctx); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if v, err := migrations.Current(ctx, db); err == nil && v > migrations.Latest() {
		_ = s.Close()
		return nil, fmt.Errorf("jobs: open %s: %w: schema version %d, this jobrunner knows %d (upgrade it)", d, ErrSchemaNewer, v, migrations.Latest())
	}
	return s, nil
}

// ErrSchemaNewer is returned by Open for a database that a newer jobrunner
// migrated: this one would not write what the newer schema relies on (the
// key rows of migration 0010, say), so it refuses to run against it.
var ErrSchemaNewer = errors.New("the database schema is newer than this jobrunner")

// openMySQL opens MySQL with READ COMMITTED sessions. MariaDB before 11.1
// names the variable tx_isolation, MySQL 8 transaction_isolation: try one,
// then the other.
func openMySQL(ctx context.Context, d *DSN, cfg *gorm.Config) (*gorm.DB, error) {
	var lastErr error
	for _, v := range []string{"transaction_isolation", "tx_isolation"} {
		c := d.MySQL.Clone()
		if _, set := c.Params["transaction_isolation"]; !set {
			if _, set := c.Params["tx_isolation"]; !set {
				c.Params[v] = "'READ-COMMITTED'"
			}
		}
		db, err := gorm.Open(mysql.New(mysql.Config{DSNConfig: c}), cfg)
		if err == nil {
			sqlDB, _ := db.DB()
			if err = sqlDB.PingContext(ctx); err == nil {
				return db, nil
			}
			_ = sqlDB.Close()
		}
		lastErr = err
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1193 { // unknown system variable
			break
		}
	}
	var me *gomysql.MySQLError
	if errors.As(lastErr, &me) {
		if hint, ok := permanentHints[me.Number]; ok {
			return nil, fmt.Errorf("jobs: connect to %s: %w: %s (%s)", d, ErrDatabaseRefused, redactErr(lastErr, d), hint)
		}
	}
	return nil, fmt.Errorf("jobs: connect to %s: %s", d, redactErr(lastErr, d))
}

// ErrDatabaseRefused: the server answered and refused the connection for
// a reason waiting will not fix (wrong user or password, unknown
// database): OpenWait fails at once instead of retrying.
var ErrDatabaseRefused = errors.New("the database refused the connection")

// permanentHints are the MySQL/MariaDB errors of a connection attempt
// that retrying cannot fix, with what to do.
var permanentHints = map[uint16]string{
	1044: "the user may not use this database: GRANT it the database's privileges",
	1045: "check the DSN's user and password",
	1049: "create the database (CREATE DATABASE …) or fix the DSN's database name",
	1698: "check the DSN's user and password (this account may only log in through a local socket)",
	1227: "the user lacks a privilege the connection needs",
}

// isDeadlock reports MySQL's deadlock (1213) or lock wait timeout (1205),
// after which the transaction may simply run again.
func isDeadlock(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// ErrReadOnly: the database accepts connections but refuses writes
// (read_only / innodb_read_only: MySQL errors 1290, 1836), as a replica
// or a primary being failed over does.
var ErrReadOnly = errors.New("the database is read-only")

// IsReadOnly reports whether err is a write refused by a read-only
// server (MySQL errors 1290, 1836), or ErrReadOnly.
func IsReadOnly(err error) bool {
	if errors.Is(err, ErrReadOnly) {
		return true
	}
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1290 || me.Number == 1836)
}

// CheckWritable proves the database accepts writes without changing
// anything: an UPDATE that matches no row, rolled back. A read-only
// server refuses it (error 1290 or 1836) and CheckWritable returns an
// error wrapping ErrReadOnly with the server's message. SQLite: nil.
func (s *Store) CheckWritable(ctx context.Context) error {
	if s.dialect != migrations.MySQL {
		return nil
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("UPDATE job_state SET value = value WHERE 1 = 0").Error; err != nil {
			return err
		}
		return errRollback
	})
	switch {
	case errors.Is(err, errRollback):
		return nil
	case IsReadOnly(err):
		return fmt.Errorf("jobs: %s: %w (%s): point the DSN at the primary", s.dsn, ErrReadOnly, redactErr(err, s.dsn))
	}
	// The driver's RejectReadOnly (set so that a failover reconnects to the
	// new primary) turns error 1290 into "bad connection": ask the server.
	var ro struct{ ReadOnly, InnodbReadOnly int }
	if qerr := s.db.WithContext(ctx).Raw("SELECT @@global.read_only AS read_only, @@global.innodb_read_only AS innodb_read_only").Scan(&ro).Error; qerr == nil &&
		(ro.ReadOnly != 0 || ro.InnodbReadOnly != 0) {
		return fmt.Errorf("jobs: %s: %w (read_only=%d, innodb_read_only=%d; writes fail with error 1290/1836): point the DSN at the primary",
			s.dsn, ErrReadOnly, ro.ReadOnly, ro.InnodbReadOnly)
	}
	return fmt.Errorf("jobs: write check on %s: %s", s.dsn, redactErr(err, s.dsn))
}

var errRollback = errors.New("rollback")

// redactErr returns err's text with the DSN password removed.
func redactErr(err error, d *DSN) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if d != nil && d.MySQL != nil && d.MySQL.Passwd != "" {
		msg = strings.ReplaceAll(msg, d.MySQL.Passwd, "***")
	}
	return msg
}
