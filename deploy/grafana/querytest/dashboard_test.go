package querytest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/ferry-io/ferry/internal/metrics"
)

// promql parses queries the way Prometheus does by default.
var promql = parser.NewParser(parser.Options{})

// dashboardFile is the dashboard under test.
const dashboardFile = "../ferry.json"

// grafanaVariables are replaced before parsing: PromQL does not know
// Grafana's template variables.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"$instance", ".*",
)

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type dashboard struct {
	Title  string  `json:"title"`
	UID    string  `json:"uid"`
	Panels []panel `json:"panels"`
}

// exported returns the metric names a fresh node serves at /metrics (a
// histogram under its _bucket, _sum and _count names), including the Go
// runtime and process collectors. The certificate expiry is served only
// with TLS, so it is set first.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(nil, "chat")
	m.SetCertExpiry(time.Now().Add(24 * time.Hour))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", rec.Code)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	if len(names) < 20 {
		t.Fatalf("only %d metric names served", len(names))
	}
	return names
}

func TestDashboardQueries(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard without title or uid")
	}
	known := exported(t)
	used := map[string]bool{}
	queries := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				queries++
				expr, err := promql.ParseExpr(grafanaVariables.Replace(tg.Expr))
				if err != nil {
					t.Errorf("panel %q query %s: %v\n%s", p.Title, tg.RefID, err, tg.Expr)
					continue
				}
				for _, name := range metricNames(expr) {
					used[name] = true
					if !known[name] {
						t.Errorf("panel %q query %s: %s is not a metric Ferry exports", p.Title, tg.RefID, name)
					}
				}
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Fatal("no queries found")
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{
		"ferry_connections", "ferry_connections_opened_total", "ferry_disconnects_total",
		"ferry_messages_delivered_total", "ferry_messages_dropped_total", "ferry_queued_frames",
		"ferry_queue_to_write_seconds_bucket", "ferry_handshake_duration_seconds_bucket",
		"ferry_broker_request_duration_seconds_bucket", "ferry_broker_up", "ferry_broker_errors_total",
		"ferry_max_connections",
	} {
		if !used[want] {
			t.Errorf("no panel uses %s", want)
		}
	}
}

// TestMetricNamesCatchesUnknown: the check can fail.
func TestMetricNamesCatchesUnknown(t *testing.T) {
	expr, err := promql.ParseExpr(`sum(rate(ferry_no_such_metric_total[1m])) / on (instance) ferry_max_connections`)
	if err != nil {
		t.Fatal(err)
	}
	got := metricNames(expr)
	sort.Strings(got)
	if strings.Join(got, ",") != "ferry_max_connections,ferry_no_such_metric_total" {
		t.Fatalf("metricNames = %v", got)
	}
	if exported(t)["ferry_no_such_metric_total"] {
		t.Fatal("an unknown metric counted as exported")
	}
}

// metricNames returns the metric names the selectors of expr name, by
// their __name__ matcher.
func metricNames(expr parser.Expr) []string {
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			if name != "" {
				out = append(out, name)
			}
		}
		return nil
	})
	return out
}
