package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadAndFormat(t *testing.T) {
	t.Parallel()
	i := Read()
	require.NotEmpty(t, i.Version)
	require.True(t, strings.HasPrefix(i.GoVersion, "go"), i.GoVersion)
	require.Equal(t, runtime.Version(), i.GoVersion)
	x := Info{Version: "v1.2.3", Revision: "0123456789abcdef0123", Time: "2026-12-01T00:00:00Z", Modified: true, GoVersion: "go1.26.8"}
	require.Equal(t, "v1.2.3 0123456789ab+dirty", x.Short())
	require.Equal(t, "jobrunner v1.2.3\n  go:       go1.26.8\n  revision: 0123456789abcdef0123 (with uncommitted changes)\n  time:     2026-12-01T00:00:00Z\n", x.String())
	require.Equal(t, "v0.1.0", Info{Version: "v0.1.0"}.Short())
}
