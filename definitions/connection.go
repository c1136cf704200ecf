package definitions

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ResolveSecrets reads the connection's secrets from the environment
// through getenv and returns them by secret name. A variable that is unset
// or empty is an error naming the variable and the connection (never a
// value); all such variables are reported at once.
func (c *Connection) ResolveSecrets(getenv func(string) string) (map[string]string, error) {
	names := make([]string, 0, len(c.Secrets))
	for name := range c.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make(map[string]string, len(names))
	var errs []error
	for _, name := range names {
		env := c.Secrets[name]
		v := getenv(env)
		if v == "" {
			errs = append(errs, fmt.Errorf("connection %s: secret %s: environment variable %s is not set or empty", c.Name, name, env))
			continue
		}
		out[name] = v
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ExpandedSettings returns a deep copy of the connection's settings with
// every ${VAR} in string values (and in strings nested in lists and maps)
// replaced by getenv(VAR). Only the braced form is expanded; other "$" are
// kept. Settings are not secrets: secrets come only from
// [Connection.ResolveSecrets].
func (c *Connection) ExpandedSettings(getenv func(string) string) map[string]any {
	if c.Settings == nil {
		return nil
	}
	return expandValue(c.Settings, getenv).(map[string]any)
}

func expandValue(v any, getenv func(string) string) any {
	switch x := v.(type) {
	case string:
		return expandVars(x, getenv)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expandValue(e, getenv)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expandValue(e, getenv)
		}
		return out
	default:
		return v
	}
}

// expandVars replaces ${NAME} (NAME a valid environment variable name) by
// getenv(NAME).
func expandVars(s string, getenv func(string) string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 || !envName.MatchString(s[i+2:i+end]) {
			b.WriteString(s[:i+2])
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(getenv(s[i+2 : i+end]))
		s = s[i+end+1:]
	}
	b.WriteString(s)
	return b.String()
}
