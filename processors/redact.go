package processors

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces a secret value in text.
const Redacted = "[REDACTED]"

// Lengths that decide how a secret value is hidden, see [NewRedactor].
const (
	// MinSecretLen: shorter values are not hidden in text (replacing "ab"
	// everywhere would garble every message and hide nothing worth it).
	MinSecretLen = 4
	// SubstringSecretLen: values at least this long are hidden wherever
	// they appear; shorter ones only where they stand as a whole word.
	SubstringSecretLen = 8
)

// Redactor hides known secret values in text: log lines, error messages,
// results, notifications. It is the one set of rules every part of
// jobrunner uses. The zero value and nil hide nothing. It is safe for
// concurrent use.
type Redactor struct {
	long  *strings.Replacer // values hidden wherever they appear
	short []string          // values hidden as whole words only
	vals  []string          // every value, for With
}

// NewRedactor returns a Redactor for the values of secrets (secret name →
// value). Each value is hidden as written and in the forms it takes in
// JSON strings and URLs; a basic-auth pair (names ending in "username"
// and "password" that share a prefix) is also hidden in its base64
// encoding. The rules: values of SubstringSecretLen or more characters are
// replaced wherever they appear; values of MinSecretLen to
// SubstringSecretLen-1 only as whole words (so a 5-letter token does not
// turn "tcp" or "order" inside other words into [REDACTED]); shorter
// values are not hidden. A username on its own is an identity, not a
// secret, and is only hidden inside the basic-auth encoding.
func NewRedactor(secrets map[string]string) *Redactor {
	var vals []string
	users := map[string]string{}
	passwords := map[string]string{}
	for name, v := range secrets {
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, "username"):
			users[strings.TrimSuffix(lower, "username")] = v
			continue
		case strings.HasSuffix(lower, "password"):
			passwords[strings.TrimSuffix(lower, "password")] = v
		}
		vals = append(vals, v)
	}
	for prefix, u := range users {
		if u != "" {
			vals = append(vals, base64.StdEncoding.EncodeToString([]byte(u+":"+passwords[prefix])))
		}
	}
	return newRedactor(vals)
}

func newRedactor(vals []string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	var long []string
	add := func(v string) {
		if seen[v] || utf8.RuneCountInString(v) < MinSecretLen {
			return
		}
		seen[v] = true
		if utf8.RuneCountInString(v) >= SubstringSecretLen {
			long = append(long, v)
		} else {
			r.short = append(r.short, v)
		}
	}
	given := map[string]bool{}
	for _, v := range vals {
		if v == "" || given[v] {
			continue
		}
		given[v] = true
		r.vals = append(r.vals, v)
		add(v)
		if q, err := json.Marshal(v); err == nil {
			add(string(q[1 : len(q)-1]))
		}
		add(url.QueryEscape(v))
		add(url.PathEscape(v))
	}
	// Longest first, so a secret containing another is hidden whole.
	sort.Slice(long, func(i, j int) bool { return len(long[i]) > len(long[j]) })
	sort.Slice(r.short, func(i, j int) bool { return len(r.short[i]) > len(r.short[j]) })
	if len(long) > 0 {
		pairs := make([]string, 0, 2*len(long))
		for _, v := range long {
			pairs = append(pairs, v, Redacted)
		}
		r.long = strings.NewReplacer(pairs...)
	}
	return r
}

// With returns a Redactor that also hides values (an access token
// obtained at run time). r may be nil.
func (r *Redactor) With(values ...string) *Redactor {
	if r != nil && !slices.ContainsFunc(values, func(v string) bool { return v != "" && !slices.Contains(r.vals, v) }) {
		return r // nothing new: no rebuild (With runs once per ERP request)
	}
	var vals []string
	if r != nil {
		vals = append(vals, r.vals...)
	}
	return newRedactor(append(vals, values...))
}

// Redact returns s with the secret values hidden.
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	if r.long != nil {
		s = r.long.Replace(s)
	}
	for _, v := range r.short {
		s = replaceWord(s, v)
	}
	return s
}

// Empty reports whether r hides nothing.
func (r *Redactor) Empty() bool { return r == nil || (r.long == nil && len(r.short) == 0) }

// replaceWord replaces v in s where it is not part of a longer word
// (letters and digits on neither side).
func replaceWord(s, v string) string {
	if !strings.Contains(s, v) {
		return s
	}
	var b strings.Builder
	from := 0 // s[:from] is written
	for at := 0; at <= len(s)-len(v); {
		i := strings.Index(s[at:], v)
		if i < 0 {
			break
		}
		i += at
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(v):])
		if (i == 0 || !wordRune(before)) && (i+len(v) == len(s) || !wordRune(after)) {
			b.WriteString(s[from:i])
			b.WriteString(Redacted)
			from = i + len(v)
			at = from
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		at = i + size
	}
	b.WriteString(s[from:])
	return b.String()
}

func wordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' }
