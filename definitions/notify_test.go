package definitions

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

const notifyBase = `
connections:
  - name: erp
    type: http
jobs:
  - name: OrderCancel
    connection: erp
    processor: OrderCancel
`

// loadNotify loads one file f.yaml and validates it; it returns the set
// and every problem as text, one per line.
func loadNotify(t *testing.T, yaml string) (*Set, string) {
	t.Helper()
	set, err := LoadFS(fstest.MapFS{"d/f.yaml": {Data: []byte(yaml)}}, "d")
	var all Problems
	if err != nil {
		require.True(t, errors.As(err, &all), "%v", err)
	}
	require.NotNil(t, set)
	if err := set.Validate(fakeCatalog{}); err != nil {
		var ps Problems
		require.True(t, errors.As(err, &ps), "%v", err)
		all = append(all, ps...)
	}
	sortProblems(all)
	if len(all) == 0 {
		return set, ""
	}
	return set, all.Error()
}

func TestNotifyLoadsWithDefaults(t *testing.T) {
	set, probs := loadNotify(t, notifyBase+`    notify:
      webhook: {url: "https://hooks.example.com/jobrunner", secret: HOOK_SECRET}
      email:
        to: [ops@example.com, "Integration Team <team@example.com>"]
smtp:
  host: smtp.example.com
  from: jobrunner@example.com
  username: jobrunner
  password: SMTP_PASSWORD
`)
	require.Empty(t, probs)
	j, _ := set.Job("OrderCancel")
	require.NotNil(t, j.Notify)
	require.Equal(t, []string{NotifyFailure}, j.Notify.On)
	require.True(t, j.Notify.Wants(NotifyFailure))
	require.False(t, j.Notify.Wants(NotifySuccess))
	require.False(t, j.Notify.Preview)
	require.Equal(t, "https://hooks.example.com/jobrunner", j.Notify.Webhook.URL)
	require.Equal(t, "HOOK_SECRET", j.Notify.Webhook.Secret)
	require.Equal(t, DefaultSubject, j.Notify.Email.Subject)
	require.Len(t, j.Notify.Email.To, 2)
	require.Equal(t, Pos{File: "f.yaml", Line: 9}, j.Notify.Pos)

	require.NotNil(t, set.SMTP)
	require.Equal(t, "smtp.example.com", set.SMTP.Host)
	require.Equal(t, DefaultSMTPPort, set.SMTP.Port)
	require.True(t, set.SMTP.StartTLS)
	require.False(t, set.SMTP.InsecureSkipVerify)
	require.Equal(t, "SMTP_PASSWORD", set.SMTP.Password)
}

func TestNotifyAllFields(t *testing.T) {
	set, probs := loadNotify(t, notifyBase+`    notify:
      on: [failure, warning, success, completion, waiting]
      preview: true
      waitingAfter: 2h
      email: {to: ops@example.com, subject: "[{{.Event}}] {{.Job}} run {{.RunID}} {{.Status}}"}
smtp: {host: 127.0.0.1, port: 2525, from: j@example.com, startTLS: false, insecureSkipVerify: true}
`)
	require.Empty(t, probs)
	j, _ := set.Job("OrderCancel")
	require.Equal(t, NotifyEvents, j.Notify.On)
	require.True(t, j.Notify.Preview)
	require.Equal(t, 2*time.Hour, j.Notify.Waiting())
	require.Nil(t, j.Notify.Webhook)
	require.Equal(t, []string{"ops@example.com"}, j.Notify.Email.To)
	require.Equal(t, 2525, set.SMTP.Port)
	require.False(t, set.SMTP.StartTLS)
	require.True(t, set.SMTP.InsecureSkipVerify)
}

func TestNotifyVersionIgnoresPositions(t *testing.T) {
	a, probs := loadNotify(t, notifyBase+`    notify: {webhook: {url: "https://h.example.com/", secret: S}}
`)
	require.Empty(t, probs)
	b, probs := loadNotify(t, "\n\n"+notifyBase+`    notify: {webhook: {url: "https://h.example.com/", secret: S}}
`)
	require.Empty(t, probs)
	ja, _ := a.Job("OrderCancel")
	jb, _ := b.Job("OrderCancel")
	require.Equal(t, ja.Version, jb.Version)
}

func TestNotifyProblems(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings, each on some problem line
	}{
		{"unknown field", notifyBase + `    notify:
      webhook: {url: "https://h.example.com", secret: S, token: x}
      emial: {to: [a@b.example]}
`, []string{`f.yaml:10: jobs[0].notify.webhook.token: unknown field "token"`, `f.yaml:11: jobs[0].notify.emial: unknown field "emial" (did you mean "email"?)`}},
		{"bad on", notifyBase + `    notify:
      on: [failure, failur, failure]
      webhook: {url: "https://h.example.com", secret: S}
`, []string{`f.yaml:10: jobs[0].notify.on[1]: unknown event "failur" (did you mean "failure"?)`, `jobs[0].notify.on[2]: "failure" is listed twice`}},
		{"no target", notifyBase + `    notify: {on: [failure]}
`, []string{`f.yaml:9: jobs[0].notify: names no target: add webhook, email or both`}},
		{"bad url", notifyBase + `    notify:
      webhook: {url: "ftp://h.example.com/x", secret: S}
`, []string{`f.yaml:10: jobs[0].notify.webhook.url: invalid URL "ftp://h.example.com/x": want an absolute http:// or https:// URL`}},
		{"relative url", notifyBase + `    notify:
      webhook: {url: "/hook", secret: S}
`, []string{`jobs[0].notify.webhook.url: invalid URL "/hook"`}},
		{"url credentials", notifyBase + `    notify:
      webhook: {url: "https://u:p@h.example.com/", secret: S}
`, []string{`jobs[0].notify.webhook.url: the URL must not hold credentials`}},
		{"secret is a value", notifyBase + `    notify:
      webhook: {url: "https://h.example.com", secret: "s3cr3t-value!"}
`, []string{`jobs[0].notify.webhook.secret: invalid environment variable name "s3cr3t-value!"`}},
		{"missing secret", notifyBase + `    notify:
      webhook: {url: "https://h.example.com"}
`, []string{`f.yaml:10: jobs[0].notify.webhook.secret: required`}},
		{"email without smtp", notifyBase + `    notify:
      email: {to: [ops@example.com]}
`, []string{`f.yaml:10: jobs[0].notify.email: e-mail notifications need the top-level smtp section`}},
		{"bad template", notifyBase + `    notify:
      email:
        to: [ops@example.com]
        subject: "{{.Job} failed"
smtp: {host: h, from: a@example.com}
`, []string{`f.yaml:12: jobs[0].notify.email.subject: invalid template:`}},
		{"unknown template field", notifyBase + `    notify:
      email:
        to: [ops@example.com]
        subject: "{{.Jobb}} failed"
smtp: {host: h, from: a@example.com}
`, []string{`f.yaml:12: jobs[0].notify.email.subject: invalid template:`, `Jobb`}},
		{"bad recipients", notifyBase + `    notify:
      email: {to: ["not an address"]}
smtp: {host: h, from: a@example.com}
`, []string{`jobs[0].notify.email.to[0]: invalid e-mail address "not an address"`}},
		{"no recipients", notifyBase + `    notify:
      email: {subject: x}
smtp: {host: h, from: a@example.com}
`, []string{`jobs[0].notify.email.to: required: at least one recipient`}},
		{"smtp problems", notifyBase + `smtp:
  port: 70000
  from: nobody
  password: "pw value"
  startTls: true
`, []string{`f.yaml:9: smtp.host: required`, `smtp.port: must be between 1 and 65535, got 70000`, `smtp.from: invalid e-mail address "nobody"`,
			`smtp.password: invalid environment variable name "pw value"`, `smtp.username: required when password is set`,
			`smtp.startTls: unknown field "startTls" (did you mean "startTLS"?)`}},
		{"password in clear", notifyBase + `smtp: {host: mail.example.com, from: a@example.com, username: u, password: PW, startTLS: false}
`, []string{`smtp.startTLS: false would send the password in clear text to mail.example.com`}},
		{"bad kinds", notifyBase + `    notify:
      on: failure
      preview: maybe
      webhook: [x]
smtp: {host: h, from: a@example.com, port: many}
`, []string{`jobs[0].notify.preview: expected true or false, got "maybe"`, `jobs[0].notify.webhook: expected a mapping, got a list`, `smtp.port: expected an integer, got "many"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, probs := loadNotify(t, tc.yaml)
			for _, w := range tc.want {
				require.Contains(t, probs, w)
			}
		})
	}
}

func TestNotifySecondSMTPSection(t *testing.T) {
	set, err := LoadFS(fstest.MapFS{
		"d/a.yaml": {Data: []byte("smtp: {host: h, from: a@example.com}\n")},
		"d/b.yaml": {Data: []byte(notifyBase + "smtp: {host: h2, from: a@example.com}\n")},
	}, "d")
	require.Error(t, err)
	require.Contains(t, err.Error(), "b.yaml:9: smtp: a second smtp section (the first is at a.yaml:1)")
	require.Equal(t, "h", set.SMTP.Host)
}

func TestNotifyWantsBuiltInCode(t *testing.T) {
	var nilNotify *Notify
	require.False(t, nilNotify.Wants(NotifyFailure))
	n := &Notify{} // built in code: empty On means failure
	require.True(t, n.Wants(NotifyFailure))
	require.False(t, n.Wants(NotifyCompletion))
	require.True(t, strings.Contains(DefaultSubject, "{{.RunID}}"))
}
