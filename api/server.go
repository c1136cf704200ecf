package api

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/hooks"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/metrics"
	"github.com/jobrunner/jobrunner/processors"
	"github.com/jobrunner/jobrunner/streak"
)

// MaxBodyBytes caps every request body (JSON and forms); larger bodies are
// answered 413.
const MaxBodyBytes = 64 << 10

//go:embed openapi.yaml
var openAPIDoc []byte

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// OpenAPI returns the OpenAPI document the server serves at /openapi.yaml.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// Config configures New.
type Config struct {
	// Store keeps the runs. Required.
	Store *jobs.Store
	// Definitions returns the current definitions (they may be reloaded).
	// Required.
	Definitions func() *definitions.Set
	// Registry resolves processors, to refuse before storing anything a
	// run that cannot run (and to offer "preview" only where supported).
	// Nil skips that check.
	Registry *processors.Registry
	// Tokens are the API tokens. None: every request from a loopback peer
	// is served as the anonymous admin (the dashboard shows a "no
	// authentication" warning) and every other request is refused; use
	// CheckListen before listening.
	Tokens []Token
	// Wake is called after a run was enqueued, to wake local workers; may
	// be nil.
	Wake func()
	// Ready adds readiness checks of the caller (scheduler running, clock
	// skew) to /readyz; may be nil. Its error text is shown on /readyz.
	Ready func(ctx context.Context) error
	// Unrunnable, when set, lists the jobs this instance does not claim
	// and why (a missing secret, a processor not registered here); /readyz
	// shows them under "jobs" without failing readiness.
	// PausesChanged, when set, is called after a pause is set or lifted
	// here (jobs.Pool.PausesChanged), so that this instance's workers
	// respect it before their next claim.
	PausesChanged func()
	Unrunnable    func() map[string]string
	// Serves lists the connections and labels this instance serves
	// (serve --connections), shown on /readyz; empty: every connection.
	Serves []string
	// Log is the process log; nil discards.
	Log *logrus.Logger
	// Metrics are served at /metrics; nil serves 404 there.
	Metrics *metrics.Metrics
	// Demo shows a "DEMO ERP" banner on every dashboard page.
	Demo bool
	// Reload reloads the definitions (POST /api/v1/admin/reload, admin
	// role); nil answers 501.
	Reload func(ctx context.Context) error
	// Now returns the current time; nil means time.Now (tests).
	Now func() time.Time
	// Getenv reads the environment variables that hold hook secrets; nil
	// reads none (every hook then answers 503).
	Getenv func(string) string
	// HookStats counts hook calls; nil: the server's own.
	HookStats *hooks.Stats
}

// Server serves the HTTP API, the dashboard, /metrics, /healthz, /readyz
// and /openapi.yaml. Create it with New.
type Server struct {
	cfg      Config
	handler  http.Handler
	api      *http.ServeMux
	routes   []route
	pages    map[string]*template.Template
	sessions *sessionStore
	discard  *logrus.Logger
	// outage says a database outage once, then counts (see package streak).
	outage *streak.Logger
	// ownHookStats counts hook calls when Config.HookStats is nil.
	ownHookStats *hooks.Stats
}

// route is one non-dashboard route: the table the mux is built from and
// that the OpenAPI test compares with openapi.yaml.
type route struct {
	Method string
	Path   string
	// Role is the least role needed; 0 means no authentication.
	Role Role
	h    func(w http.ResponseWriter, r *http.Request, p principal) error
}

// New returns a Server for cfg. It returns an error when Store or
// Definitions is missing or a template does not parse.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.Definitions == nil {
		return nil, errors.New("api: Config.Definitions is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, sessions: newSessionStore(), discard: logrus.New(), ownHookStats: &hooks.Stats{}}
	s.discard.SetOutput(io.Discard)
	s.outage = streak.New(s.log(), "api: database access", logrus.WarnLevel, 0)
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s.pages = pages
	s.routes = []route{
		{http.MethodGet, "/api/v1/jobs", RoleViewer, s.listJobs},
		{http.MethodGet, "/api/v1/jobs/{name}", RoleViewer, s.getJob},
		{http.MethodPost, "/api/v1/jobs/{name}/runs", RoleOperator, s.triggerRun},
		{http.MethodPost, "/api/v1/jobs/{name}/runs:batch", RoleOperator, s.triggerBatch},
		{http.MethodGet, "/api/v1/runs", RoleViewer, s.listRuns},
		{http.MethodGet, "/api/v1/runs/{id}", RoleViewer, s.getRun},
		{http.MethodGet, "/api/v1/runs/{id}/logs", RoleViewer, s.runLogs},
		{http.MethodPost, "/api/v1/runs/{id}/cancel", RoleOperator, s.cancelRun},
		{http.MethodPost, "/api/v1/runs/{id}/retry", RoleOperator, s.retryRun},
		{http.MethodPost, "/api/v1/runs/bulk-retry", RoleOperator, s.bulkRetry},
		{http.MethodPost, "/api/v1/runs/bulk-cancel", RoleOperator, s.bulkCancel},
		{http.MethodPost, "/api/v1/admin/reload", RoleAdmin, s.reload},
		{http.MethodGet, "/api/v1/hooks", RoleViewer, s.listHooks},
		{http.MethodGet, "/api/v1/pauses", RoleViewer, s.listPauses},
		{http.MethodGet, "/api/v1/instances", RoleViewer, s.listInstances},
		{http.MethodGet, "/api/v1/overview", RoleViewer, s.getOverview},
		{http.MethodPost, "/api/v1/pauses", RoleOperator, s.createPause},
		{http.MethodDelete, "/api/v1/pauses/{kind}/{name}", RoleOperator, s.deletePause},
		{http.MethodPost, "/hooks/{name}", 0, s.hookCall},
		{http.MethodGet, "/healthz", 0, s.healthz},
		{http.MethodGet, "/readyz", 0, s.readyz},
		{http.MethodGet, "/metrics", RoleViewer, s.metrics},
		{http.MethodGet, "/openapi.yaml", 0, s.openapi},
		{http.MethodGet, "/api/v1/openapi.yaml", 0, s.openapi},
	}
	s.api = http.NewServeMux()
	for _, rt := range s.routes {
		s.api.Handle(rt.Method+" "+rt.Path, s.apiHandler(rt))
	}
	s.api.HandleFunc("/", s.apiFallback)

	root := http.NewServeMux()
	root.Handle("/api/", s.api)
	for _, rt := range s.routes {
		if !strings.HasPrefix(rt.Path, "/api/") {
			root.Handle(rt.Path, s.api)
		}
	}
	s.dashboardRoutes(root)
	s.handler = securityHeaders(root)
	return s, nil
}

// Handler returns the server's handler: mount it at "/" of an
// http.Server. It serves /api/v1/..., the dashboard at /, /metrics,
// /healthz, /readyz and /openapi.yaml.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) log() *logrus.Logger {
	if s.cfg.Log != nil {
		return s.cfg.Log
	}
	return s.discard
}

func (s *Server) defs() *definitions.Set {
	if set := s.cfg.Definitions(); set != nil {
		return set
	}
	return &definitions.Set{}
}

func (s *Server) wake() {
	if s.cfg.Wake != nil {
		s.cfg.Wake()
	}
}

// apiHandler authenticates and authorizes a request for rt, then runs its
// handler, writing a returned error in the API's error shape.
func (s *Server) apiHandler(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p principal
		if rt.Role > 0 {
			var err error
			if p, err = s.bearer(r); err != nil {
				s.writeError(w, r, err)
				return
			}
			if err := allow(p, rt.Role); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		// A caller's W3C traceparent (a no-op unless traces are on).
		r = r.WithContext(otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		if !isFollow(r) { // a followed log stream lasts as long as the run
			ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := rt.h(w, r, p); err != nil {
			s.writeError(w, r, err)
			return
		}
		if rt.Role > 0 { // the routes that use the database
			s.outage.OK()
		}
	})
}

// RequestTimeout bounds the database work of one API request or dashboard
// page (not of a followed log stream): a frozen database gets a 503 with
// Retry-After after this long, not a request that hangs with it.
const RequestTimeout = 5 * time.Second

// isFollow reports whether r asks to stream a run's logs.
func isFollow(r *http.Request) bool {
	b, err := strconv.ParseBool(r.URL.Query().Get("follow"))
	return err == nil && b
}

// apiFallback answers requests no API route matched: 405 (with Allow)
// when the path exists for other methods, 404 otherwise.
func (s *Server) apiFallback(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.api.Handler(probe); pattern != "" && pattern != "/" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		for _, m := range allowed {
			w.Header().Add("Allow", m)
		}
		s.writeError(w, r, errorf(KindMethodNotAllowed, "", "%s is not allowed here", r.Method))
		return
	}
	s.writeError(w, r, errorf(KindNotFound, "route_not_found", "no such API route"))
}

// securityHeaders sets headers every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ principal) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(openAPIDoc)
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request, _ principal) error {
	if s.cfg.Metrics == nil {
		return errorf(KindNotFound, "metrics_disabled", "metrics are not enabled")
	}
	s.cfg.Metrics.Handler().ServeHTTP(w, r)
	return nil
}

// staticFiles serves the embedded static folder.
func staticFiles() http.Handler {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err) // the embedded folder exists: compile-time guarantee
	}
	return http.StripPrefix("/static/", http.FileServerFS(sub))
}
