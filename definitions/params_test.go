package definitions

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"
)

func ptr(s string) *string { return &s }

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestParameterParse(t *testing.T) {
	t.Parallel()
	str := Parameter{Name: "S", Type: TypeString}
	reqStr := Parameter{Name: "OrderNumber", Type: TypeString, Required: true, Pattern: `[A-Za-z0-9_./-]+`, Max: ptr("64")}
	bounded := Parameter{Name: "B", Type: TypeString, Min: ptr("2"), Max: ptr("3")}
	long := Parameter{Name: "L", Type: TypeString, Max: ptr("20000")}
	intP := Parameter{Name: "Quantity", Type: TypeInt}
	intB := Parameter{Name: "Q", Type: TypeInt, Min: ptr("1"), Max: ptr("10")}
	decP := Parameter{Name: "Amount", Type: TypeDecimal}
	decB := Parameter{Name: "A", Type: TypeDecimal, Min: ptr("0.10"), Max: ptr("99.99")}
	boolP := Parameter{Name: "Flag", Type: TypeBool}
	dateP := Parameter{Name: "Day", Type: TypeDate}
	dtP := Parameter{Name: "Since", Type: TypeDateTime}
	enumP := Parameter{Name: "Reason", Type: TypeEnum, Values: []string{"customerRequest", "fraud", "outOfStock"}}

	ascii := func(n int) string { return strings.Repeat("a", n) }
	forty := strings.Repeat("x", 70)

	tests := []struct {
		name    string
		p       Parameter
		in      string
		want    any
		wantErr string // substring of the error; "" means success
	}{
		// string
		{"string plain", str, "hello", "hello", ""},
		{"string keeps spaces", str, "  padded  ", "  padded  ", ""},
		{"string optional empty", str, "", "", ""},
		{"string optional blank", str, "   ", "   ", ""},
		{"string emoji", str, "📦 order 🚚", "📦 order 🚚", ""},
		{"string CJK", str, "注文番号", "注文番号", ""},
		{"string SQL-looking", str, "'; DROP TABLE runs; --", "'; DROP TABLE runs; --", ""},
		{"string 9000 chars", str, ascii(9000), ascii(9000), ""},
		{"string 10000 chars", str, ascii(10000), ascii(10000), ""},
		{"string 10 KB rejected", str, ascii(10240), nil, `parameter S: expected string of at most 10000 characters, got 10240: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"...`},
		{"string max raised", long, ascii(10240), ascii(10240), ""},
		{"string 10000 emoji are 10000 chars", str, strings.Repeat("😀", 10000), strings.Repeat("😀", 10000), ""},
		{"string invalid UTF-8", str, "ab\xffcd", nil, `parameter S: expected string of valid UTF-8, got "ab\xffcd"`},
		{"string NUL", str, "a\x00b", nil, `parameter S: expected string without NUL bytes, got "a\x00b"`},
		{"required empty", reqStr, "", nil, "parameter OrderNumber: required"},
		{"required blank", reqStr, "   ", nil, `parameter OrderNumber: required, got only white space "   "`},
		{"pattern ok", reqStr, "SO-2026/001_a.b", "SO-2026/001_a.b", ""},
		{"pattern must match whole", reqStr, "SO 1", nil, `parameter OrderNumber: expected string matching pattern [A-Za-z0-9_./-]+, got "SO 1"`},
		{"pattern SQL", reqStr, "1' OR '1'='1", nil, "expected string matching pattern"},
		{"max 64", reqStr, ascii(65), nil, "expected string of at most 64 characters, got 65"},
		{"min length", bounded, "a", nil, `parameter B: expected string of at least 2 characters, got 1: "a"`},
		{"length in runes", bounded, "äöü", "äöü", ""},
		{"long input quoted short", reqStr, forty, nil, `got 70: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...`},

		// int
		{"int", intP, "42", int64(42), ""},
		{"int plus", intP, "+7", int64(7), ""},
		{"int minus", intP, "-7", int64(-7), ""},
		{"int trimmed", intP, " 12 ", int64(12), ""},
		{"int max", intP, "9223372036854775807", int64(9223372036854775807), ""},
		{"int min", intP, "-9223372036854775808", int64(-9223372036854775808), ""},
		{"int overflow", intP, "9223372036854775808", nil, `parameter Quantity: expected int, got "9223372036854775808": out of range`},
		{"int empty", intP, "", nil, `parameter Quantity: expected int, got ""`},
		{"int blank", intP, "  ", nil, `expected int, got "  "`},
		{"int letters", intP, "abc", nil, `parameter Quantity: expected int, got "abc"`},
		{"int exponent", intP, "1e3", nil, `expected int, got "1e3"`},
		{"int hex", intP, "0x10", nil, `expected int, got "0x10"`},
		{"int underscore", intP, "1_000", nil, `expected int, got "1_000"`},
		{"int decimal", intP, "1.0", nil, `expected int, got "1.0"`},
		{"int bounds ok", intB, "10", int64(10), ""},
		{"int below min", intB, "0", nil, `parameter Q: expected int >= 1, got "0"`},
		{"int above max", intB, "11", nil, `parameter Q: expected int <= 10, got "11"`},

		// decimal
		{"decimal", decP, "12.50", dec("12.50"), ""},
		{"decimal 0.1", decP, "0.1", dec("0.1"), ""},
		{"decimal int", decP, "100", dec("100"), ""},
		{"decimal negative", decP, "-0.005", dec("-0.005"), ""},
		{"decimal plus", decP, "+1.5", dec("1.5"), ""},
		{"decimal leading dot", decP, ".5", dec("0.5"), ""},
		{"decimal 40 digits", decP, "1234567890123456789012345678901234.567890", dec("1234567890123456789012345678901234.567890"), ""},
		{"decimal 65 digits", decP, strings.Repeat("9", 65), dec(strings.Repeat("9", 65)), ""},
		{"decimal 66 digits", decP, strings.Repeat("9", 66), nil, "more than 65 digits"},
		{"decimal huge", decP, strings.Repeat("1", 100000), nil, "more than 65 digits"},
		{"decimal exponent", decP, "1e309", nil, `parameter Amount: expected decimal, got "1e309": want digits with an optional fraction, no exponent`},
		{"decimal small exponent", decP, "1E2", nil, `expected decimal, got "1E2"`},
		{"decimal NaN", decP, "NaN", nil, `expected decimal, got "NaN"`},
		{"decimal Inf", decP, "Inf", nil, `expected decimal, got "Inf"`},
		{"decimal -Infinity", decP, "-Infinity", nil, `expected decimal, got "-Infinity"`},
		{"decimal empty", decP, "", nil, `expected decimal, got ""`},
		{"decimal comma", decP, "1,5", nil, `expected decimal, got "1,5"`},
		{"decimal two dots", decP, "1.2.3", nil, `expected decimal, got "1.2.3"`},
		{"decimal lone dot", decP, ".", nil, `expected decimal, got "."`},
		{"decimal sign only", decP, "-", nil, `expected decimal, got "-"`},
		{"decimal min exact", decB, "0.10", dec("0.10"), ""},
		{"decimal below min exact", decB, "0.0999999999999999999999", nil, `parameter A: expected decimal >= 0.10, got "0.0999999999999999999999"`},
		{"decimal above max", decB, "99.991", nil, `parameter A: expected decimal <= 99.99, got "99.991"`},

		// bool
		{"bool true", boolP, "true", true, ""},
		{"bool TRUE", boolP, "TRUE", true, ""},
		{"bool yes", boolP, "Yes", true, ""},
		{"bool 1", boolP, "1", true, ""},
		{"bool false", boolP, "false", false, ""},
		{"bool no", boolP, "no", false, ""},
		{"bool 0", boolP, " 0 ", false, ""},
		{"bool bad", boolP, "maybe", nil, `parameter Flag: expected bool (true/false, yes/no, 1/0), got "maybe"`},
		{"bool empty", boolP, "", nil, `expected bool`},

		// date
		{"date", dateP, "2026-02-28", Date{2026, time.February, 28}, ""},
		{"date leap", dateP, "2024-02-29", Date{2024, time.February, 29}, ""},
		{"date not leap", dateP, "2026-02-29", nil, "day out of range"},
		{"date feb 30", dateP, "2026-02-30", nil, `parameter Day: expected date (YYYY-MM-DD), got "2026-02-30": day out of range`},
		{"date month 13", dateP, "2026-13-01", nil, `parameter Day: expected date (YYYY-MM-DD), got "2026-13-01": month out of range`},
		{"date day 0", dateP, "2026-01-00", nil, "day out of range"},
		{"date short", dateP, "2026-1-2", nil, "want YYYY-MM-DD"},
		{"date with time", dateP, "2026-01-02T00:00:00Z", nil, "want YYYY-MM-DD"},
		{"date slashes", dateP, "2026/01/02", nil, "want YYYY-MM-DD"},
		{"date empty", dateP, "", nil, "expected date"},

		// datetime
		{"datetime Z", dtP, "2026-03-01T10:00:00Z", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), ""},
		{"datetime offset to UTC", dtP, "2026-03-01T10:00:00+01:00", time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), ""},
		{"datetime fraction", dtP, "2026-03-01T10:00:00.123456789-02:30", time.Date(2026, 3, 1, 12, 30, 0, 123456789, time.UTC), ""},
		{"datetime no offset", dtP, "2026-03-01T10:00:00", nil, `parameter Since: expected datetime (RFC 3339 with offset, e.g. 2026-01-02T15:04:05Z), got "2026-03-01T10:00:00": missing time zone offset`},
		{"datetime date only", dtP, "2026-03-01", nil, "expected datetime"},
		{"datetime space", dtP, "2026-03-01 10:00:00Z", nil, "expected datetime"},
		{"datetime bad day", dtP, "2026-02-30T10:00:00Z", nil, "expected datetime"},

		// enum
		{"enum", enumP, "fraud", "fraud", ""},
		{"enum case mismatch", enumP, "CustomerRequest", nil, `parameter Reason: expected enum (one of customerRequest, fraud, outOfStock), got "CustomerRequest" (did you mean "customerRequest"?)`},
		{"enum padded", enumP, " fraud", nil, `(did you mean "fraud"?)`},
		{"enum unknown", enumP, "bored", nil, `parameter Reason: expected enum (one of customerRequest, fraud, outOfStock), got "bored"`},
		{"enum empty", enumP, "", nil, `got ""`},

		// unknown type
		{"unknown type", Parameter{Name: "X", Type: "strng"}, "a", nil, `parameter X: unknown parameter type "strng"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.p.Parse(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
				require.Nil(t, got)
				var fe FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, tt.p.Name, fe.Field)
				require.Less(t, len(err.Error()), 300, "messages stay short whatever the input")
				if tt.p.Type != "strng" && !strings.HasPrefix(fe.Message, "required") {
					require.Contains(t, err.Error(), string(tt.p.Type), "the message names the expected type")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if d, ok := tt.want.(decimal.Decimal); ok {
				require.True(t, d.Equal(got.(decimal.Decimal)))
			}
		})
	}
}

func TestDecimalExactness(t *testing.T) {
	t.Parallel()
	p := Parameter{Name: "A", Type: TypeDecimal}
	parse := func(s string) decimal.Decimal {
		v, err := p.Parse(s)
		require.NoError(t, err)
		return v.(decimal.Decimal)
	}
	require.True(t, parse("0.1").Add(parse("0.2")).Equal(parse("0.3")), "0.1+0.2 == 0.3 exactly")
	v := Values{"A": parse("12.50"), "B": parse("1234567890123456789012345678901234567890.1")}
	require.Equal(t, "12.50", v.Text()["A"], "scale kept")
	require.Equal(t, "1234567890123456789012345678901234567890.1", v.Text()["B"])
	data, err := v.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"A":"12.50","B":"1234567890123456789012345678901234567890.1"}`, string(data))
}

func testJob() *Job {
	return &Job{
		Name: "Everything",
		Parameters: []Parameter{
			{Name: "OrderNumber", Type: TypeString, Required: true, Max: ptr("64")},
			{Name: "Reason", Type: TypeEnum, Values: []string{"customerRequest", "fraud"}, Default: ptr("customerRequest")},
			{Name: "Quantity", Type: TypeInt, Min: ptr("1")},
			{Name: "Amount", Type: TypeDecimal},
			{Name: "Express", Type: TypeBool, Default: ptr("no")},
			{Name: "Day", Type: TypeDate},
			{Name: "Since", Type: TypeDateTime},
			{Name: "Note", Type: TypeString},
		},
	}
}

func TestParseParams(t *testing.T) {
	t.Parallel()
	j := testJob()
	tests := []struct {
		name    string
		raw     map[string]string
		want    Values
		wantErr string
	}{
		{
			name: "defaults applied, absent optional left out",
			raw:  map[string]string{"OrderNumber": "SO-1"},
			want: Values{"OrderNumber": "SO-1", "Reason": "customerRequest", "Express": false},
		},
		{
			name: "empty optional counts as absent",
			raw:  map[string]string{"OrderNumber": "SO-1", "Reason": "", "Quantity": "", "Note": ""},
			want: Values{"OrderNumber": "SO-1", "Reason": "customerRequest", "Express": false},
		},
		{
			name: "every type",
			raw: map[string]string{"OrderNumber": "注文-1", "Reason": "fraud", "Quantity": "3", "Amount": "12.50",
				"Express": "yes", "Day": "2026-02-28", "Since": "2026-03-01T10:00:00+01:00", "Note": " "},
			want: Values{"OrderNumber": "注文-1", "Reason": "fraud", "Quantity": int64(3), "Amount": dec("12.50"),
				"Express": true, "Day": Date{2026, 2, 28}, "Since": time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), "Note": " "},
		},
		{
			name:    "required missing",
			raw:     map[string]string{},
			wantErr: "parameter OrderNumber: required",
		},
		{
			name:    "required empty",
			raw:     map[string]string{"OrderNumber": ""},
			wantErr: "parameter OrderNumber: required",
		},
		{
			name: "all problems at once",
			raw:  map[string]string{"Bogus": "1", "Quantity": "abc", "Reason": "Fraud", "Day": "2026-02-30", "Amount": "1e309"},
			wantErr: `parameter Bogus: unknown parameter of job Everything (it takes OrderNumber, Reason, Quantity, Amount, Express, Day, Since, Note); ` +
				`parameter OrderNumber: required; ` +
				`parameter Reason: expected enum (one of customerRequest, fraud), got "Fraud" (did you mean "fraud"?); ` +
				`parameter Quantity: expected int, got "abc"; ` +
				`parameter Amount: expected decimal, got "1e309": want digits with an optional fraction, no exponent; ` +
				`parameter Day: expected date (YYYY-MM-DD), got "2026-02-30": day out of range`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := j.ParseParams(tt.raw)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				var pe ParamErrors
				require.ErrorAs(t, err, &pe)
				require.Nil(t, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	_, err := j.ParseParams(map[string]string{"Quantity": "x", "OrderNumber": ""})
	require.Equal(t, map[string]string{"OrderNumber": "required", "Quantity": `expected int, got "x"`}, err.(ParamErrors).Fields())

	none := &Job{Name: "None"}
	v, err := none.ParseParams(nil)
	require.NoError(t, err)
	require.NotNil(t, v)
	_, err = none.ParseParams(map[string]string{"X": "1"})
	require.EqualError(t, err, "parameter X: unknown parameter of job None (it takes no parameters)")
}

func TestValuesJSONRoundTrip(t *testing.T) {
	t.Parallel()
	j := testJob()
	v, err := j.ParseParams(map[string]string{
		"OrderNumber": "'; DROP TABLE runs; -- 📦 <&>", "Reason": "fraud", "Quantity": "9223372036854775807",
		"Amount": "-0.000000000000000000000000000000000000000012300", "Express": "1", "Day": "2024-02-29",
		"Since": "2026-03-01T10:00:00.000000001-05:00", "Note": "line1\nline2\t\"q\"",
	})
	require.NoError(t, err)
	data, err := v.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, `{"Amount":"-0.000000000000000000000000000000000000000012300","Day":"2024-02-29","Express":true,`+
		`"Note":"line1\nline2\t\"q\"","OrderNumber":"'; DROP TABLE runs; -- 📦 <&>","Quantity":9223372036854775807,`+
		`"Reason":"fraud","Since":"2026-03-01T15:00:00.000000001Z"}`, string(data))

	back, err := j.DecodeParams(data)
	require.NoError(t, err)
	require.Equal(t, v, back)
	require.Equal(t, v.Text(), back.Text())

	// json.Marshal goes through MarshalJSON too.
	viaStd, err := json.Marshal(map[string]any{"p": v})
	require.NoError(t, err)
	require.Contains(t, string(viaStd), `"Quantity":9223372036854775807`)

	require.Equal(t, map[string]string{
		"Amount": "-0.000000000000000000000000000000000000000012300", "Day": "2024-02-29", "Express": "true",
		"Note": "line1\nline2\t\"q\"", "OrderNumber": "'; DROP TABLE runs; -- 📦 <&>", "Quantity": "9223372036854775807",
		"Reason": "fraud", "Since": "2026-03-01T15:00:00.000000001Z",
	}, v.Text())

	empty, err := Values(nil).MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, "{}", string(empty))
	got, err := j.DecodeParams([]byte("null"))
	require.NoError(t, err)
	require.Empty(t, got)
}

func TestDecodeParamsErrors(t *testing.T) {
	t.Parallel()
	j := testJob()
	tests := []struct {
		in, wantErr string
	}{
		{`{"Bogus":"x"}`, "decoding parameters of job Everything: parameter Bogus: not a parameter of job Everything"},
		{`{"Quantity":"3"}`, `decoding parameters of job Everything: parameter Quantity: expected JSON number, got string "3"`},
		{`{"Quantity":1.5}`, `parameter Quantity: expected int, got "1.5"`},
		{`{"Amount":1.5}`, "parameter Amount: expected JSON string, got number 1.5"},
		{`{"Express":"true"}`, `parameter Express: expected JSON bool, got string "true"`},
		{`{"Day":"2026-02-30"}`, "day out of range"},
		{`{"Since":"2026-03-01T10:00:00"}`, "missing time zone offset"},
		{`{"Note":null}`, "parameter Note: expected JSON string, got <nil>"},
		{`[1]`, "decoding parameters of job Everything: json: cannot unmarshal array"},
	}
	for _, tt := range tests {
		_, err := j.DecodeParams([]byte(tt.in))
		require.ErrorContains(t, err, tt.wantErr, tt.in)
	}
	// Constraints are not re-checked for stored values.
	v, err := j.DecodeParams([]byte(`{"Quantity":0,"Reason":"retired"}`))
	require.NoError(t, err)
	require.Equal(t, Values{"Quantity": int64(0), "Reason": "retired"}, v)
}

func TestValuesAccessors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	v := Values{"s": "x", "i": int64(5), "d": dec("1.50"), "b": true, "day": Date{2026, 1, 2}, "t": now}
	require.Equal(t, "x", v.String("s"))
	require.Equal(t, int64(5), v.Int("i"))
	require.Equal(t, "1.50", decimalText(v.Decimal("d")))
	require.True(t, v.Bool("b"))
	require.Equal(t, Date{2026, 1, 2}, v.Date("day"))
	require.Equal(t, now, v.Time("t"))
	// absent or other type: zero values
	require.Equal(t, "", v.String("i"))
	require.Zero(t, v.Int("s"))
	require.True(t, v.Decimal("s").IsZero())
	require.False(t, v.Bool("missing"))
	require.True(t, v.Date("s").IsZero())
	require.True(t, v.Time("s").IsZero())

	_, err := Values{"x": 1.5}.MarshalJSON()
	require.ErrorContains(t, err, "encoding parameter x: unsupported parameter value type float64")
}

func TestDate(t *testing.T) {
	t.Parallel()
	d := Date{2026, time.March, 7}
	require.Equal(t, "2026-03-07", d.String())
	data, err := json.Marshal(d)
	require.NoError(t, err)
	require.Equal(t, `"2026-03-07"`, string(data))
	var back Date
	require.NoError(t, json.Unmarshal(data, &back))
	require.Equal(t, d, back)
	require.Error(t, json.Unmarshal([]byte(`"2026-02-30"`), &back))
	require.Error(t, json.Unmarshal([]byte(`20260301`), &back))
	require.Equal(t, time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC), d.In(nil))
}
