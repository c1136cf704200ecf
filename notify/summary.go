package notify

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

// Summary is the run summary a notification carries: the webhook's JSON
// body and the content of the e-mail. It never holds a secret.
type Summary struct {
	// Event is the notification's kind: failure, warning, success,
	// completion or recovery.
	Event        string          `json:"event"`
	ID           int64           `json:"id"`
	Job          string          `json:"job"`
	Status       string          `json:"status"`
	Trigger      string          `json:"trigger"`
	TriggeredBy  string          `json:"triggeredBy"`
	Preview      bool            `json:"preview"`
	Parameters   json.RawMessage `json:"parameters"`
	ErrorCode    string          `json:"errorCode,omitempty"`
	ErrorMessage string          `json:"errorMessage,omitempty"`
	// Attempts counts the attempts consumed (executions minus snoozes).
	Attempts   int        `json:"attempts"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// Link is the run's dashboard page; empty without a base URL.
	Link string `json:"link,omitempty"`
	// Streak describes the failure streak a failure starts or a recovery
	// ends.
	Streak *Streak `json:"streak,omitempty"`
	// WaitingSince and NextCheck describe a waiting run (event waiting):
	// since its first execution, and when it is checked again.
	WaitingSince *time.Time `json:"waitingSince,omitempty"`
	NextCheck    *time.Time `json:"nextCheck,omitempty"`
}

// Streak is a job's run of consecutive failures.
type Streak struct {
	// FirstRunID is the failed run that started it (and notified).
	FirstRunID int64 `json:"firstRunId"`
	// Failures counts its failed runs.
	Failures int `json:"failures"`
}

// RunLink returns base + "/runs/{id}", "" when base is empty.
func RunLink(base string, id int64) string {
	if base == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/runs/" + strconv.FormatInt(id, 10)
}

// Text renders the summary as the plain-text body of an e-mail.
func (s *Summary) Text() string {
	var b strings.Builder
	switch s.Event {
	case KindRecovery:
		fmt.Fprintf(&b, "%s recovered: run %d %s", s.Job, s.ID, s.Status)
		if s.Streak != nil {
			fmt.Fprintf(&b, " after %d failed run(s) since run %d", s.Streak.Failures, s.Streak.FirstRunID)
		}
		b.WriteString(".\n")
	case KindWaiting:
		fmt.Fprintf(&b, "%s run %d is waiting on %s", s.Job, s.ID, s.ErrorCode)
		if s.WaitingSince != nil {
			fmt.Fprintf(&b, " since %s", s.WaitingSince.UTC().Format(time.RFC3339))
		}
		b.WriteString(": it may need someone to act.")
		if s.NextCheck != nil {
			fmt.Fprintf(&b, " Next check: %s.", s.NextCheck.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	case KindFailure:
		fmt.Fprintf(&b, "%s failed: run %d.", s.Job, s.ID)
		b.WriteString(" Further failures of this job are not reported until it succeeds again.\n")
	default:
		fmt.Fprintf(&b, "%s run %d finished: %s.\n", s.Job, s.ID, s.Status)
	}
	b.WriteString("\n")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-13s %s\n", k+":", v)
		}
	}
	row("Job", s.Job)
	row("Run", strconv.FormatInt(s.ID, 10))
	row("Status", s.Status)
	if s.Preview {
		row("Preview", "yes (nothing was changed)")
	}
	row("Trigger", s.Trigger)
	row("Triggered by", s.TriggeredBy)
	row("Attempts", strconv.Itoa(s.Attempts))
	row("Created", s.CreatedAt.UTC().Format(time.RFC3339))
	if s.FinishedAt != nil {
		row("Finished", s.FinishedAt.UTC().Format(time.RFC3339))
	}
	row("Error code", s.ErrorCode)
	row("Error", s.ErrorMessage)
	var params map[string]any
	if json.Unmarshal(s.Parameters, &params) == nil && len(params) > 0 {
		keys := make([]string, 0, len(params))
		for k := range params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("Parameters:\n")
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s = %v\n", k, params[k])
		}
	}
	if s.Link != "" {
		b.WriteString("\n" + s.Link + "\n")
	}
	return b.String()
}

// redactor hides the values of every environment variable the current
// definitions name as a secret, with the shared rules
// (processors.Redactor).
type redactor struct{ r *processors.Redactor }

// redactor collects the values of every environment variable the current
// definitions name as a secret.
func (n *Notifier) redactor() *redactor {
	set := n.cfg.Definitions()
	values := map[string]string{}
	addEnv := func(name string) {
		if name == "" {
			return
		}
		if _, seen := values[name]; !seen {
			values[name] = n.cfg.Getenv(name)
		}
	}
	if set != nil {
		for _, c := range set.Connections {
			for _, env := range c.Secrets {
				addEnv(env)
			}
		}
		for _, j := range set.Jobs {
			if j.Notify != nil && j.Notify.Webhook != nil {
				addEnv(j.Notify.Webhook.Secret)
			}
		}
		if set.SMTP != nil {
			addEnv(set.SMTP.Password)
		}
	}
	return &redactor{r: processors.NewRedactor(values)}
}

func (r *redactor) clean(s string) string { return r.r.Redact(s) }

// subjectData is what the subject template of s sees.
func (s *Summary) subjectData() definitions.SubjectData {
	return definitions.SubjectData{Job: s.Job, RunID: s.ID, Status: s.Status, Event: s.Event,
		Trigger: s.Trigger, ErrorCode: s.ErrorCode, Preview: s.Preview}
}

// MissingSecrets lists the environment variables the definitions' notify
// and smtp sections name that are unset (for serve to warn about at start
// and on reload; deliveries needing them are retried until they are set).
func MissingSecrets(set *definitions.Set, getenv func(string) string) []string {
	if set == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	check := func(name string) {
		if name != "" && !seen[name] && getenv(name) == "" {
			out = append(out, name)
		}
		seen[name] = true
	}
	for _, j := range set.Jobs {
		if j.Notify != nil && j.Notify.Webhook != nil {
			check(j.Notify.Webhook.Secret)
		}
	}
	if set.SMTP != nil && set.SMTP.Username != "" {
		check(set.SMTP.Password)
	}
	sort.Strings(out)
	return out
}
