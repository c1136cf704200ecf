package definitions

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

// fuzzParams are the parameters FuzzParseParam parses with, one per type.
var fuzzParams = []Parameter{
	{Name: "S", Type: TypeString},
	{Name: "P", Type: TypeString, Pattern: `[A-Za-z0-9_./-]+`, Min: ptr("1"), Max: ptr("64")},
	{Name: "I", Type: TypeInt},
	{Name: "IB", Type: TypeInt, Min: ptr("-5"), Max: ptr("5")},
	{Name: "D", Type: TypeDecimal},
	{Name: "DB", Type: TypeDecimal, Min: ptr("0.01"), Max: ptr("100.00")},
	{Name: "B", Type: TypeBool},
	{Name: "DA", Type: TypeDate},
	{Name: "DT", Type: TypeDateTime},
	{Name: "E", Type: TypeEnum, Values: []string{"customerRequest", "fraud", "outOfStock"}},
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"", " ", "abc", "42", "-7", "+3", "9223372036854775808", "1e309", "NaN", "Inf",
		"0.1", "12.50", "-0.0", ".5", "true", "YES", "0", "2026-02-28", "2026-02-30", "0000-01-01",
		"2026-03-01T10:00:00Z", "0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-03-01T10:00:00",
		"fraud", "Fraud", "📦", "注文", "'; DROP TABLE runs; --", "a\x00b", "\xff"} {
		for i := range fuzzParams {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, raw string) {
		p := fuzzParams[int(which)%len(fuzzParams)]
		job := &Job{Name: "Fuzz", Parameters: []Parameter{p}}
		v, err := p.Parse(raw)
		if err != nil {
			require.Nil(t, v)
			require.Less(t, len(err.Error()), 400, "error messages stay short")
			return
		}
		vals := Values{p.Name: v}
		text := vals.Text()[p.Name]

		// The canonical text parses back to the same value.
		again, err := p.Parse(text)
		require.NoError(t, err, "canonical text %q of %q", text, raw)
		require.Equal(t, text, Values{p.Name: again}.Text()[p.Name])

		// JSON round trip.
		data, err := vals.MarshalJSON()
		require.NoError(t, err)
		back, err := job.DecodeParams(data)
		require.NoError(t, err, "%s", data)
		require.Equal(t, vals.Text(), back.Text())
		require.Equal(t, vals, back)
	})
}

func FuzzLoad(f *testing.F) {
	seeds := []string{
		"",
		"jobs: [{name: J, connection: c, processor: Noop}]\nconnections: [{name: c, type: noop}]\n",
		"jobs:\n  - name: J\n    parameters:\n      - {name: A, type: decimal, min: 1, max: 0.5, default: 2}\n",
		"connections:\n  - &a {name: x, type: http}\n  - *a\n",
		"jobs: [{name: J, schedule: {cron: '* * * * *', timezone: Local}, retry: {maxAttempts: 0}}]",
		"orderStatuses: {mappings: [{erpStatus: A, commerceStatus: B}], cancellableStatuses: [B, C]}",
		"jobs: [{steps: [{name: a}, {name: a, connection: x}], uniqueBy: [q]}]",
		"a: [\n",
		"---\njobs: []\n---\njobs: []\n",
		"jobs: {settings: {a: {b: {c: [1, 2.5, .nan, 0x1F, true, ~]}}}}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := LoadFS(fstest.MapFS{"a.yaml": {Data: data}, "b.yaml": {Data: data}}, ".")
		if err != nil {
			_ = err.Error()
		}
		if set == nil {
			return
		}
		_ = set.Validate(fakeCatalog{})
		_ = set.Validate(nil)
		set.ApplyDefaults()
		for _, j := range set.Jobs {
			_, _ = j.ParseParams(map[string]string{"x": "1"})
			for i := range j.Parameters {
				_, _ = j.Parameters[i].Parse("1")
			}
		}
		for _, c := range set.Connections {
			_ = c.ExpandedSettings(func(string) string { return "v" })
			_, _ = c.ResolveSecrets(func(string) string { return "" })
		}
	})
}
