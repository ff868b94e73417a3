package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/proc"
)

// hangGuard bounds each wait of the test: a guard against hangs, not an
// expectation of speed (Prometheus scrapes and evaluates every second).
const hangGuard = 90 * time.Second

// capacityAlert is the alert the seed asks for.
const capacityAlert = "FerryConnectionsNearCapacity"

// TestCapacityAlertFiresAndResolves starts two nodes with a cap of 10
// connections and a real Prometheus that scrapes them every second with
// deploy/prometheus/ferry-alerts.yml (its `for` shortened to 1s). Nine
// connections on one node (90%) fire the capacity alert for that node
// only; closing them resolves it.
func TestCapacityAlertFiresAndResolves(t *testing.T) {
	promBin := proc.RequireBinary(t, "prometheus", "FERRY_PROMETHEUS")
	nodes := ferrytest.StartCluster(t, 2, ferrytest.Options{
		Binary: ferryBin.Path(t),
		Env:    []string{"FERRY_MAX_CONNECTIONS=10"},
	})
	full, other := nodes.Node("node1"), nodes.Node("node2")
	prom := startPrometheus(t, promBin, []string{full.Addr, other.Addr})

	// Both targets up and scraped before anything else.
	waitFor(t, "Prometheus to scrape both nodes", func() bool {
		v, err := prom.query(`count(ferry_max_connections == 10)`)
		return err == nil && v == 2
	})

	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var conns []*client.Client
	for i := range 9 {
		tok, err := auth.Mint([]byte(nodes.Secret()), fmt.Sprintf("user%d", i), time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, full.WebSocketURL(), client.Config{Token: tok})
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})

	waitFor(t, capacityAlert+" firing for "+full.Addr, func() bool {
		firing, _ := prom.alerts(t, capacityAlert, "firing")
		return firing[full.Addr]
	})
	if firing, _ := prom.alerts(t, capacityAlert, ""); firing[other.Addr] {
		t.Errorf("%s fired for %s, which holds no connections", capacityAlert, other.Addr)
	}

	for _, c := range conns {
		_ = c.Close()
	}
	waitFor(t, capacityAlert+" resolved", func() bool {
		active, _ := prom.alerts(t, capacityAlert, "")
		return len(active) == 0
	})
}

// prometheus is a running Prometheus server.
type prometheus struct {
	base string
	http *http.Client
}

// startPrometheus runs Prometheus on a free port with a data directory of
// its own, scraping targets (job "ferry") every second and evaluating the
// alert rules every second.
func startPrometheus(t *testing.T, bin string, targets []string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules := fastRules(t, filepath.Join("prometheus", "ferry-alerts.yml"))
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, a := range targets {
		quoted[i] = strconv.Quote(a)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	logFile := filepath.Join(dir, "prometheus.log")
	p, err := proc.Start(proc.Config{
		Path: bin,
		Args: []string{
			"--config.file=" + filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr,
			"--web.console.templates=" + dir, "--web.console.libraries=" + dir,
		},
		Dir:     dir,
		LogFile: logFile,
		Group:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			tail, _ := proc.ReadTail(logFile, 4000)
			t.Logf("prometheus log:\n%s", tail)
		}
	})
	prom := &prometheus{base: "http://" + addr, http: &http.Client{Timeout: 5 * time.Second}}
	if err := p.WaitReady(func() error {
		resp, err := prom.http.Get(prom.base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: HTTP %d", resp.StatusCode)
		}
		return nil
	}, hangGuard); err != nil {
		t.Fatalf("prometheus did not start: %v", err)
	}
	return prom
}

// fastRules returns the rule file at path with the capacity alert's `for`
// cut to 1s, so that the test need not hold connections for minutes; the
// expression is the file's own. It fails the test if the alert is gone.
func fastRules(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	found := false
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			if r["alert"] == capacityAlert {
				r["for"] = "1s"
				found = true
			}
		}
	}
	if !found {
		t.Fatalf("%s has no alert %s", path, capacityAlert)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// query runs an instant query that returns one number.
func (p *prometheus) query(q string) (float64, error) {
	resp, err := p.http.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("query %q: status %s, %d results", q, body.Status, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// alerts returns the instances for which the named alert is active in the
// given state ("firing", "pending", or "" for either).
func (p *prometheus) alerts(t testing.TB, name, state string) (map[string]bool, error) {
	t.Helper()
	resp, err := p.http.Get(p.base + "/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && (state == "" || a.State == state) {
			out[a.Labels["instance"]] = true
		}
	}
	return out, nil
}

// waitFor polls cond until it holds, failing the test after hangGuard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
