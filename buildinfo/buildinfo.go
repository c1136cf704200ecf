// Package buildinfo owns what build a jobrunner binary is: its module
// version, the VCS revision and time it was built from, and the Go
// version, read from the information the Go toolchain embeds
// (runtime/debug.ReadBuildInfo). `jobrunner version`, the
// jobrunner_build_info metric, /readyz and the dashboard's footer show it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Info describes the running binary.
type Info struct {
	// Version is the main module's version ("(devel)" for a build from a
	// checkout, as `go build` records it).
	Version string `json:"version"`
	// Revision and Time are the VCS commit and its time ("" when the build
	// had no VCS information); Modified is true when the work tree had
	// uncommitted changes.
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	// GoVersion is the toolchain that built it.
	GoVersion string `json:"goVersion"`
}

var (
	once sync.Once
	info Info
)

// Read returns the binary's build information (computed once).
func Read() Info {
	once.Do(func() {
		info = Info{Version: "(unknown)", GoVersion: runtime.Version()}
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.Time = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	})
	return info
}

// Short returns the version and, when known, the first 12 characters of
// the revision ("(devel) 1a2b3c4d5e6f+dirty").
func (i Info) Short() string {
	s := i.Version
	if i.Revision != "" {
		r := i.Revision
		if len(r) > 12 {
			r = r[:12]
		}
		s += " " + r
		if i.Modified {
			s += "+dirty"
		}
	}
	return s
}

// String is the one-paragraph form `jobrunner version` prints.
func (i Info) String() string {
	s := fmt.Sprintf("jobrunner %s\n  go:       %s\n", i.Version, i.GoVersion)
	if i.Revision != "" {
		mod := ""
		if i.Modified {
			mod = " (with uncommitted changes)"
		}
		s += fmt.Sprintf("  revision: %s%s\n  time:     %s\n", i.Revision, mod, i.Time)
	}
	return s
}
