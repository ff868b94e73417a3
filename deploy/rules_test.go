package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runbookPrefix is where every alert's runbook_url points.
const runbookPrefix = "https://github.com/ferry-io/ferry/blob/main/docs/operations.md#"

// TestAlertsLinkToRunbook: every alert has a severity, a summary and a
// runbook_url whose anchor is a heading of docs/operations.md.
func TestAlertsLinkToRunbook(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[githubAnchor(strings.TrimLeft(h, "# "))] = true
		}
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join("prometheus", "ferry-alerts.yml"), &rules)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookPrefix)
			if !ok {
				t.Errorf("%s: runbook_url %q is not under %s", r.Alert, r.Annotations["runbook_url"], runbookPrefix)
				continue
			}
			if !anchors[anchor] {
				t.Errorf("%s: docs/operations.md has no heading for #%s", r.Alert, anchor)
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d alerts", n)
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces
// to "-", punctuation other than "-" and "_" dropped.
func githubAnchor(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}
