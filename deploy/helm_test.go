package deploy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"go.yaml.in/yaml/v3"
)

// The Helm chart is rendered here by text/template with the few template
// functions it uses, written to behave as Helm's do (Helm itself is not a
// Debian package and its module is heavy). A template that uses any other
// function fails to parse, so the chart cannot drift from what this
// renderer knows.

const chartDir = "helm/ferry"

// errFail is what the chart's `fail` and `required` return.
var errFail = errors.New("chart refused to render")

// renderChart renders every template of the chart with the chart's
// values.yaml, overridden by set (a mapping merged into the values), and
// returns the Kubernetes objects, by kind.
func renderChart(t *testing.T, set map[string]any) (map[string]map[string]any, error) {
	t.Helper()
	var chart map[string]any
	readYAML(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	var values map[string]any
	readYAML(t, filepath.Join(chartDir, "values.yaml"), &values)
	merge(values, set)
	ctx := map[string]any{
		"Values":  values,
		"Release": map[string]any{"Name": "edge", "Namespace": "rt", "Service": "Helm"},
		"Chart":   map[string]any{"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
	}

	root := template.New("chart").Option("missingkey=zero")
	root.Funcs(chartFuncs(root))
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates (%v)", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := root.New(filepath.Base(f)).Parse(string(src)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	objects := map[string]map[string]any{}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var out bytes.Buffer
		if err := root.ExecuteTemplate(&out, name, ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		dec := yaml.NewDecoder(&out)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s renders invalid YAML: %v\n%s", name, err, out.String())
			}
			if obj == nil {
				continue
			}
			kind, _ := obj["kind"].(string)
			if kind == "" {
				t.Fatalf("%s renders an object without kind", name)
			}
			objects[kind] = obj
		}
	}
	return objects, nil
}

// chartFuncs are the Helm (sprig) functions the chart uses.
func chartFuncs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				return ""
			}
			return strings.TrimSuffix(string(b), "\n")
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote": func(v any) string { return fmt.Sprintf("%q", fmt.Sprint(v)) },
		"default": func(def, v any) any {
			if v == nil || v == "" || v == 0 || v == false {
				return def
			}
			return v
		},
		"required": func(msg string, v any) (any, error) {
			if v == nil || v == "" {
				return nil, fmt.Errorf("%w: %s", errFail, msg)
			}
			return v, nil
		},
		"fail":       func(msg string) (string, error) { return "", fmt.Errorf("%w: %s", errFail, msg) },
		"trunc":      func(n int, s string) string { return s[:min(n, len(s))] },
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"b64enc":     func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"sha256sum": func(s string) string {
			h := sha256.Sum256([]byte(s))
			return hex.EncodeToString(h[:])
		},
		"int": toInt,
		"add": func(a, b any) int { return toInt(a) + toInt(b) },
	}
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// merge copies src into dst, mapping by mapping.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// at walks obj by keys (strings for mappings, ints for lists).
func at(t *testing.T, obj any, path ...any) any {
	t.Helper()
	cur := obj
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %v is not a mapping", path, cur)
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: %v is not a list of %d", path, cur, k+1)
			}
			cur = l[k]
		}
	}
	return cur
}

var chartSecrets = map[string]any{"auth": map[string]any{"tokenHMACSecret": strings.Repeat("s", 32), "apiKey": "k"}}

func TestHelmChart(t *testing.T) {
	objs, err := renderChart(t, chartSecrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Deployment", "Service", "ServiceMonitor", "PodDisruptionBudget", "ConfigMap", "Secret"} {
		if objs[kind] == nil {
			t.Errorf("no %s rendered", kind)
		}
	}
	dep := objs["Deployment"]
	spec := at(t, dep, "spec", "template", "spec")
	c := at(t, spec, "containers", 0)
	if p := at(t, c, "readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readiness probe %v, want /readyz", p)
	}
	if p := at(t, c, "livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("liveness probe %v, want /healthz", p)
	}
	preStop := toInt(at(t, c, "lifecycle", "preStop", "sleep", "seconds"))
	if preStop <= 0 {
		t.Errorf("no preStop pause before the drain")
	}
	env := map[string]any{}
	for _, e := range at(t, c, "env").([]any) {
		m := e.(map[string]any)
		env[m["name"].(string)] = m
	}
	brokerURL, _ := at(t, env["FERRY_BROKER"], "value").(string)
	if !strings.HasPrefix(brokerURL, "redis") {
		t.Errorf("FERRY_BROKER = %q, want the Redis URL of values.yaml", brokerURL)
	}
	drain := 0
	if _, err := fmt.Sscanf(at(t, env["FERRY_SHUTDOWN_TIMEOUT"], "value").(string), "%ds", &drain); err != nil || drain <= 0 {
		t.Fatalf("FERRY_SHUTDOWN_TIMEOUT: %v (%v)", env["FERRY_SHUTDOWN_TIMEOUT"], err)
	}
	if grace := toInt(at(t, spec, "terminationGracePeriodSeconds")); grace <= drain+preStop {
		t.Errorf("terminationGracePeriodSeconds %d is not above the preStop pause %d + the drain %d", grace, preStop, drain)
	}
	for _, secretVar := range []string{"FERRY_TOKEN_HMAC_SECRET", "FERRY_API_KEY"} {
		if at(t, env[secretVar], "valueFrom", "secretKeyRef", "name") == nil {
			t.Errorf("%s does not come from a Secret", secretVar)
		}
	}
	// The admin page's secret is optional: the page is off without it.
	if ref := at(t, env["FERRY_ADMIN_SECRET"], "valueFrom", "secretKeyRef"); at(t, ref, "key") != "admin-secret" || at(t, ref, "optional") != true {
		t.Errorf("FERRY_ADMIN_SECRET: %v, want the Secret's optional admin-secret key", ref)
	}
	if _, ok := at(t, objs["Secret"], "data").(map[string]any)["admin-secret"]; ok {
		t.Error("the Secret has an admin-secret without auth.adminSecret")
	}
	withAdmin := map[string]any{"auth": map[string]any{"tokenHMACSecret": strings.Repeat("s", 32), "apiKey": "k", "adminSecret": "admin-secret-0123456789"}}
	if objs, err := renderChart(t, withAdmin); err != nil {
		t.Fatal(err)
	} else if got := at(t, objs["Secret"], "data", "admin-secret"); got != base64.StdEncoding.EncodeToString([]byte("admin-secret-0123456789")) {
		t.Errorf("Secret admin-secret = %v", got)
	}
	if at(t, spec, "securityContext", "runAsNonRoot") != true {
		t.Error("pods may run as root")
	}
	if ep := at(t, objs["ServiceMonitor"], "spec", "endpoints", 0, "path"); ep != "/metrics" {
		t.Errorf("ServiceMonitor path %v", ep)
	}
	if at(t, objs["PodDisruptionBudget"], "spec", "maxUnavailable") == nil {
		t.Error("PodDisruptionBudget without maxUnavailable")
	}
	sel := at(t, objs["PodDisruptionBudget"], "spec", "selector", "matchLabels")
	if fmt.Sprint(sel) != fmt.Sprint(at(t, dep, "spec", "selector", "matchLabels")) {
		t.Errorf("PodDisruptionBudget selects %v, the Deployment's pods are %v", sel, at(t, dep, "spec", "selector", "matchLabels"))
	}
	if cfg, _ := at(t, objs["ConfigMap"], "data", "ferry.yaml").(string); !strings.Contains(cfg, "namespaces:") {
		t.Errorf("ConfigMap ferry.yaml lacks the namespaces of values.yaml:\n%s", cfg)
	}
}

// TestHelmChartRefusesUnsafeValues: a grace period that would cut the
// drain, and missing secrets, fail the render with the reason.
func TestHelmChartRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]any
		want string
	}{
		{"grace below drain", map[string]any{"auth": chartSecrets["auth"], "terminationGracePeriodSeconds": 12}, "terminationGracePeriodSeconds must be above"},
		{"no secrets", nil, "auth.tokenHMACSecret"},
		{"no broker", map[string]any{"auth": chartSecrets["auth"], "broker": map[string]any{"url": ""}}, "broker.url is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, tt.set)
			if !errors.Is(err, errFail) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("render: %v, want a refusal saying %q", err, tt.want)
			}
		})
	}
	if objs, err := renderChart(t, map[string]any{"auth": map[string]any{"existingSecret": "mine"}}); err != nil || objs["Secret"] != nil {
		t.Errorf("with an existing Secret: err %v, Secret rendered %v", err, objs["Secret"] != nil)
	}
}
