package api

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/migrations"
)

// ReadyTimeout bounds the readiness checks together.
const ReadyTimeout = 2 * time.Second

// check is one readiness check's outcome.
type check struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
}

// healthz answers 200 while the process serves HTTP; it checks nothing
// else.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ principal) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// readyz answers 200 when the database answers, its schema is at the
// latest migration and Config.Ready (if any) passes; 503 with
// Retry-After and the failing checks otherwise. Database errors are
// logged, not shown.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ principal) error {
	checks := map[string]check{}
	ready := true
	// One deadline for all the checks: a frozen database makes /readyz
	// answer 503 within ReadyTimeout, not a multiple of it.
	all, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	run := func(name string, f func(ctx context.Context) check) {
		// A check runs in its own goroutine so that a call that ignores
		// its context (the MySQL driver's handshake with a frozen server)
		// cannot hold the answer past the deadline.
		done := make(chan check, 1)
		go func() { done <- f(all) }()
		var c check
		select {
		case c = <-done:
		case <-all.Done():
			c = check{Message: "no answer within " + ReadyTimeout.String()}
		}
		checks[name] = c
		ready = ready && c.OK
	}
	run("database", func(ctx context.Context) check {
		if err := s.cfg.Store.Ping(ctx); err != nil {
			s.log().WithError(err).Warn("readyz: database unreachable")
			return check{Message: "unreachable"}
		}
		if err := s.cfg.Store.CheckWritable(ctx); err != nil {
			if jobs.IsReadOnly(err) {
				s.log().WithError(err).Warn("readyz: the database is read-only")
				return check{Message: "read-only: it refuses writes (MySQL error 1290/1836); point the DSN at the primary"}
			}
			s.log().WithError(err).Warn("readyz: database write check failed")
			return check{Message: "unreachable"}
		}
		return check{OK: true}
	})
	run("migrations", func(ctx context.Context) check {
		cur, err := migrations.Current(ctx, s.cfg.Store.DB())
		if err != nil {
			s.log().WithError(err).Warn("readyz: cannot read the schema version")
			return check{Message: "cannot read the schema version"}
		}
		if latest := migrations.Latest(); cur != latest {
			return check{Message: "schema version " + strconv.Itoa(cur) + ", want " + strconv.Itoa(latest) + ": run jobrunner migrate"}
		}
		return check{OK: true}
	})
	if s.cfg.Ready != nil {
		run("serve", func(ctx context.Context) check {
			if err := s.cfg.Ready(ctx); err != nil {
				return check{Message: err.Error()}
			}
			return check{OK: true}
		})
	}
	if s.cfg.Unrunnable != nil {
		if un := s.cfg.Unrunnable(); len(un) > 0 {
			names := make([]string, 0, len(un))
			for n := range un {
				names = append(names, n)
			}
			sort.Strings(names)
			parts := make([]string, len(names))
			for i, n := range names {
				parts[i] = n + ": " + un[n]
			}
			checks["jobs"] = check{OK: true, Message: "not run by this instance (another may): " + strings.Join(parts, "; ")}
		} else {
			checks["jobs"] = check{OK: true}
		}
	}
	if len(s.cfg.Serves) > 0 {
		checks["connections"] = check{OK: true, Message: "serves only " + strings.Join(s.cfg.Serves, ", ")}
	}
	status, code := "ready", http.StatusOK
	if !ready {
		status, code = "not_ready", http.StatusServiceUnavailable
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": checks, "version": buildinfo.Read().Short()})
	return nil
}
