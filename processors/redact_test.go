package processors_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobrunner/jobrunner/definitions"
	"github.com/jobrunner/jobrunner/processors"
)

func TestRedactor(t *testing.T) {
	t.Parallel()
	r := processors.NewRedactor(map[string]string{
		"token":    "s3cr3t-token-value",
		"key":      "tcp9",  // short: whole words only
		"x":        "t",     // too short to hide
		"username": "order", // an identity: only inside the basic-auth encoding
		"password": `p@ss"word`,
	})
	cases := []struct{ in, want string }{
		{"Bearer s3cr3t-token-value sent", "Bearer [REDACTED] sent"},
		{"dial tcp 127.0.0.1: refused", "dial tcp 127.0.0.1: refused"},
		{"key tcp9 and tcp99 and xtcp9", "key [REDACTED] and tcp99 and xtcp9"},
		{"tcp9tcp9 tcp9", "tcp9tcp9 [REDACTED]"},
		{"order WEB000123 not found", "order WEB000123 not found"},
		{"Authorization: Basic b3JkZXI6cEBzcyJ3b3Jk", "Authorization: Basic [REDACTED]"},
		{`{"pw":"p@ss\"word"}`, `{"pw":"[REDACTED]"}`},
		{"?t=s3cr3t-token-value&x=1", "?t=[REDACTED]&x=1"},
		{"pass p%40ss%22word in a URL", "pass [REDACTED] in a URL"},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, r.Redact(tc.in), tc.in)
	}
	var none *processors.Redactor
	require.Equal(t, "x", none.Redact("x"))
	require.True(t, none.Empty())
	w := r.With("access-token-1234567")
	require.Equal(t, "[REDACTED] [REDACTED]", w.Redact("access-token-1234567 s3cr3t-token-value"))
}

func TestKnownSettingsChecker(t *testing.T) {
	t.Parallel()
	ch := processors.KnownSettings("command", "dir")
	probs := ch.CheckConnection(&definitions.Connection{Name: "c", Type: "x", Settings: map[string]any{"comand": "a", "dir": "/"}, Preset: "p"})
	require.Len(t, probs, 2)
	require.Equal(t, "settings.comand", probs[0].Key)
	require.Contains(t, probs[0].Message, `(did you mean "command"?)`)
	require.Equal(t, "preset", probs[1].Key)
	require.Contains(t, processors.KnownSettings().CheckConnection(&definitions.Connection{Settings: map[string]any{"timout": 1}})[0].Message, "it has none")
	require.Len(t, ch.CheckUse(nil, definitions.Step{Operation: "x", Inputs: map[string]string{"a": "b"}}, &definitions.Connection{Name: "c", Type: "x"}), 2)
}
