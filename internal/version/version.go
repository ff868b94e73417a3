package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// override, when set with -ldflags -X, replaces the module version.
var override string

// Info describes one build.
type Info struct {
	// Version is the main module's version: "v1.2.0", a pseudo-version,
	// or "(devel)"; "unknown" when the binary carries no build information.
	Version string
	// Revision is the VCS commit the binary was built from; "" when not
	// built from a checkout (or built with -buildvcs=false).
	Revision string
	// Time is the commit's time (RFC 3339); "" when unknown.
	Time string
	// Modified says the checkout had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok, override)
}

// fromBuildInfo reads bi (ok false: none embedded); ver, when not "",
// replaces the module version.
func fromBuildInfo(bi *debug.BuildInfo, ok bool, ver string) Info {
	info := Info{Version: "unknown", GoVersion: runtime.Version()}
	if ok && bi != nil {
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
	}
	if ver != "" {
		info.Version = ver
	}
	return info
}

// ShortRevision is the first 12 characters of Revision, with "+dirty"
// when Modified; "" when the revision is unknown.
func (i Info) ShortRevision() string {
	r := i.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if r != "" && i.Modified {
		r += "+dirty"
	}
	return r
}

// String is one line for `ferry version`:
// "ferry v1.2.0 (commit 0123456789ab, 2026-12-06T15:00:00Z, go1.26.0)".
func (i Info) String() string {
	var details []string
	if r := i.ShortRevision(); r != "" {
		details = append(details, "commit "+r)
	}
	if i.Time != "" {
		details = append(details, i.Time)
	}
	details = append(details, i.GoVersion)
	return fmt.Sprintf("ferry %s (%s)", i.Version, strings.Join(details, ", "))
}
