package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/jobrunner/jobrunner/definitions"
)

// decodeJSON reads r's body (at most MaxBodyBytes) into v, rejecting
// unknown fields, trailing data and syntax errors with 400 and a larger
// body with 413. An empty body leaves v untouched when allowEmpty, and is
// a 400 otherwise.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	return decodeJSONMax(w, r, v, allowEmpty, MaxBodyBytes)
}

// decodeJSONMax is decodeJSON with a body limit of max bytes.
func decodeJSONMax(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool, max int64) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return asError(err)
		}
		return &Error{Kind: KindInvalid, Code: "bad_body", Message: "cannot read the request body", Err: err}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			return nil
		}
		return errorf(KindInvalid, "bad_body", "a JSON body is required")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &Error{Kind: KindUnsupportedMedia, Code: "unsupported_media_type",
				Message: fmt.Sprintf("the body must be JSON (Content-Type: application/json), not %q", ct)}
		}
	}
	if key, ok := duplicateKey(data); ok {
		return &Error{Kind: KindInvalid, Code: "bad_body", Message: fmt.Sprintf("invalid JSON body: key %q appears twice in one object", key)}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &Error{Kind: KindInvalid, Code: "bad_body", Message: "invalid JSON body: " + strings.TrimPrefix(err.Error(), "json: "), Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(KindInvalid, "bad_body", "invalid JSON body: unexpected data after the JSON value")
	}
	return nil
}

// duplicateKey reports the first key that appears twice in one JSON
// object of data (encoding/json keeps the last silently). Invalid JSON is
// left to the decoder to report.
func duplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.obj {
					top.expect = true // the value ends here; the next string is a key
				}
				stack = append(stack, &frame{obj: t == '{', keys: map[string]bool{}, expect: t == '{'})
				continue
			case '}', ']':
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.obj && top.expect {
				if top.keys[t] {
					return t, true
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.obj {
			top.expect = true // a scalar value ended
		}
	}
}

// query parses r's query string strictly: a malformed one (such as
// "param.OrderNumber=%") is a 400, never a filter silently dropped.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Code: "bad_query", Message: "malformed query string: " + err.Error() + " (escape % as %25)", Err: err}
	}
	return q, nil
}

// paramsText converts JSON parameter values to the text that
// definitions.Job.ParseParams parses: a string as it is; a number as its
// literal text (so 1e309 or a 40-digit decimal reaches the parameter's own
// parser unchanged, never through float64); a bool as "true"/"false";
// null as absent (the parameter's default applies). An object or array is
// a field error. Names are checked by ParseParams, not here.
func paramsText(in map[string]json.RawMessage) (map[string]string, map[string]string) {
	out := make(map[string]string, len(in))
	var bad map[string]string
	for name, raw := range in {
		text, present, msg := paramText(raw)
		if msg != "" {
			if bad == nil {
				bad = map[string]string{}
			}
			bad[name] = msg
			continue
		}
		if present {
			out[name] = text
		}
	}
	return out, bad
}

func paramText(raw json.RawMessage) (text string, present bool, problem string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false, ""
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, "not a valid JSON string"
		}
		return s, true, ""
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", false, "not a valid JSON value"
		}
		if b {
			return "true", true, ""
		}
		return "false", true, ""
	case 'n':
		return "", false, ""
	case '{':
		return "", false, "must be a string, number or boolean, not an object"
	case '[':
		return "", false, "must be a string, number or boolean, not an array"
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&n); err != nil {
		return "", false, "not a valid JSON value"
	}
	return string(raw), true, ""
}

// parseParams turns JSON parameter values into typed Values of job,
// reporting every problem at once as one 400 with a message per field.
func parseParams(job *definitions.Job, raw map[string]json.RawMessage) (definitions.Values, error) {
	text, bad := paramsText(raw)
	return parseText(job, text, bad)
}

// parseText parses text parameters with job.ParseParams, merging earlier
// per-field problems (which win for their field).
func parseText(job *definitions.Job, text map[string]string, bad map[string]string) (definitions.Values, error) {
	vals, err := job.ParseParams(text)
	if err == nil && len(bad) == 0 {
		return vals, nil
	}
	fields := map[string]string{}
	if err != nil {
		var pe definitions.ParamErrors
		if !errors.As(err, &pe) {
			return nil, &Error{Kind: KindInvalid, Code: "invalid_parameters", Message: "invalid parameters", Err: err}
		}
		for k, v := range pe.Fields() {
			fields[k] = v
		}
	}
	for k, v := range bad {
		fields[k] = v
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	return nil, &Error{Kind: KindInvalid, Code: "invalid_parameters",
		Message: "invalid parameters: " + strings.Join(names, ", "), Fields: fields, Err: err}
}
