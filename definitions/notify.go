package definitions

import (
	"bytes"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"text/template"
	"time"

	"gopkg.in/yaml.v3"
)

// Notification events a job's notify.on may list.
const (
	NotifyFailure    = "failure"    // the run failed (once per failure streak)
	NotifyWarning    = "warning"    // the run succeeded with warnings
	NotifySuccess    = "success"    // the run succeeded (with or without warnings)
	NotifyCompletion = "completion" // the run finished, whatever its outcome
	NotifyWaiting    = "waiting"    // the run has waited (snoozed on a code) longer than waitingAfter
)

// NotifyEvents lists the values notify.on accepts.
var NotifyEvents = []string{NotifyFailure, NotifyWarning, NotifySuccess, NotifyCompletion, NotifyWaiting}

// DefaultWaitingAfter is how long a run waits (snoozed on a platform code
// such as VTEX EOI011, an order awaiting a person) before notify.on
// waiting reports it.
const DefaultWaitingAfter = 30 * time.Minute

// DefaultSubject is the e-mail subject template when none is written.
const DefaultSubject = "jobrunner: {{.Job}} run {{.RunID}} {{.Status}}"

// DefaultSMTPPort is the SMTP port when none is written (submission).
const DefaultSMTPPort = 587

// Notify says whom a job's finished runs are reported to (the job's notify
// section). At least one of Webhook and Email is set.
type Notify struct {
	// On lists the events that notify (NotifyEvents); default [failure].
	On []string
	// Preview: preview runs notify too (default false: they never do).
	Preview bool
	// WaitingAfter is how long a run waits before the waiting event
	// reports it (default DefaultWaitingAfter); once per run.
	WaitingAfter Duration
	Webhook      *WebhookTarget
	Email        *EmailTarget
	Pos          Pos `json:"-"`

	src source
}

// Waiting returns how long a run waits before the waiting event reports
// it (WaitingAfter, else DefaultWaitingAfter).
func (n *Notify) Waiting() time.Duration {
	if n != nil && n.WaitingAfter > 0 {
		return n.WaitingAfter.D()
	}
	return DefaultWaitingAfter
}

// Wants reports whether the job notifies on event; an empty On means
// [failure].
func (n *Notify) Wants(event string) bool {
	if n == nil {
		return false
	}
	if len(n.On) == 0 {
		return event == NotifyFailure
	}
	return contains(n.On, event)
}

// WebhookTarget is a JSON POST of the run summary, signed with HMAC-SHA256.
type WebhookTarget struct {
	// URL is an absolute http(s) URL.
	URL string
	// Secret names the environment variable holding the HMAC key (never
	// the key itself).
	Secret string
	Pos    Pos `json:"-"`

	src source
}

// EmailTarget is an e-mail sent through the set's SMTP server.
type EmailTarget struct {
	To []string
	// Subject is a text/template over [SubjectData]; default
	// [DefaultSubject].
	Subject string
	Pos     Pos `json:"-"`

	src source
}

// SubjectData is what an e-mail subject template sees.
type SubjectData struct {
	Job       string
	RunID     int64
	Status    string
	Event     string // failure, warning, success, completion or recovery
	Trigger   string
	ErrorCode string
	Preview   bool
}

// SubjectTemplate parses an e-mail subject template.
func SubjectTemplate(text string) (*template.Template, error) {
	return template.New("subject").Option("missingkey=error").Parse(text)
}

// SMTPConfig is the SMTP server notifications are sent through (the
// top-level smtp section; at most one per Set).
type SMTPConfig struct {
	Host string
	// Port defaults to 587.
	Port int
	// From is the sender address.
	From     string
	Username string
	// Password names the environment variable holding the password (never
	// the password itself).
	Password string
	// StartTLS upgrades the connection with STARTTLS (default true); a
	// server that does not offer it is refused.
	StartTLS bool
	// InsecureSkipVerify accepts any server certificate (default false).
	InsecureSkipVerify bool
	Pos                Pos `json:"-"`

	src source
}

var (
	notifyKeys  = []string{"on", "preview", "waitingAfter", "webhook", "email"}
	webhookKeys = []string{"url", "secret"}
	emailKeys   = []string{"to", "subject"}
	smtpKeys    = []string{"host", "port", "from", "username", "password", "startTLS", "insecureSkipVerify"}
)

// notify loads a job's notify section (key k, value n; nil for null),
// with defaults.
func (l *loader) notify(k, n *yaml.Node, path string) (*Notify, bool) {
	if isNull(n) {
		return nil, true
	}
	nt := &Notify{Pos: l.pos(k)}
	nt.src.path = path
	nt.src.set("", nt.Pos)
	ok := l.each(n, path, notifyKeys, &nt.src, func(key string, k, v *yaml.Node) {
		nt.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "on":
			if v.Kind == yaml.ScalarNode && !isNull(v) { // on: failure
				var s string
				s, good = l.str(v, fp)
				nt.On = []string{s}
			} else {
				nt.On, good = l.strList(v, fp)
			}
		case "preview":
			nt.Preview, good = l.bool(v, fp)
		case "waitingAfter":
			nt.WaitingAfter, good = l.duration(v, fp)
		case "webhook":
			if isNull(v) {
				break
			}
			w := &WebhookTarget{Pos: l.pos(v)}
			w.src.path = fp
			w.src.set("", w.Pos)
			good = l.each(v, fp, webhookKeys, &w.src, func(key string, k, v *yaml.Node) {
				w.src.set(key, l.pos(k))
				var ok bool
				switch key {
				case "url":
					w.URL, ok = l.str(v, join(fp, key))
				case "secret":
					w.Secret, ok = l.str(v, join(fp, key))
				}
				if !ok {
					w.src.markBad(key)
				}
			})
			nt.Webhook = w
		case "email":
			if isNull(v) {
				break
			}
			e := &EmailTarget{Pos: l.pos(v)}
			e.src.path = fp
			e.src.set("", e.Pos)
			good = l.each(v, fp, emailKeys, &e.src, func(key string, k, v *yaml.Node) {
				e.src.set(key, l.pos(k))
				var ok bool
				switch key {
				case "to":
					if v.Kind == yaml.ScalarNode && !isNull(v) {
						var s string
						s, ok = l.str(v, join(fp, key))
						e.To = []string{s}
					} else {
						e.To, ok = l.strList(v, join(fp, key))
					}
				case "subject":
					e.Subject, ok = l.str(v, join(fp, key))
				}
				if !ok {
					e.src.markBad(key)
				}
			})
			if !e.src.written("subject") {
				e.Subject = DefaultSubject
			}
			nt.Email = e
		}
		if !good {
			nt.src.markBad(key)
		}
	})
	if !nt.src.written("on") {
		nt.On = []string{NotifyFailure}
	}
	return nt, ok
}

// smtp loads the top-level smtp section, with defaults.
func (l *loader) smtp(n *yaml.Node, path string) (*SMTPConfig, bool) {
	c := &SMTPConfig{Pos: l.pos(n), Port: DefaultSMTPPort, StartTLS: true}
	c.src.path = path
	c.src.set("", c.Pos)
	ok := l.each(n, path, smtpKeys, &c.src, func(key string, k, v *yaml.Node) {
		c.src.set(key, l.pos(k))
		fp := join(path, key)
		good := true
		switch key {
		case "host":
			c.Host, good = l.str(v, fp)
		case "port":
			c.Port, good = l.int(v, fp)
		case "from":
			c.From, good = l.str(v, fp)
		case "username":
			c.Username, good = l.str(v, fp)
		case "password":
			c.Password, good = l.str(v, fp)
		case "startTLS":
			c.StartTLS, good = l.bool(v, fp)
		case "insecureSkipVerify":
			c.InsecureSkipVerify, good = l.bool(v, fp)
		}
		if !good {
			c.src.markBad(key)
		}
	})
	return c, ok
}

// notify checks a job's notify section; smtp is the set's smtp section.
func (v *validator) notify(n *Notify, jobPath string, smtp *SMTPConfig) {
	path := n.src.path
	if path == "" {
		path = join(jobPath, "notify")
	}
	seen := map[string]bool{}
	for i, ev := range n.On {
		p := n.src.at("on", n.Pos)
		switch {
		case !contains(NotifyEvents, ev):
			v.add(p, index(join(path, "on"), i), "unknown event %q%s (want failure, warning, success, completion or waiting)", ev, hint(ev, NotifyEvents))
		case seen[ev]:
			v.add(p, index(join(path, "on"), i), "%q is listed twice", ev)
		}
		seen[ev] = true
	}
	if _, set := n.src.fields["waitingAfter"]; set && !n.src.bad["waitingAfter"] {
		switch {
		case !n.Wants(NotifyWaiting):
			v.add(n.src.at("waitingAfter", n.Pos), join(path, "waitingAfter"), "only the waiting event reads waitingAfter: add waiting to on")
		case n.WaitingAfter <= 0:
			v.add(n.src.at("waitingAfter", n.Pos), join(path, "waitingAfter"), "want a positive duration such as 30m")
		}
	}
	if n.Webhook == nil && n.Email == nil && !n.src.bad["webhook"] && !n.src.bad["email"] {
		v.add(n.Pos, path, "names no target: add webhook, email or both")
	}
	if w := n.Webhook; w != nil {
		wp := w.src.path
		if wp == "" {
			wp = join(path, "webhook")
		}
		if !v.required(w.src, w.Pos, wp, "url", w.URL) && !w.src.bad["url"] {
			if msg := checkURL(w.URL); msg != "" {
				v.add(w.src.at("url", w.Pos), join(wp, "url"), "%s", msg)
			}
		}
		if !v.required(w.src, w.Pos, wp, "secret", w.Secret) && !w.src.bad["secret"] && !envName.MatchString(w.Secret) {
			v.add(w.src.at("secret", w.Pos), join(wp, "secret"), "invalid environment variable name %q (the secret names the variable that holds the HMAC key, never the key itself)", w.Secret)
		}
	}
	if e := n.Email; e != nil {
		ep := e.src.path
		if ep == "" {
			ep = join(path, "email")
		}
		if smtp == nil {
			v.add(e.Pos, ep, "e-mail notifications need the top-level smtp section, and no file has one")
		}
		if len(e.To) == 0 && !e.src.bad["to"] {
			v.add(e.src.at("to", e.Pos), join(ep, "to"), "required: at least one recipient")
		}
		for i, to := range e.To {
			if _, err := mail.ParseAddress(to); err != nil || strings.ContainsAny(to, "\r\n") {
				v.add(e.src.at("to", e.Pos), index(join(ep, "to"), i), "invalid e-mail address %q", to)
			}
		}
		if !e.src.bad["subject"] {
			if msg := checkSubject(e.Subject); msg != "" {
				v.add(e.src.at("subject", e.Pos), join(ep, "subject"), "%s", msg)
			}
		}
	}
}

// checkURL returns why u is not a usable webhook URL, "" when it is.
func checkURL(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return fmt.Sprintf("invalid URL %q", u)
	case p.Scheme != "http" && p.Scheme != "https":
		return fmt.Sprintf("invalid URL %q: want an absolute http:// or https:// URL", u)
	case p.Host == "":
		return fmt.Sprintf("invalid URL %q: no host", u)
	case p.User != nil:
		return "the URL must not hold credentials; sign with secret instead"
	}
	return ""
}

// checkSubject returns why a subject template is unusable, "" when fine.
func checkSubject(s string) string {
	if s == "" {
		return "must not be empty"
	}
	t, err := SubjectTemplate(s)
	if err != nil {
		return fmt.Sprintf("invalid template: %s", strings.TrimPrefix(err.Error(), "template: "))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, SubjectData{Job: "Job", RunID: 1, Status: "failed", Event: NotifyFailure}); err != nil {
		return fmt.Sprintf("invalid template: %s (fields: .Job .RunID .Status .Event .Trigger .ErrorCode .Preview)", strings.TrimPrefix(err.Error(), "template: "))
	}
	return ""
}

// smtp checks the smtp section.
func (v *validator) smtp(c *SMTPConfig) {
	path := c.src.path
	if path == "" {
		path = "smtp"
	}
	v.required(c.src, c.Pos, path, "host", c.Host)
	if !c.src.bad["port"] && (c.Port < 1 || c.Port > 65535) {
		v.add(c.src.at("port", c.Pos), join(path, "port"), "must be between 1 and 65535, got %d", c.Port)
	}
	if !v.required(c.src, c.Pos, path, "from", c.From) && !c.src.bad["from"] {
		if _, err := mail.ParseAddress(c.From); err != nil || strings.ContainsAny(c.From, "\r\n") {
			v.add(c.src.at("from", c.Pos), join(path, "from"), "invalid e-mail address %q", c.From)
		}
	}
	if c.Password != "" && !c.src.bad["password"] && !envName.MatchString(c.Password) {
		v.add(c.src.at("password", c.Pos), join(path, "password"), "invalid environment variable name %q (password names the variable that holds it, never the password itself)", c.Password)
	}
	if c.Password != "" && c.Username == "" && !c.src.bad["username"] {
		v.add(c.src.at("password", c.Pos), join(path, "username"), "required when password is set")
	}
	if c.Username != "" && c.Password == "" && !c.src.bad["password"] {
		v.add(c.src.at("username", c.Pos), join(path, "password"), "required when username is set (the name of the environment variable holding the password)")
	}
	if !c.StartTLS && c.Password != "" && !c.src.bad["startTLS"] && !loopback(c.Host) {
		v.add(c.src.at("startTLS", c.Pos), join(path, "startTLS"), "false would send the password in clear text to %s; only a loopback server may go without TLS", c.Host)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
