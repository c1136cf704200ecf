package definitions

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// DefaultMaxStringLen is the maximum length in characters (runes) of a
// string parameter whose definition sets no max.
const DefaultMaxStringLen = 10000

// MaxDecimalDigits caps the digits of a decimal parameter value, so that
// huge inputs fail cleanly instead of costing memory and time.
const MaxDecimalDigits = 65

// FieldError is a problem with one named parameter value.
type FieldError struct {
	Field   string // the parameter's name
	Message string // what is wrong, e.g. `expected int, got "abc"`
}

// Error returns "parameter FIELD: MESSAGE".
func (e FieldError) Error() string { return "parameter " + e.Field + ": " + e.Message }

// ParamErrors lists every problem found with a set of parameter values.
type ParamErrors []FieldError

// Error returns the problems on one line, joined by "; ".
func (e ParamErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// Fields returns the messages by parameter name (the first message when a
// parameter has several), e.g. for an API error's "fields".
func (e ParamErrors) Fields() map[string]string {
	out := make(map[string]string, len(e))
	for _, fe := range e {
		if _, ok := out[fe.Field]; !ok {
			out[fe.Field] = fe.Message
		}
	}
	return out
}

// asFieldError turns err into a FieldError for the named parameter.
func asFieldError(name string, err error) FieldError {
	var fe FieldError
	if errors.As(err, &fe) {
		return fe
	}
	return FieldError{Field: name, Message: err.Error()}
}

// quote returns s quoted with %q, cut to 40 characters ("..." marks a cut).
func quote(s string) string {
	const maxRunes = 40
	i, n := 0, 0
	for i < len(s) && n < maxRunes {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	if i < len(s) {
		return strconv.Quote(s[:i]) + "..."
	}
	return strconv.Quote(s)
}

// Param returns the job's parameter of that name, or nil.
func (j *Job) Param(name string) *Parameter {
	for i := range j.Parameters {
		if j.Parameters[i].Name == name {
			return &j.Parameters[i]
		}
	}
	return nil
}

// ParseParams parses parameter values given as text (CLI --param K=V, API,
// dashboard form) into typed Values. Every problem is reported at once as
// [ParamErrors]: a name the job does not define, a required parameter that
// is absent or empty, a value its [Parameter.Parse] rejects. An optional
// parameter that is absent or given as "" gets its default, or is left out
// of the Values when it has none. The returned Values are never nil when
// the error is nil.
func (j *Job) ParseParams(raw map[string]string) (Values, error) {
	var errs ParamErrors
	unknown := make([]string, 0)
	for name := range raw {
		if j.Param(name) == nil {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		msg := "unknown parameter of job " + j.Name
		if names := j.paramNames(); len(names) > 0 {
			msg += " (it takes " + strings.Join(names, ", ") + ")"
		} else {
			msg += " (it takes no parameters)"
		}
		errs = append(errs, FieldError{Field: name, Message: msg})
	}
	out := Values{}
	for i := range j.Parameters {
		p := &j.Parameters[i]
		text, ok := raw[p.Name]
		if ok && text == "" && !p.Required {
			ok = false
		}
		if !ok {
			switch {
			case p.Required:
				errs = append(errs, FieldError{Field: p.Name, Message: "required"})
			case p.Default != nil:
				v, err := p.Parse(*p.Default)
				if err != nil {
					fe := asFieldError(p.Name, err)
					fe.Message = "invalid default: " + fe.Message
					errs = append(errs, fe)
					continue
				}
				out[p.Name] = v
			}
			continue
		}
		v, err := p.Parse(text)
		if err != nil {
			errs = append(errs, asFieldError(p.Name, err))
			continue
		}
		out[p.Name] = v
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func (j *Job) paramNames() []string {
	names := make([]string, len(j.Parameters))
	for i, p := range j.Parameters {
		names[i] = p.Name
	}
	return names
}

// Parse parses one value given as text under the parameter's type and
// constraints, returning the Go type listed at [Values]. Rules by type:
//
//   - string: taken as given (not trimmed); invalid UTF-8 and NUL bytes are
//     rejected; a required string must not be empty or blank; the length in
//     characters must lie within Min..Max (Max defaults to
//     [DefaultMaxStringLen]); a Pattern must match the whole value.
//   - int: base-10 int64 with optional sign, surrounding space trimmed; no
//     exponent, no hex; out of range is an error; Min..Max inclusive.
//   - decimal: digits with an optional fraction and sign, kept exactly with
//     the scale written ("12.50"); no exponent, NaN or Inf; at most
//     [MaxDecimalDigits] digits; Min..Max inclusive.
//   - bool: true/false, 1/0, yes/no in any case.
//   - date: "YYYY-MM-DD", a real calendar date.
//   - datetime: RFC 3339 with a zone offset (fractional seconds allowed),
//     returned in UTC.
//   - enum: exactly one of Values (case sensitive).
//
// The error is a [FieldError] naming the parameter, the expected type and
// the (quoted, shortened) input.
func (p *Parameter) Parse(raw string) (any, error) {
	return p.parse(raw, true)
}

// errf returns a FieldError for p.
func (p *Parameter) errf(format string, args ...any) error {
	return FieldError{Field: p.Name, Message: fmt.Sprintf(format, args...)}
}

// parse parses raw; with strict false only the type's syntax is checked,
// not the constraints (used for stored values).
func (p *Parameter) parse(raw string, strict bool) (any, error) {
	switch p.Type {
	case TypeString:
		return p.parseString(raw, strict)
	case TypeInt:
		return p.parseInt(raw, strict)
	case TypeDecimal:
		return p.parseDecimal(raw, strict)
	case TypeBool:
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "true", "1", "yes":
			return true, nil
		case "false", "0", "no":
			return false, nil
		}
		return nil, p.errf("expected bool (true/false, yes/no, 1/0), got %s", quote(raw))
	case TypeDate:
		d, err := parseDate(strings.TrimSpace(raw))
		if err != nil {
			return nil, p.errf("expected date (YYYY-MM-DD), got %s: %v", quote(raw), err)
		}
		return d, nil
	case TypeDateTime:
		return p.parseDateTime(raw)
	case TypeEnum:
		return p.parseEnum(raw, strict)
	default:
		return nil, p.errf("unknown parameter type %q", string(p.Type))
	}
}

func (p *Parameter) parseString(raw string, strict bool) (any, error) {
	if !utf8.ValidString(raw) {
		return nil, p.errf("expected string of valid UTF-8, got %s", quote(raw))
	}
	if strings.IndexByte(raw, 0) >= 0 {
		return nil, p.errf("expected string without NUL bytes, got %s", quote(raw))
	}
	if !strict {
		return raw, nil
	}
	if p.Required && strings.TrimSpace(raw) == "" {
		if raw == "" {
			return nil, p.errf("required")
		}
		return nil, p.errf("required, got only white space %s", quote(raw))
	}
	lo, hi, err := p.lengthBounds()
	if err != nil {
		return nil, err
	}
	n := utf8.RuneCountInString(raw)
	if n > hi {
		return nil, p.errf("expected string of at most %d characters, got %d: %s", hi, n, quote(raw))
	}
	if n < lo {
		return nil, p.errf("expected string of at least %d characters, got %d: %s", lo, n, quote(raw))
	}
	if p.Pattern != "" {
		re, err := compilePattern(p.Pattern)
		if err != nil {
			return nil, p.errf("invalid pattern in definition: %v", err)
		}
		if !re.MatchString(raw) {
			return nil, p.errf("expected string matching pattern %s, got %s", p.Pattern, quote(raw))
		}
	}
	return raw, nil
}

// lengthBounds returns the string length bounds (Max defaults to
// DefaultMaxStringLen).
func (p *Parameter) lengthBounds() (lo, hi int, err error) {
	hi = DefaultMaxStringLen
	if p.Min != nil {
		if lo, err = parseLength(*p.Min); err != nil {
			return 0, 0, p.errf("invalid min %q in definition: %v", *p.Min, err)
		}
	}
	if p.Max != nil {
		if hi, err = parseLength(*p.Max); err != nil {
			return 0, 0, p.errf("invalid max %q in definition: %v", *p.Max, err)
		}
	}
	return lo, hi, nil
}

// parseLength parses a string length bound: a non-negative int.
func parseLength(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("expected a non-negative integer")
	}
	if n < 0 {
		return 0, errors.New("expected a non-negative integer")
	}
	return n, nil
}

var patterns sync.Map // pattern -> *regexp.Regexp (anchored)

// compilePattern compiles a parameter pattern anchored at both ends.
func compilePattern(pattern string) (*regexp.Regexp, error) {
	if re, ok := patterns.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	if _, err := regexp.Compile(pattern); err != nil {
		return nil, err // report the pattern as written, not the anchored form
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return nil, err
	}
	patterns.Store(pattern, re)
	return re, nil
}

func (p *Parameter) parseInt(raw string, strict bool) (any, error) {
	s := strings.TrimSpace(raw)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return nil, p.errf("expected int, got %s: out of range", quote(raw))
		}
		return nil, p.errf("expected int, got %s", quote(raw))
	}
	if !strict {
		return n, nil
	}
	if p.Min != nil {
		lo, err := strconv.ParseInt(strings.TrimSpace(*p.Min), 10, 64)
		if err != nil {
			return nil, p.errf("invalid min %q in definition", *p.Min)
		}
		if n < lo {
			return nil, p.errf("expected int >= %d, got %s", lo, quote(raw))
		}
	}
	if p.Max != nil {
		hi, err := strconv.ParseInt(strings.TrimSpace(*p.Max), 10, 64)
		if err != nil {
			return nil, p.errf("invalid max %q in definition", *p.Max)
		}
		if n > hi {
			return nil, p.errf("expected int <= %d, got %s", hi, quote(raw))
		}
	}
	return n, nil
}

// parseDecimalText parses plain decimal text: optional sign, digits, an
// optional fraction; no exponent, NaN, Inf or separators; at most
// MaxDecimalDigits digits.
func parseDecimalText(s string) (decimal.Decimal, error) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits, dots := 0, 0
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && dots == 0:
			dots++
		default:
			return decimal.Decimal{}, errors.New("want digits with an optional fraction, no exponent")
		}
	}
	if digits == 0 {
		return decimal.Decimal{}, errors.New("want digits with an optional fraction, no exponent")
	}
	if digits > MaxDecimalDigits {
		return decimal.Decimal{}, fmt.Errorf("more than %d digits", MaxDecimalDigits)
	}
	s = strings.TrimPrefix(s, "+")
	d, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, errors.New("want digits with an optional fraction, no exponent")
	}
	return d, nil
}

func (p *Parameter) parseDecimal(raw string, strict bool) (any, error) {
	d, err := parseDecimalText(strings.TrimSpace(raw))
	if err != nil {
		return nil, p.errf("expected decimal, got %s: %v", quote(raw), err)
	}
	if !strict {
		return d, nil
	}
	if p.Min != nil {
		lo, err := parseDecimalText(strings.TrimSpace(*p.Min))
		if err != nil {
			return nil, p.errf("invalid min %q in definition", *p.Min)
		}
		if d.Cmp(lo) < 0 {
			return nil, p.errf("expected decimal >= %s, got %s", decimalText(lo), quote(raw))
		}
	}
	if p.Max != nil {
		hi, err := parseDecimalText(strings.TrimSpace(*p.Max))
		if err != nil {
			return nil, p.errf("invalid max %q in definition", *p.Max)
		}
		if d.Cmp(hi) > 0 {
			return nil, p.errf("expected decimal <= %s, got %s", decimalText(hi), quote(raw))
		}
	}
	return d, nil
}

// parseDate parses "YYYY-MM-DD" into a real calendar date.
func parseDate(s string) (Date, error) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return Date{}, errors.New("want YYYY-MM-DD")
	}
	for i, c := range []byte(s) {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return Date{}, errors.New("want YYYY-MM-DD")
		}
	}
	y, _ := strconv.Atoi(s[0:4])
	m, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	if m < 1 || m > 12 {
		return Date{}, errors.New("month out of range")
	}
	if days := time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day(); d < 1 || d > days {
		return Date{}, errors.New("day out of range")
	}
	return Date{Year: y, Month: time.Month(m), Day: d}, nil
}

func (p *Parameter) parseDateTime(raw string) (any, error) {
	s := strings.TrimSpace(raw)
	const want = "expected datetime (RFC 3339 with offset, e.g. 2026-01-02T15:04:05Z)"
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		if u := t.UTC(); u.Year() >= 0 && u.Year() <= 9999 {
			return u, nil
		}
		return nil, p.errf("%s, got %s: out of range in UTC", want, quote(raw))
	}
	if _, err2 := time.Parse("2006-01-02T15:04:05.999999999", s); err2 == nil {
		return nil, p.errf("%s, got %s: missing time zone offset", want, quote(raw))
	}
	return nil, p.errf("%s, got %s", want, quote(raw))
}

func (p *Parameter) parseEnum(raw string, strict bool) (any, error) {
	if !strict {
		if !utf8.ValidString(raw) {
			return nil, p.errf("expected enum of valid UTF-8, got %s", quote(raw))
		}
		return raw, nil
	}
	for _, v := range p.Values {
		if raw == v {
			return v, nil
		}
	}
	msg := fmt.Sprintf("expected enum (one of %s), got %s", strings.Join(p.Values, ", "), quote(raw))
	for _, v := range p.Values {
		if strings.EqualFold(strings.TrimSpace(raw), v) {
			msg += fmt.Sprintf(" (did you mean %q?)", v)
			break
		}
	}
	return nil, p.errf("%s", msg)
}
