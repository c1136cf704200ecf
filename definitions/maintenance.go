package definitions

import (
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/jobrunner/jobrunner/cronspec"
)

// MaintenanceWindow is a time a connection must not be called (the
// connection's maintenance list): recurring (Cron, each start lasting
// Duration, in Timezone, default UTC) or one-off (From to Until). Runs that
// would call the connection stay queued inside a window; a schedule's
// ticks inside one follow the job's misfire policy.
type MaintenanceWindow struct {
	Cron     string
	Duration Duration
	Timezone string
	From     *time.Time
	Until    *time.Time
	Pos      Pos

	src  source
	spec *cronspec.Spec
}

// WindowHit is a maintenance window that holds at some time.
type WindowHit struct {
	Connection string
	// Ends is when the window ends.
	Ends time.Time
}

var maintenanceKeys = []string{"cron", "duration", "timezone", "from", "until"}

// InMaintenance reports whether c is inside one of its maintenance
// windows at t, and (the latest-ending of those holding) when it ends.
func (c *Connection) InMaintenance(t time.Time) (WindowHit, bool) {
	var hit WindowHit
	in := false
	for i := range c.Maintenance {
		w := &c.Maintenance[i]
		end, ok := w.holds(t)
		if ok && (!in || end.After(hit.Ends)) {
			hit, in = WindowHit{Connection: c.Name, Ends: end}, true
		}
	}
	return hit, in
}

// holds reports whether t is inside w, and when that occurrence ends.
func (w *MaintenanceWindow) holds(t time.Time) (time.Time, bool) {
	if w.From != nil && w.Until != nil {
		return *w.Until, !t.Before(*w.From) && t.Before(*w.Until)
	}
	spec := w.spec
	if spec == nil {
		s, err := w.parse()
		if err != nil {
			return time.Time{}, false
		}
		spec = s
	}
	d := w.Duration.D()
	if d <= 0 {
		return time.Time{}, false
	}
	// The first start after t-d: t is inside its occurrence when it
	// started at or before t.
	start := spec.Next(t.Add(-d))
	if start.IsZero() || start.After(t) {
		return time.Time{}, false
	}
	return start.Add(d), true
}

func (w *MaintenanceWindow) parse() (*cronspec.Spec, error) {
	loc := time.UTC
	if w.Timezone != "" {
		l, err := time.LoadLocation(w.Timezone)
		if err != nil {
			return nil, err
		}
		loc = l
	}
	return cronspec.Parse(w.Cron, loc)
}

func (l *loader) maintenance(n *yaml.Node, path string) ([]MaintenanceWindow, bool) {
	var out []MaintenanceWindow
	ok := l.seq(n, path, func(i int, item *yaml.Node) {
		w := MaintenanceWindow{Pos: l.pos(item)}
		ip := index(path, i)
		w.src.path = ip
		w.src.set("", w.Pos)
		good := l.each(item, ip, maintenanceKeys, &w.src, func(key string, k, v *yaml.Node) {
			w.src.set(key, l.pos(k))
			fp := join(ip, key)
			ok := true
			switch key {
			case "cron":
				w.Cron, ok = l.str(v, fp)
			case "duration":
				w.Duration, ok = l.duration(v, fp)
			case "timezone":
				w.Timezone, ok = l.str(v, fp)
			case "from", "until":
				var s string
				if s, ok = l.str(v, fp); ok {
					t, err := time.Parse(time.RFC3339, s)
					if err != nil {
						l.problem(v, fp, "want an RFC 3339 time such as 2026-12-24T18:00:00Z, got %q", s)
						ok = false
						break
					}
					t = t.UTC()
					if key == "from" {
						w.From = &t
					} else {
						w.Until = &t
					}
				}
			}
			if !ok {
				w.src.markBad(key)
			}
		})
		if good {
			out = append(out, w)
		}
	})
	return out, ok
}

// maintenance checks a connection's maintenance windows.
func (v *validator) maintenance(c *Connection, path string) {
	for i := range c.Maintenance {
		w := &c.Maintenance[i]
		wp := w.src.path
		if wp == "" {
			wp = index(join(path, "maintenance"), i)
		}
		oneOff := w.From != nil || w.Until != nil || w.src.bad["from"] || w.src.bad["until"]
		recurring := w.Cron != "" || w.src.bad["cron"]
		switch {
		case oneOff && recurring:
			v.add(w.Pos, wp, "a window is recurring (cron, duration) or one-off (from, until), not both")
			continue
		case !oneOff && !recurring:
			v.add(w.Pos, wp, "a window needs cron and duration (recurring) or from and until (one-off)")
			continue
		}
		if oneOff {
			if w.src.bad["from"] || w.src.bad["until"] {
				continue
			}
			switch {
			case w.From == nil:
				v.add(w.Pos, join(wp, "from"), "required with until")
			case w.Until == nil:
				v.add(w.Pos, join(wp, "until"), "required with from")
			case !w.Until.After(*w.From):
				v.add(w.src.at("until", w.Pos), join(wp, "until"), "must be after from (%s)", w.From.Format(time.RFC3339))
			}
			for _, k := range []string{"duration", "timezone"} {
				if _, ok := w.src.fields[k]; ok {
					v.add(w.src.at(k, w.Pos), join(wp, k), "only a recurring window (cron) reads %s", k)
				}
			}
			continue
		}
		if w.Duration <= 0 && !w.src.bad["duration"] {
			v.add(w.src.at("duration", w.Pos), join(wp, "duration"), "required: how long each window lasts, such as 2h")
		}
		if w.src.bad["cron"] || w.src.bad["timezone"] {
			continue
		}
		if w.Timezone == "Local" {
			v.add(w.src.at("timezone", w.Pos), join(wp, "timezone"), "time zone \"Local\" is not allowed: name an IANA zone")
			continue
		}
		spec, err := w.parse()
		if err != nil {
			key := "cron"
			if _, terr := time.LoadLocation(w.Timezone); w.Timezone != "" && terr != nil {
				key = "timezone"
			}
			v.add(w.src.at(key, w.Pos), join(wp, key), "invalid %s: %s", key, strings.TrimPrefix(err.Error(), "cronspec: "))
			continue
		}
		w.spec = spec
	}
}
