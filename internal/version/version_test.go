package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/ferry-io/ferry", Version: "v1.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-06T15:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name     string
		bi       *debug.BuildInfo
		ok       bool
		override string
		want     Info
		line     string
	}{
		{"release from a checkout", bi, true, "", Info{Version: "v1.2.0", Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-12-06T15:00:00Z", Modified: true, GoVersion: "go1.26.0"},
			"ferry v1.2.0 (commit 0123456789ab+dirty, 2026-12-06T15:00:00Z, go1.26.0)"},
		{"ldflags override", bi, true, "v1.2.1-rc1", Info{Version: "v1.2.1-rc1", Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-12-06T15:00:00Z", Modified: true, GoVersion: "go1.26.0"},
			"ferry v1.2.1-rc1 (commit"},
		{"go install without vcs", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}}, true, "", Info{Version: "v1.2.0", GoVersion: "go1.26.0"},
			"ferry v1.2.0 (go1.26.0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(tt.bi, tt.ok, tt.override)
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			if !strings.HasPrefix(got.String(), tt.line) {
				t.Errorf("String() = %q, want prefix %q", got.String(), tt.line)
			}
		})
	}
	if got := fromBuildInfo(nil, false, ""); got.Version != "unknown" || got.GoVersion == "" {
		t.Errorf("without build info: %+v", got)
	}
}

// TestGetInTestBinary: a test binary has build information too.
func TestGetInTestBinary(t *testing.T) {
	if got := Get(); got.Version == "" || got.GoVersion == "" {
		t.Errorf("Get() = %+v", got)
	}
}
