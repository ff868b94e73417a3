package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

// defaultDrain is how long a node drains on SIGTERM by default
// (shutdown.timeout).
var defaultDrain = server.Default().Shutdown.Timeout

// directives returns the "Key=value" lines of a systemd unit (the last
// of a repeated key wins, as for these keys in systemd).
func directives(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			out[k] = v
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	d := directives(t, "systemd/ferry.service")
	if d["LimitNOFILE"] == "" || d["LimitNOFILE"] == "infinity" {
		t.Errorf("LimitNOFILE = %q: set a large explicit limit", d["LimitNOFILE"])
	}
	if sig := d["KillSignal"]; sig != "" && sig != "SIGTERM" {
		t.Errorf("KillSignal = %s: the node drains on SIGTERM", sig)
	}
	stop, err := time.ParseDuration(d["TimeoutStopSec"])
	if err != nil || stop <= defaultDrain {
		t.Errorf("TimeoutStopSec = %q (%v): must be above the drain (%v)", d["TimeoutStopSec"], err, defaultDrain)
	}
	if !strings.Contains(d["ExecStart"], "ferry serve") {
		t.Errorf("ExecStart = %q", d["ExecStart"])
	}
	if d["User"] == "" && d["DynamicUser"] != "yes" {
		t.Error("the unit runs as root")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// One instruction per line: join the continued ones.
	src := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	for what, re := range map[string]string{
		"a static build":            `CGO_ENABLED=0 go build`,
		"a non-root user":           `(?m)^USER [1-9][0-9]*`,
		"a health check":            `(?m)^HEALTHCHECK .*CMD \["/ferry", "health"`,
		"SIGTERM to stop (drain)":   `(?m)^STOPSIGNAL SIGTERM`,
		"an empty or minimal base":  `(?m)^FROM (scratch|gcr\.io/distroless/static)`,
		"the ferry entrypoint":      `(?m)^ENTRYPOINT \["/ferry"\]`,
		"the serve command default": `(?m)^CMD \["serve"\]`,
	} {
		if !regexp.MustCompile(re).MatchString(src) {
			t.Errorf("Dockerfile lacks %s (%s)", what, re)
		}
	}
}
