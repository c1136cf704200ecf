// Package e2e holds end-to-end tests of the jobrunner binary: several
// `jobrunner serve` processes (built once by TestMain) share one real
// MariaDB/MySQL database (a fresh one per test, from jobstest), and the
// tests prove what the serve issue promises from the outside — exactly one
// run per schedule tick across instances, rescue of a run whose process was
// killed with SIGKILL, no lost or duplicated run across a database outage,
// 10,000 concurrent API triggers each executed once, and graceful release
// at shutdown. External witnesses (an exec command appending to a file, the
// demo ERP counting cancel calls) check that each run was executed exactly
// once, not only that the database says so.
//
// The package has no non-test code. Run it with `go test ./e2e/...`; it
// needs a MySQL/MariaDB server (JOBRUNNER_TEST_MYSQL_DSN, default
// mysql://root@127.0.0.1:3306/test) and, for the outage test, the
// mariadb-install-db and mariadbd programs to start a private server.
package e2e
