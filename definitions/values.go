package definitions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Values are a run's typed parameters by name. Each value has the Go type
// of its parameter's type: string (string, enum), int64 (int),
// decimal.Decimal (decimal), bool (bool), Date (date), time.Time in UTC
// (datetime).
type Values map[string]any

// Date is a calendar date without a time of day or zone (a "date"
// parameter).
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// String returns d as "2006-01-02".
func (d Date) String() string {
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, int(d.Month), d.Day)
}

// IsZero reports whether d is the zero Date.
func (d Date) IsZero() bool { return d == Date{} }

// In returns midnight of d in loc (UTC when loc is nil).
func (d Date) In(loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// MarshalJSON encodes d as the JSON string "YYYY-MM-DD".
func (d Date) MarshalJSON() ([]byte, error) {
	return []byte(`"` + d.String() + `"`), nil
}

// UnmarshalJSON decodes a JSON string "YYYY-MM-DD"; it returns an error for
// anything else, including dates that do not exist (2026-02-30).
func (d *Date) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("decoding date: %w", err)
	}
	v, err := parseDate(s)
	if err != nil {
		return fmt.Errorf("decoding date %q: %w", s, err)
	}
	*d = v
	return nil
}

// String returns the string (or enum) value of the named parameter, or ""
// when it is absent or of another type.
func (v Values) String(name string) string {
	s, _ := v[name].(string)
	return s
}

// Int returns the int value of the named parameter, or 0 when it is absent
// or of another type.
func (v Values) Int(name string) int64 {
	switch x := v[name].(type) {
	case int64:
		return x
	case int:
		return int64(x)
	}
	return 0
}

// Decimal returns the decimal value of the named parameter, or the zero
// decimal when it is absent or of another type.
func (v Values) Decimal(name string) decimal.Decimal {
	d, _ := v[name].(decimal.Decimal)
	return d
}

// Bool returns the bool value of the named parameter, or false when it is
// absent or of another type.
func (v Values) Bool(name string) bool {
	b, _ := v[name].(bool)
	return b
}

// Date returns the date value of the named parameter, or the zero Date when
// it is absent or of another type.
func (v Values) Date(name string) Date {
	d, _ := v[name].(Date)
	return d
}

// Time returns the datetime value of the named parameter (in UTC), or the
// zero time.Time when it is absent or of another type.
func (v Values) Time(name string) time.Time {
	t, _ := v[name].(time.Time)
	return t
}

// decimalText is the canonical text of a decimal: plain digits (never an
// exponent), keeping the scale it was written with ("12.50").
func decimalText(d decimal.Decimal) string {
	if e := d.Exponent(); e < 0 {
		return d.StringFixed(-e)
	}
	return d.String()
}

// valueText returns the canonical text of one value and whether it is a
// JSON string (quoted) in the canonical JSON form.
func valueText(x any) (text string, quoted bool, err error) {
	switch x := x.(type) {
	case string:
		return x, true, nil
	case int64:
		return strconv.FormatInt(x, 10), false, nil
	case int:
		return strconv.Itoa(x), false, nil
	case decimal.Decimal:
		return decimalText(x), true, nil
	case bool:
		return strconv.FormatBool(x), false, nil
	case Date:
		return x.String(), true, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), true, nil
	default:
		return "", false, fmt.Errorf("unsupported parameter value type %T", x)
	}
}

// MarshalJSON encodes v as a canonical JSON object with sorted keys:
// strings and enums as JSON strings, ints as JSON numbers, decimals as JSON
// strings of their exact text ("12.50"), bools, dates as "YYYY-MM-DD" and
// datetimes as RFC 3339 (nanosecond precision) in UTC. A nil v encodes as
// {}. It returns an error for a value of any other Go type.
func (v Values) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeJSONString(&buf, k)
		buf.WriteByte(':')
		text, quoted, err := valueText(v[k])
		if err != nil {
			return nil, fmt.Errorf("encoding parameter %s: %w", k, err)
		}
		if quoted {
			writeJSONString(&buf, text)
		} else {
			buf.WriteString(text)
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(buf *bytes.Buffer, s string) {
	if plainASCII(s) { // what encoding/json writes for it, without an encoder per string
		buf.WriteByte('"')
		buf.WriteString(s)
		buf.WriteByte('"')
		return
	}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}

// Text returns the canonical text of each value, in the forms MarshalJSON
// uses (ints in decimal, bools as true/false). It is what runs are indexed
// by for filtering and what is displayed. Values of an unsupported Go type
// are formatted with fmt.Sprint.
func (v Values) Text() map[string]string {
	out := make(map[string]string, len(v))
	for k, x := range v {
		text, _, err := valueText(x)
		if err != nil {
			text = fmt.Sprint(x)
		}
		out[k] = text
	}
	return out
}

// plainASCII reports whether s is printable ASCII without '"' or '\\':
// JSON writes it as it is, between quotes.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// DecodeParams decodes the canonical JSON written by [Values.MarshalJSON]
// back into typed Values, using the job's parameter types. It checks types
// and syntax only, not the parameters' constraints (a stored run keeps the
// values it was accepted with). A parameter the job does not define, or a
// value of the wrong JSON type, is an error ([ParamErrors], wrapped).
// "null" and empty input decode to empty Values.
func (j *Job) DecodeParams(data []byte) (Values, error) {
	out := Values{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	raw, ok := flatObject(data)
	if !ok {
		var err error
		if raw, err = jsonFields(data); err != nil {
			return nil, fmt.Errorf("decoding parameters of job %s: %w", j.Name, err)
		}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs ParamErrors
	for _, k := range keys {
		p := j.Param(k)
		if p == nil {
			errs = append(errs, FieldError{Field: k, Message: "not a parameter of job " + j.Name})
			continue
		}
		var text string
		switch x := raw[k].(type) {
		case string:
			text = x
			if p.Type == TypeInt || p.Type == TypeBool {
				errs = append(errs, FieldError{Field: k, Message: fmt.Sprintf("expected JSON %s, got string %s", jsonKind(p.Type), quote(x))})
				continue
			}
		case json.Number:
			text = x.String()
			if p.Type != TypeInt {
				errs = append(errs, FieldError{Field: k, Message: fmt.Sprintf("expected JSON %s, got number %s", jsonKind(p.Type), x)})
				continue
			}
		case bool:
			text = strconv.FormatBool(x)
			if p.Type != TypeBool {
				errs = append(errs, FieldError{Field: k, Message: fmt.Sprintf("expected JSON %s, got %t", jsonKind(p.Type), x)})
				continue
			}
		default:
			errs = append(errs, FieldError{Field: k, Message: fmt.Sprintf("expected JSON %s, got %T", jsonKind(p.Type), x)})
			continue
		}
		val, err := p.parse(text, false)
		if err != nil {
			errs = append(errs, asFieldError(p.Name, err))
			continue
		}
		out[k] = val
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("decoding parameters of job %s: %w", j.Name, errs)
	}
	return out, nil
}

// jsonFields reads a JSON object's members as DecodeParams needs them:
// strings, json.Number (a number keeps its text, no float64), bools, and
// anything else as encoding/json decodes it. Each value is decoded from its
// own raw JSON.
func jsonFields(data []byte) (map[string]any, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	raw := make(map[string]any, len(fields))
	for k, v := range fields {
		switch {
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, err
			}
			raw[k] = s
		case len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9')):
			raw[k] = json.Number(v)
		case string(v) == "true" || string(v) == "false":
			raw[k] = string(v) == "true"
		default:
			var x any
			_ = json.Unmarshal(v, &x)
			raw[k] = x
		}
	}
	return raw, nil
}

// flatObject is the fast path of jsonFields for what Values.MarshalJSON
// writes for most runs: an object without whitespace whose keys and string
// values have no escapes and whose values are strings, numbers, true or
// false. It reports false for anything else (the caller decodes with
// jsonFields, which also reports the errors), so both read every input
// they accept the same way; it skips encoding/json's per-call decoder,
// which was a tenth of a worker's CPU per run.
func flatObject(data []byte) (map[string]any, bool) {
	if len(data) < 2 || data[0] != '{' || data[len(data)-1] != '}' {
		return nil, false
	}
	out := make(map[string]any, 4)
	i, end := 1, len(data)-1
	if i == end {
		return out, true
	}
	for {
		k, n, ok := plainString(data[i:end])
		if !ok || i+n >= end || data[i+n] != ':' {
			return nil, false
		}
		i += n + 1
		if i >= end {
			return nil, false
		}
		switch c := data[i]; {
		case c == '"':
			v, n, ok := plainString(data[i:end])
			if !ok {
				return nil, false
			}
			out[k], i = v, i+n
		case c == '-' || (c >= '0' && c <= '9'):
			n := jsonNumberLen(data[i:end])
			if n == 0 {
				return nil, false
			}
			out[k], i = json.Number(data[i:i+n]), i+n
		case bytes.HasPrefix(data[i:end], []byte("true")):
			out[k], i = true, i+4
		case bytes.HasPrefix(data[i:end], []byte("false")):
			out[k], i = false, i+5
		default:
			return nil, false
		}
		if i == end {
			return out, true
		}
		if data[i] != ',' {
			return nil, false
		}
		i++
	}
}

// plainString reads a JSON string at the start of b that has no escapes
// and no control characters and is valid UTF-8, and returns it and its
// length with the quotes.
func plainString(b []byte) (string, int, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", 0, false
	}
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			if !utf8.Valid(b[1:i]) {
				return "", 0, false
			}
			return string(b[1:i]), i + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		}
	}
	return "", 0, false
}

// jsonNumberLen returns the length of the JSON number at the start of b,
// 0 when there is none.
func jsonNumberLen(b []byte) int {
	i := 0
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

// jsonKind names the JSON type a parameter type is stored as.
func jsonKind(t ParamType) string {
	switch t {
	case TypeInt:
		return "number"
	case TypeBool:
		return "bool"
	default:
		return "string"
	}
}
