package api

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/jobrunner/jobrunner/buildinfo"
	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/jobs"
	"github.com/jobrunner/jobrunner/notify"
)

// Dashboard cookies.
const (
	sessionCookie = "jobrunner_session"
	loginCookie   = "jobrunner_login"
)

// loginTokenRE matches a login CSRF token as renderLogin makes them.
var loginTokenRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// runPageLogLines is how many log lines the run page shows (the logs page
// pages through all of them).
const runPageLogLines = 200

// liveLogLines caps the lines one live poll returns.
const liveLogLines = 500

// dashboardRoutes registers the dashboard's pages on mux.
func (s *Server) dashboardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.Handle("POST /logout", s.page(RoleViewer, s.logout))
	mux.Handle("GET /{$}", s.page(RoleViewer, s.jobsPage))
	mux.Handle("POST /jobs/{name}/run", s.page(RoleOperator, s.jobRunSubmit))
	mux.Handle("POST /pause", s.page(RoleOperator, s.pauseSubmit))
	mux.Handle("POST /resume", s.page(RoleOperator, s.resumeSubmit))
	mux.Handle("GET /runs", s.page(RoleViewer, s.runsPage))
	mux.Handle("POST /runs/bulk-retry", s.page(RoleOperator, s.runsBulkRetry))
	mux.Handle("GET /runs/{id}", s.page(RoleViewer, s.runPage))
	mux.Handle("GET /hooks", s.page(RoleViewer, s.hooksPage))
	mux.Handle("GET /instances", s.page(RoleViewer, s.instancesPage))
	mux.Handle("GET /overview", s.page(RoleViewer, s.overviewPage))
	mux.Handle("GET /runs/{id}/logs", s.page(RoleViewer, s.logsPage))
	mux.Handle("GET /runs/{id}/live", s.page(RoleViewer, s.runLive))
	mux.Handle("POST /runs/{id}/cancel", s.page(RoleOperator, s.runCancelSubmit))
	mux.Handle("POST /runs/{id}/retry", s.page(RoleOperator, s.runRetrySubmit))
	mux.Handle("GET /static/", staticFiles())
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("/", s.page(RoleViewer, func(http.ResponseWriter, *http.Request, *session) error {
		return errorf(KindNotFound, "", "no such page")
	}))
}

// pageData is what every dashboard template gets.
type pageData struct {
	Title  string
	Active string // nav entry
	Who    *principal
	CSRF   string
	Demo   bool
	NoAuth bool
	// Notice and Error are banners.
	Notice string
	Error  string
	Data   any
	// Version is the build (footer).
	Version string
}

var templateFuncs = template.FuncMap{
	"changedERP": changedERP,
	"pct":        func(f float64) string { return fmt.Sprintf("%.1f %%", f*100) },
	"ts": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"dur":   fmtDuration,
	"final": func(st jobs.Status) bool { return st.Final() },
	"inc":   func(i int) int { return i + 1 },
	"stepDur": func(st jobs.RunStep) string {
		if st.StartedAt == nil || st.FinishedAt == nil {
			return ""
		}
		return fmtDuration(st.FinishedAt.Sub(*st.StartedAt))
	},
	"role": func(p *principal, role string) bool { r, _ := ParseRole(role); return p != nil && p.Role >= r },
}

// fmtDuration formats d for people: "850ms", "12.3s", "4m05s", "2h03m".
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return ""
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

var pageNames = []string{"login", "jobs", "runs", "run", "logs", "error", "hooks", "instances", "overview"}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS,
			"templates/layout.html", "templates/forms.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("api: dashboard template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a dashboard page. It renders into a buffer first so that a
// template error becomes a clean 500.
func (s *Server) render(w http.ResponseWriter, status int, name string, d pageData) {
	d.Demo = s.cfg.Demo
	d.NoAuth = s.noAuth()
	d.Version = buildinfo.Read().Short()
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, d); err != nil {
		s.log().WithError(err).Errorf("dashboard: render %s", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError renders an error page for err.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	e := asError(err)
	switch {
	case e.Kind == KindUnavailable:
		s.outage.Fail(e.Err, logrus.Fields{"path": r.URL.Path, "answer": e.Error()})
	case e.Status() >= 500:
		s.log().WithError(e.Err).WithField("path", r.URL.Path).Warnf("dashboard: %s", e.Error())
	}
	if e.Status() == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	d := pageData{Title: http.StatusText(e.Status()), Error: e.Message, Data: e.Status()}
	if sess != nil {
		d.Who, d.CSRF = &sess.who, sess.csrf
	}
	s.render(w, e.Status(), "error", d)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// sessionOf returns the request's live session, if any.
func (s *Server) sessionOf(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	return s.sessions.get(c.Value, s.cfg.Now())
}

// page wraps a dashboard handler: it finds the session (creating an
// anonymous one in no-token mode for loopback peers), redirects to the
// login page without one, checks the role, and for POSTs parses the form
// (at most MaxBodyBytes), checks the CSRF token and the Origin header.
func (s *Server) page(role Role, h func(http.ResponseWriter, *http.Request, *session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.sessionOf(r)
		if !ok {
			switch {
			case s.noAuth() && fromLoopback(r):
				sess = s.sessions.create(principal{Name: anonymousName, Role: RoleAdmin, Anonymous: true}, s.cfg.Now())
				setCookie(w, r, sessionCookie, sess.id, int(SessionTTL.Seconds()))
			case s.noAuth():
				s.renderError(w, r, nil, errorf(KindUnauthenticated, "", "no API tokens are configured: the dashboard is served to this machine (loopback) only"))
				return
			case r.Method == http.MethodGet || r.Method == http.MethodHead:
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			default:
				s.renderError(w, r, nil, errorf(KindUnauthenticated, "", "your session has expired: log in again"))
				return
			}
		}
		if err := allow(sess.who, role); err != nil {
			s.renderError(w, r, sess, err)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkForm(w, r, sess.csrf); err != nil {
				s.renderError(w, r, sess, err)
				return
			}
		}
		if !strings.HasSuffix(r.URL.Path, "/live") { // the live stream lasts as long as the run
			ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := h(w, r, sess); err != nil {
			s.renderError(w, r, sess, err)
		}
	})
}

// checkForm parses a POSTed form and checks its CSRF token against want
// (constant time) and, when the browser sent one, its Origin against the
// request's host.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, want string) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return asError(mb)
		}
		return &Error{Kind: KindInvalid, Message: "cannot read the form", Err: err}
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return errorf(KindForbidden, "bad_origin", "cross-site form submission refused")
		}
	}
	got := r.PostForm.Get("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errorf(KindForbidden, "bad_csrf", "the form's CSRF token is missing or stale: reload the page and try again")
	}
	return nil
}

// safeNext returns next when it is a local path, "/" otherwise.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

type loginData struct {
	Next string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.noAuth() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if _, ok := s.sessionOf(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

// renderLogin renders the login form with a login CSRF token
// (double-submit: the same value in an HttpOnly cookie and the form). The
// browser's existing token is kept, so that another tab or a background
// request (favicon) rendering the login page does not invalidate a form
// already shown.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	csrf := randomID(32)
	if c, err := r.Cookie(loginCookie); err == nil && loginTokenRE.MatchString(c.Value) {
		csrf = c.Value
	}
	setCookie(w, r, loginCookie, csrf, 600)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	s.render(w, status, "login", pageData{Title: "Log in", CSRF: csrf, Error: msg, Data: loginData{Next: safeNext(next)}})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if s.noAuth() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	c, err := r.Cookie(loginCookie)
	want := ""
	if err == nil {
		want = c.Value
	}
	if err := s.checkForm(w, r, want); err != nil {
		e := asError(err)
		if e.Kind == KindForbidden {
			s.renderLogin(w, r, http.StatusForbidden, "The login form expired: try again.")
			return
		}
		s.renderError(w, r, nil, e)
		return
	}
	t, ok := s.match(strings.TrimSpace(r.PostForm.Get("token")))
	if !ok {
		s.log().WithField("remote", r.RemoteAddr).Warn("dashboard: login with an unknown token")
		s.renderLogin(w, r, http.StatusUnauthorized, "Unknown token.")
		return
	}
	sess := s.sessions.create(principal{Name: t.Name, Role: t.Role}, s.cfg.Now())
	setCookie(w, r, sessionCookie, sess.id, int(SessionTTL.Seconds()))
	setCookie(w, r, loginCookie, "", -1)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *session) error {
	s.sessions.delete(sess.id)
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

// formField is one input of a "Run now" (or retry) form.
type formField struct {
	Name        string // form field name: "p." + parameter name
	ID          string // element id, unique on the page
	Param       string
	Label       string
	Description string
	ParamType   string
	Input       string // text, number, date, datetime-local, checkbox, select
	Required    bool
	Value       string
	Checked     bool
	Options     []formOption
	Error       string
	Min, Max    string
	MaxLength   int
}

type formOption struct {
	Value    string
	Selected bool
}

// runForm is a "Run now" form of one job.
type runForm struct {
	Job            jobView
	Fields         []formField
	Preview        bool // offered
	PreviewChecked bool
	Idem           string
	Error          string
}

const datetimeLocal = "2006-01-02T15:04:05"

// formFields builds the inputs of j's parameters with values (text, as
// ParseParams takes them; nil: the defaults) and per-parameter errors.
func formFields(j *definitions.Job, values map[string]string, errs map[string]string) []formField {
	out := make([]formField, 0, len(j.Parameters))
	for _, p := range j.Parameters {
		f := formField{Name: "p." + p.Name, ID: "f-" + j.Name + "-" + p.Name, Param: p.Name, Label: p.Prompt, Description: p.Description,
			ParamType: string(p.Type), Required: p.Required, Error: errs[p.Name]}
		if f.Label == "" {
			f.Label = p.Name
		}
		v, ok := values[p.Name]
		if values == nil || !ok {
			v = ""
			if p.Default != nil {
				v = *p.Default
			}
		}
		switch p.Type {
		case definitions.TypeInt:
			f.Input = "number"
			if p.Min != nil {
				f.Min = *p.Min
			}
			if p.Max != nil {
				f.Max = *p.Max
			}
		case definitions.TypeDecimal:
			f.Input = "text"
		case definitions.TypeBool:
			f.Input = "checkbox"
			b, err := strconv.ParseBool(strings.ToLower(v))
			f.Checked = err == nil && b || strings.EqualFold(v, "yes")
		case definitions.TypeDate:
			f.Input = "date"
		case definitions.TypeDateTime:
			f.Input = "datetime-local"
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				v = t.UTC().Format(datetimeLocal)
			}
		case definitions.TypeEnum:
			f.Input = "select"
			if !p.Required && p.Default == nil {
				f.Options = append(f.Options, formOption{Value: "", Selected: v == ""})
			}
			for _, ev := range p.Values {
				f.Options = append(f.Options, formOption{Value: ev, Selected: ev == v})
			}
		default:
			f.Input = "text"
			if p.Max != nil {
				f.MaxLength, _ = strconv.Atoi(*p.Max)
			}
		}
		f.Value = v
		out = append(out, f)
	}
	return out
}

// formParams reads j's parameters from a posted form ("p.NAME" fields) as
// text for ParseParams: a checkbox posts a hidden "false" before its
// "true", so the last value wins; a datetime-local value (no zone) is
// taken as UTC.
func formParams(j *definitions.Job, form url.Values) map[string]string {
	out := map[string]string{}
	for _, p := range j.Parameters {
		vals := form["p."+p.Name]
		if len(vals) == 0 {
			continue
		}
		v := vals[len(vals)-1]
		if p.Type == definitions.TypeDateTime && v != "" {
			for _, layout := range []string{"2006-01-02T15:04", datetimeLocal, "2006-01-02T15:04:05.999999999"} {
				if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
					v = t.Format(time.RFC3339Nano)
					break
				}
			}
		}
		out[p.Name] = v
	}
	return out
}

type jobsData struct {
	Jobs        []runForm
	CanRun      bool
	Connections []connView
}

// connView is a connection on the jobs page: paused (by whom, until),
// in a maintenance window.
type connView struct {
	Name, Type string
	Paused     *jobs.Pause
	Window     *definitions.WindowHit
}

// jobsPageData builds the jobs page; failed holds the form of a failed
// submission (its job's form shows its values and errors).
func (s *Server) jobsPageData(ctx context.Context, sess *session, failed *runForm) pageData {
	d := pageData{Title: "Jobs", Active: "jobs", Who: &sess.who, CSRF: sess.csrf}
	set := s.defs()
	names := make([]string, 0, len(set.Jobs))
	for _, j := range set.Jobs {
		names = append(names, j.Name)
	}
	latest, err := s.cfg.Store.LatestByJob(ctx, names)
	if err != nil {
		s.log().WithError(err).Warn("dashboard: cannot read last runs")
		d.Error = "The database is unavailable: last runs are not shown and runs cannot be started now."
	}
	now := s.cfg.Now()
	held := s.heldJobs(ctx)
	data := jobsData{CanRun: sess.who.Role >= RoleOperator}
	paused := map[string]*jobs.Pause{}
	if ps, err := s.cfg.Store.Pauses(ctx); err == nil {
		for i := range ps {
			if ps[i].Kind == jobs.PauseConnection {
				paused[ps[i].Name] = &ps[i]
			}
		}
	}
	for _, c := range set.Connections {
		cv := connView{Name: c.Name, Type: c.Type, Paused: paused[c.Name]}
		if hit, in := c.InMaintenance(now); in {
			cv.Window = &hit
		}
		data.Connections = append(data.Connections, cv)
	}
	for _, j := range set.Jobs {
		var last *jobs.Run
		if r, ok := latest[j.Name]; ok {
			last = &r
		}
		if failed != nil && failed.Job.Name == j.Name {
			failed.Job = s.viewJob(j, last, now, held)
			data.Jobs = append(data.Jobs, *failed)
			continue
		}
		v := s.viewJob(j, last, now, held)
		data.Jobs = append(data.Jobs, runForm{Job: v, Fields: formFields(j, nil, nil), Preview: v.Preview, Idem: randomID(16)})
	}
	d.Data = data
	return d
}

// hooksPage lists the inbound hooks with this instance's counts and last
// calls.
func (s *Server) hooksPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	d := pageData{Title: "Hooks", Active: "hooks", Who: &sess.who, CSRF: sess.csrf, Data: s.hookViews()}
	s.render(w, http.StatusOK, "hooks", d)
	return nil
}

// overviewJob is one job on the overview page: its figures and the bars
// of its 24-hour chart (server-rendered SVG).
type overviewJob struct {
	jobs.JobOverview
	Bars                                  []overviewBar
	Finished, Max                         int
	SucceededRuns, WarnedRuns, FailedRuns int
}

type overviewBar struct {
	X                    int
	Succeeded, Failed, O int // heights in px
	YS, YF, YO           int
	Title                string
}

// overviewChartHeight is the chart's bar area height in px.
const overviewChartHeight = 40

func overviewJobs(ov []jobs.JobOverview) []overviewJob {
	out := make([]overviewJob, len(ov))
	for i, o := range ov {
		oj := overviewJob{JobOverview: o}
		for _, h := range o.Hours {
			oj.Max = max(oj.Max, h.Succeeded+h.Failed+h.Other)
		}
		oj.SucceededRuns, oj.WarnedRuns, oj.FailedRuns = o.Counts[jobs.StatusSucceeded], o.Counts[jobs.StatusSucceededWithWarnings], o.Counts[jobs.StatusFailed]
		oj.Finished = oj.SucceededRuns + oj.WarnedRuns + oj.FailedRuns
		for k, h := range o.Hours {
			b := overviewBar{X: k * 10, Title: fmt.Sprintf("%s: %d succeeded, %d failed, %d other", h.Hour.Format("2006-01-02 15:00Z"), h.Succeeded, h.Failed, h.Other)}
			if oj.Max > 0 {
				scale := func(n int) int {
					if n == 0 {
						return 0
					}
					return max(1, n*overviewChartHeight/oj.Max)
				}
				b.Succeeded, b.Failed, b.O = scale(h.Succeeded), scale(h.Failed), scale(h.Other)
			}
			b.YS = overviewChartHeight - b.Succeeded
			b.YF = b.YS - b.Failed
			b.YO = b.YF - b.O
			oj.Bars = append(oj.Bars, b)
		}
		out[i] = oj
	}
	return out
}

// overviewPage shows, per job, the last 24 hours and the queue now.
func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	ov, err := s.overview(r)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, "overview", pageData{Title: "Overview", Active: "overview", Who: &sess.who, CSRF: sess.csrf, Data: overviewJobs(ov)})
	return nil
}

// instancesPage lists the serve instances on this database.
func (s *Server) instancesPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	ins, err := s.cfg.Store.Instances(r.Context())
	if err != nil {
		return storeError(err)
	}
	s.render(w, http.StatusOK, "instances", pageData{Title: "Instances", Active: "instances", Who: &sess.who, CSRF: sess.csrf, Data: ins})
	return nil
}

func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	s.render(w, http.StatusOK, "jobs", s.jobsPageData(r.Context(), sess, nil))
	return nil
}

func (s *Server) jobRunSubmit(w http.ResponseWriter, r *http.Request, sess *session) error {
	j, err := s.job(r)
	if err != nil {
		return err
	}
	text := formParams(j, r.PostForm)
	preview := r.PostForm.Get("preview") == "true"
	idem := r.PostForm.Get("idem")
	fail := func(e *Error) error {
		form := &runForm{Fields: formFields(j, text, e.Fields), Preview: s.supportsPreview(j), PreviewChecked: preview, Idem: randomID(16), Error: e.Message}
		form.Job.Name = j.Name
		d := s.jobsPageData(r.Context(), sess, form)
		if e.Status() == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		}
		s.render(w, e.Status(), "jobs", d)
		return nil
	}
	params, err := parseText(j, text, nil)
	if err != nil {
		return fail(asError(err))
	}
	var at time.Time
	if v := strings.TrimSpace(r.PostForm.Get("runAt")); v != "" {
		// datetime-local has no zone: the form says UTC.
		var perr error
		if at, perr = time.ParseInLocation("2006-01-02T15:04:05", v, time.UTC); perr != nil {
			if at, perr = time.ParseInLocation("2006-01-02T15:04", v, time.UTC); perr != nil {
				return fail(&Error{Kind: KindInvalid, Code: "bad_run_at", Message: "Run at: want a date and time", Fields: map[string]string{"runAt": "want a date and time"}})
			}
		}
	}
	key := ""
	if idem != "" {
		key = "ui:" + idem
	}
	e, err := s.enqueue(r.Context(), j, params, key, preview, sess.who.viaDashboard(), at)
	if err != nil {
		return fail(asError(err))
	}
	target := "/runs/" + strconv.FormatInt(e.Run.ID, 10)
	if !e.Created {
		target += "?existing=" + url.QueryEscape(e.Reason)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// runsBulkRetry retries the failed runs the runs page's filter matches,
// once each, when the confirmed count is still the count.
func (s *Server) runsBulkRetry(w http.ResponseWriter, r *http.Request, sess *session) error {
	raw, err := url.ParseQuery(r.PostForm.Get("query"))
	if err != nil {
		return &Error{Kind: KindInvalid, Code: "bad_query", Message: "malformed filter"}
	}
	q, data := runsFilterForm(raw)
	if data.Status != string(jobs.StatusFailed) || data.Job == "" {
		return errorf(KindInvalid, "filter_required", "a bulk retry needs a job and status failed")
	}
	f, err := runFilter(q)
	if err != nil {
		return err
	}
	f.BeforeID, f.Limit = 0, 0
	confirm, _ := strconv.Atoi(r.PostForm.Get("confirm"))
	res, err := s.runBulk(r.Context(), "retry", f, &confirm, sess.who.viaDashboard().who()+" (bulk retry)")
	if err != nil {
		return err
	}
	back := url.Values{"job": {data.Job}, "bulk": {"retried"}, "n": {strconv.Itoa(res.Done)}, "already": {strconv.Itoa(res.Already)}}
	http.Redirect(w, r, "/runs?"+back.Encode(), http.StatusSeeOther)
	return nil
}

type runsData struct {
	Runs       []runRow
	Active     bool
	Jobs       []string
	Statuses   []jobs.Status
	ParamNames []string
	// Filter values as typed.
	Job, Status, Param, Value, Since, Until string
	NextURL                                 string
	// BulkCount is how many failed runs the filter matches, offered for a
	// bulk retry (operators, status failed, a job chosen); BulkQuery the
	// filter to send back with the confirmation.
	BulkCount int
	BulkQuery string
}

type runRow struct {
	jobs.Run
	Duration string
	Params   string
}

// runsFilterForm converts the runs page's form to an API filter query.
func runsFilterForm(q url.Values) (url.Values, runsData) {
	d := runsData{Job: q.Get("job"), Status: q.Get("status"), Param: q.Get("param"), Value: q.Get("value"),
		Since: q.Get("since"), Until: q.Get("until")}
	if d.Param == "" {
		d.Param = "OrderNumber"
	}
	api := url.Values{}
	for k, v := range map[string]string{"job": d.Job, "status": d.Status, "cursor": q.Get("cursor")} {
		if v != "" {
			api.Set(k, v)
		}
	}
	if d.Value != "" {
		api.Set("param."+d.Param, d.Value)
	}
	for k, v := range map[string]string{"since": d.Since, "until": d.Until} {
		if v == "" {
			continue
		}
		if t, err := time.ParseInLocation("2006-01-02T15:04", v, time.UTC); err == nil {
			v = t.Format(time.RFC3339)
		}
		api.Set(k, v)
	}
	return api, d
}

func paramSummary(p jobs.JSONText) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(p), &m); err != nil || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func runDuration(r *jobs.Run, now time.Time) string {
	if r.StartedAt == nil {
		return ""
	}
	end := now
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	return fmtDuration(end.Sub(*r.StartedAt))
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	raw, err := query(r)
	if err != nil {
		return err
	}
	q, data := runsFilterForm(raw)
	d := pageData{Title: "Runs", Active: "runs", Who: &sess.who, CSRF: sess.csrf}
	set := s.defs()
	names := map[string]bool{}
	for _, j := range set.Jobs {
		data.Jobs = append(data.Jobs, j.Name)
		for _, p := range j.Parameters {
			names[p.Name] = true
		}
	}
	names["OrderNumber"] = true
	for n := range names {
		data.ParamNames = append(data.ParamNames, n)
	}
	sort.Strings(data.ParamNames)
	data.Statuses = jobs.Statuses
	status := http.StatusOK
	f, err := runFilter(q)
	if err == nil && sess.who.Role >= RoleOperator && data.Status == string(jobs.StatusFailed) && data.Job != "" {
		bf := f
		bf.BeforeID, bf.Limit = 0, 0
		if dry, derr := s.cfg.Store.BulkRetry(r.Context(), set, bf, "", true); derr == nil && dry.Matched > 0 {
			data.BulkCount = dry.Matched
			bq := url.Values{}
			for k, v := range raw {
				if k != "cursor" && k != "bulk" && k != "n" && k != "already" {
					bq[k] = v
				}
			}
			data.BulkQuery = bq.Encode()
		}
	}
	if n, _ := strconv.Atoi(raw.Get("n")); raw.Get("bulk") == "retried" {
		already, _ := strconv.Atoi(raw.Get("already"))
		d.Notice = fmt.Sprintf("Retried %d runs (%d had been retried by an earlier bulk retry).", n, already)
	}
	if err == nil {
		var runs []jobs.Run
		var next string
		runs, next, err = s.listPage(r.Context(), f)
		now := s.cfg.Now()
		for _, run := range runs {
			data.Runs = append(data.Runs, runRow{Run: run, Duration: runDuration(&run, now), Params: paramSummary(run.Parameters)})
			if !run.Status.Final() {
				data.Active = true
			}
		}
		if next != "" {
			nq := r.URL.Query()
			nq.Set("cursor", next)
			data.NextURL = "/runs?" + nq.Encode()
		}
	}
	if err != nil {
		e := asError(err)
		status = e.Status()
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		}
		d.Error = e.Message
		for k, v := range e.Fields {
			d.Error += fmt.Sprintf(" %s: %s.", k, v)
		}
	}
	d.Data = data
	s.render(w, status, "runs", d)
	return nil
}

type runData struct {
	// Traces are the OpenTelemetry traces of the attempts (0: trigger).
	Traces []jobs.RunTrace
	// Notifications are the run's outbox rows (sent, pending, failed).
	Notifications []notify.Notification
	Run           *jobs.Run
	Attempts      []attemptView
	Params        []kv
	Result        string
	Logs          []jobs.LogLine
	LogsAfter     int64
	MoreLogs      bool
	Duration      string
	Retry         *runForm
	CanOperate    bool
	// Steps are a multi-step run's steps; FailedStep is set when a retry
	// may start from the failed step. Children are the runs its links
	// started.
	Steps      []jobs.RunStep
	FailedStep bool
	Children   []jobs.Run
}

type kv struct{ Key, Value string }

// runParams lists a run's parameters in the job's order (others after,
// sorted).
func runParams(j *definitions.Job, p jobs.JSONText) []kv {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p), &m); err != nil {
		return nil
	}
	text := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(raw)
	}
	var out []kv
	if j != nil {
		for _, prm := range j.Parameters {
			if raw, ok := m[prm.Name]; ok {
				out = append(out, kv{prm.Name, text(raw)})
				delete(m, prm.Name)
			}
		}
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, kv{k, text(m[k])})
	}
	return out
}

func (s *Server) runPageData(ctx context.Context, sess *session, id int64, retry *runForm) (pageData, error) {
	run, err := s.cfg.Store.Get(ctx, id)
	if err != nil {
		return pageData{}, storeError(err)
	}
	atts, err := s.cfg.Store.Attempts(ctx, id)
	if err != nil {
		return pageData{}, storeError(err)
	}
	lines, err := s.cfg.Store.Logs(ctx, id, 0, runPageLogLines+1)
	if err != nil {
		return pageData{}, storeError(err)
	}
	steps, err := s.cfg.Store.Steps(ctx, id)
	if err != nil {
		return pageData{}, storeError(err)
	}
	kids, err := s.cfg.Store.Children(ctx, id)
	if err != nil {
		return pageData{}, storeError(err)
	}
	traces, err := s.cfg.Store.Traces(ctx, id)
	if err != nil {
		return pageData{}, storeError(err)
	}
	data := runData{Run: run, Attempts: attemptViews(atts), Duration: runDuration(run, s.cfg.Now()),
		CanOperate: sess.who.Role >= RoleOperator, Steps: steps, Children: kids, Traces: traces}
	if nts, err := notify.ForRun(ctx, s.cfg.Store.DB(), id); err == nil {
		data.Notifications = nts
	} else {
		s.log().WithError(err).Warn("dashboard: cannot read the run's notifications")
	}
	for _, st := range steps {
		if st.Status != jobs.StepSucceeded && st.Status != jobs.StepReused {
			data.FailedStep = run.Status.Final()
			break
		}
	}
	if len(lines) > runPageLogLines {
		lines, data.MoreLogs = lines[:runPageLogLines], true
	}
	data.Logs = lines
	if len(lines) > 0 {
		data.LogsAfter = lines[len(lines)-1].ID
	}
	j, _ := s.defs().Job(run.Job)
	data.Params = runParams(j, run.Parameters)
	if run.Result != "" {
		var buf bytes.Buffer
		if json.Indent(&buf, []byte(run.Result), "", "  ") == nil {
			data.Result = buf.String()
		} else {
			data.Result = string(run.Result)
		}
	}
	if j != nil && run.Status.Final() && data.CanOperate {
		if retry == nil {
			values := map[string]string{}
			if vals, err := j.DecodeParams([]byte(run.Parameters)); err == nil {
				values = vals.Text()
			}
			retry = &runForm{Fields: formFields(j, values, nil)}
		}
		data.Retry = retry
	}
	return pageData{Title: fmt.Sprintf("Run %d · %s", run.ID, run.Job), Active: "runs", Who: &sess.who, CSRF: sess.csrf, Data: data}, nil
}

func (s *Server) runPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	d, err := s.runPageData(r.Context(), sess, id, nil)
	if err != nil {
		return err
	}
	switch r.URL.Query().Get("existing") {
	case "active":
		d.Notice = "A run with the same parameters is already queued or running: this is that run, no new run was started."
	case "idempotencyKey":
		d.Notice = "This form was already submitted: this is the run it started."
	}
	s.render(w, http.StatusOK, "run", d)
	return nil
}

type logsData struct {
	Run   *jobs.Run
	Logs  []jobs.LogLine
	After int64
	Next  int64
	More  bool
}

func (s *Server) logsPage(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	run, pg, err := s.readLogs(r.Context(), id, max(after, 0), DefaultLogsLimit)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, "logs", pageData{Title: fmt.Sprintf("Logs of run %d", id), Active: "runs", Who: &sess.who, CSRF: sess.csrf,
		Data: logsData{Run: run, Logs: pg.Logs, After: after, Next: pg.Next, More: pg.More}})
	return nil
}

// runLive is the JSON the dashboard's script polls while a run is active:
// its status and progress and its log lines after ?after=.
func (s *Server) runLive(w http.ResponseWriter, r *http.Request, _ *session) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	run, pg, err := s.readLogs(r.Context(), id, max(after, 0), liveLogLines)
	if err != nil {
		e := asError(err)
		writeJSON(w, e.Status(), errorBody{Error: errorDetail{Code: e.code(), Message: e.Message}})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": run.Status, "final": pg.Complete, "progress": run.Progress,
		"recordsRead": run.RecordsRead, "recordsChanged": run.RecordsChanged,
		"recordErrors": run.RecordErrors, "recordWarnings": run.RecordWarnings,
		"cancelRequested": run.CancelRequested, "logs": pg.Logs, "next": pg.Next,
	})
	return nil
}

// pauseSubmit pauses what the form names (kind, name, for, reason).
func (s *Server) pauseSubmit(w http.ResponseWriter, r *http.Request, sess *session) error {
	kind, name := jobs.PauseKind(r.PostForm.Get("kind")), r.PostForm.Get("name")
	if err := s.pauseTarget(kind, name); err != nil {
		return err
	}
	p, err := s.newPause(pauseRequest{Kind: kind, Name: name, For: r.PostForm.Get("for"), Reason: r.PostForm.Get("reason")}, sess.who.viaDashboard().who())
	if err != nil {
		return err
	}
	if err := s.savePause(r, p); err != nil {
		return err
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// resumeSubmit ends the pause the form names (kind, name).
func (s *Server) resumeSubmit(w http.ResponseWriter, r *http.Request, sess *session) error {
	kind, name := jobs.PauseKind(r.PostForm.Get("kind")), r.PostForm.Get("name")
	if !kind.Valid() {
		return &Error{Kind: KindInvalid, Code: "bad_kind", Message: "kind must be job, schedule or connection"}
	}
	if _, err := s.cfg.Store.Resume(r.Context(), kind, name); err != nil {
		return storeError(err)
	}
	s.pausesChanged()
	s.log().WithField("by", sess.who.viaDashboard().who()).Infof("%s %s resumed", kind, name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
	return nil
}

// changedERP reports whether run succeeded and changed records (a retry
// would repeat its changes).
func changedERP(run *jobs.Run) bool {
	return (run.Status == jobs.StatusSucceeded || run.Status == jobs.StatusSucceededWithWarnings) && run.RecordsChanged > 0 && !run.Preview
}

func (s *Server) runCancelSubmit(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Cancel(r.Context(), id, sess.who.viaDashboard().who()); err != nil {
		return storeError(err)
	}
	http.Redirect(w, r, "/runs/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
	return nil
}

func (s *Server) runRetrySubmit(w http.ResponseWriter, r *http.Request, sess *session) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	// Retrying a run that succeeded and changed the ERP repeats its
	// changes: the form must say the operator knows.
	if r.PostForm.Get("confirmChanges") != "1" {
		run, err := s.cfg.Store.Get(r.Context(), id)
		if err != nil {
			return storeError(err)
		}
		if changedERP(run) {
			d, derr := s.runPageData(r.Context(), sess, id, nil)
			if derr != nil {
				return derr
			}
			d.Error = fmt.Sprintf("Run %d succeeded and changed %d records: a retry repeats those changes. Tick \"repeat its changes\" to retry it anyway.", id, run.RecordsChanged)
			s.render(w, http.StatusConflict, "run", d)
			return nil
		}
	}
	if r.PostForm.Get("override") == "1" {
		run, err := s.cfg.Store.Get(r.Context(), id)
		if err != nil {
			return storeError(err)
		}
		j, ok := s.defs().Job(run.Job)
		if !ok {
			return errorf(KindConflict, "job_not_defined", "job %s is no longer defined", run.Job)
		}
		text := formParams(j, r.PostForm)
		overrides := map[string]json.RawMessage{}
		for _, p := range j.Parameters {
			v, ok := text[p.Name]
			if !ok || v == "" {
				overrides[p.Name] = json.RawMessage("null")
				continue
			}
			b, _ := json.Marshal(v)
			overrides[p.Name] = b
		}
		e, err := s.retry(r.Context(), id, overrides, r.PostForm.Get("fromFailedStep") == "true", sess.who.viaDashboard())
		if err != nil {
			ae := asError(err)
			if ae.Kind != KindInvalid {
				return ae
			}
			d, derr := s.runPageData(r.Context(), sess, id, &runForm{Fields: formFields(j, text, ae.Fields), Error: ae.Message})
			if derr != nil {
				return derr
			}
			d.Error = ae.Message
			s.render(w, ae.Status(), "run", d)
			return nil
		}
		return redirectRun(w, r, e)
	}
	e, err := s.retry(r.Context(), id, nil, r.PostForm.Get("fromFailedStep") == "true", sess.who.viaDashboard())
	if err != nil {
		return err
	}
	return redirectRun(w, r, e)
}

func redirectRun(w http.ResponseWriter, r *http.Request, e *jobs.Enqueued) error {
	target := "/runs/" + strconv.FormatInt(e.Run.ID, 10)
	if !e.Created {
		target += "?existing=" + url.QueryEscape(e.Reason)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}
