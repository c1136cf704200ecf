package definitions

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFlatObjectReadsAsEncodingJSON: the fast path of DecodeParams reads
// every object it accepts exactly as the encoding/json path does, and
// leaves everything else (escapes, whitespace, nesting, bad numbers, bad
// UTF-8, trailing commas) to it.
func TestFlatObjectReadsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		fast bool
	}{
		{`{}`, true},
		{`{"OrderNumber":"WEB000123"}`, true},
		{`{"a":"x","b":-12,"c":true,"d":false,"e":"","f":0.5,"g":1e3,"h":-0,"i":2E-2}`, true},
		{`{"a":"x","a":"y"}`, true}, // last wins, as encoding/json
		{`{"ü":"ß 日本"}`, true},
		{`{"a":"x\"y"}`, false},
		{`{"a":"\u00e9"}`, false},
		{`{ "a":"x"}`, false},
		{`{"a": "x"}`, false},
		{`{"a":"x",}`, false},
		{`{"a":null}`, false},
		{`{"a":{"b":1}}`, false},
		{`{"a":[1]}`, false},
		{`{"a":01}`, false},
		{`{"a":1.}`, false},
		{`{"a":-}`, false},
		{`{"a":1e}`, false},
		{`{"a":truex}`, false},
		{`{"a":tru}`, false},
		{`{"a":"x"`, false},
		{`{"a"}`, false},
		{`{"a":}`, false},
		{`{,}`, false},
		{"{\"a\":\"\xff\"}", false},
		{"{\"a\":\"x\ty\"}", false},
		{`null`, false},
		{`[]`, false},
		{``, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := flatObject([]byte(tt.in))
			require.Equal(t, tt.fast, ok)
			if !ok {
				return
			}
			want, err := jsonFields([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// FuzzFlatObject: whatever the fast path accepts, encoding/json accepts and
// reads the same.
func FuzzFlatObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"x","b":-1.5e3,"c":true}`, `{"a":"x\"y"}`, `{"a":01}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := flatObject([]byte(in))
		if !ok {
			return
		}
		want, err := jsonFields([]byte(in))
		require.NoError(t, err, "the fast path accepted %q", in)
		require.Equal(t, want, got)
	})
}

// TestWriteJSONStringMatchesEncodingJSON: the ASCII fast path writes what
// encoding/json (without HTML escaping) writes.
func TestWriteJSONStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "WEB000123", "a b", `a"b`, `a\b`, "a\nb", "\x7f", "<&>", "é", "\u2028", "\xff", "tab\t"} {
		require.Equal(t, slowJSONString(s), fastJSONString(s), "%q", s)
	}
}

// FuzzWriteJSONString: the fast path and encoding/json agree on any string.
func FuzzWriteJSONString(f *testing.F) {
	f.Add("WEB000123")
	f.Add(`a"b\c`)
	f.Fuzz(func(t *testing.T, s string) {
		require.Equal(t, slowJSONString(s), fastJSONString(s))
	})
}

func fastJSONString(s string) string {
	var b bytes.Buffer
	writeJSONString(&b, s)
	return b.String()
}

func slowJSONString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
