package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/bench"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
	"github.com/ferry-io/ferry/internal/testutil/rabbittest"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// clusterBenchConfig is the sweep of TestClusterBench, from the
// environment (scripts/bench-cluster.sh sets it).
type clusterBenchConfig struct {
	engines   []string
	conns     int
	rates     []float64
	duration  time.Duration
	maxP99    float64 // ms: the sweep stops at the first rate above it
	history   bool
	out       string
	namespace string
}

func clusterBenchEnv(t *testing.T) clusterBenchConfig {
	c := clusterBenchConfig{
		engines:  []string{"redis", "nats", "rabbitmq"},
		conns:    3000,
		rates:    []float64{10, 20, 40, 60, 80, 100},
		duration: 15 * time.Second,
		maxP99:   100,
	}
	if v := os.Getenv("FERRY_CLUSTER_BENCH_ENGINES"); v != "" {
		c.engines = strings.Split(v, ",")
	}
	if v := os.Getenv("FERRY_CLUSTER_BENCH_CONNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3 {
			t.Fatalf("FERRY_CLUSTER_BENCH_CONNS=%q: want a number >= 3", v)
		}
		c.conns = n
	}
	if v := os.Getenv("FERRY_CLUSTER_BENCH_RATES"); v != "" {
		c.rates = nil
		for _, f := range strings.Split(v, ",") {
			r, err := strconv.ParseFloat(f, 64)
			if err != nil || r <= 0 {
				t.Fatalf("FERRY_CLUSTER_BENCH_RATES=%q: want positive numbers, comma-separated", v)
			}
			c.rates = append(c.rates, r)
		}
	}
	if v := os.Getenv("FERRY_CLUSTER_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("FERRY_CLUSTER_BENCH_DURATION=%q: want a duration", v)
		}
		c.duration = d
	}
	c.history = os.Getenv("FERRY_CLUSTER_BENCH_HISTORY") == "1"
	// The namespace of the bench channels: without history, as the one
	// node figures of docs/benchmarks.md; with it, each publication is
	// also written to the engine's history (a stream on NATS and
	// RabbitMQ).
	c.namespace = `{"bench": {"subscribe": true}}`
	if c.history {
		c.namespace = `{"bench": {"subscribe": true, "history_size": 1000, "history_ttl": "5m"}}`
	}
	c.out = os.Getenv("FERRY_CLUSTER_BENCH_OUT")
	if c.out == "" {
		c.out = t.TempDir()
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// engine is a running broker server and the way to its CPU time.
type engine struct {
	url string
	pid func() int
}

func startEngine(t *testing.T, name string) engine {
	switch name {
	case "redis":
		s := redistest.Start(t)
		return engine{url: s.URL(), pid: s.Pid}
	case "nats":
		s := natstest.Start(t)
		return engine{url: s.URL(), pid: s.Pid}
	case "rabbitmq":
		s := rabbittest.Start(t)
		return engine{url: s.URL(), pid: s.Pid}
	}
	t.Fatalf("FERRY_CLUSTER_BENCH_ENGINES: unknown engine %q (redis, nats, rabbitmq)", name)
	return engine{}
}

// clusterBenchRow is one rate on one engine.
type clusterBenchRow struct {
	Engine  string        `json:"engine"`
	History bool          `json:"history"`
	Result  *bench.Result `json:"result"`
	// EngineCPUSeconds is the broker server's CPU time (its children's
	// included) over the whole bench run, connecting included.
	EngineCPUSeconds float64 `json:"engine_cpu_s"`
	// EngineCPUPerDeliveryUS divides it by the deliveries.
	EngineCPUPerDeliveryUS float64 `json:"engine_cpu_per_delivery_us"`
}

// TestClusterBench measures three nodes on each broker engine: ferry bench
// in cluster mode (publishes to the first node, the engine fans them out
// to the three) at rising rates, until p99 passes the limit or a delivery
// is missing. It runs only with FERRY_CLUSTER_BENCH=1: use
// scripts/bench-cluster.sh, on a quiet machine.
func TestClusterBench(t *testing.T) {
	if os.Getenv("FERRY_CLUSTER_BENCH") != "1" {
		t.Skip("the cluster bench runs with FERRY_CLUSTER_BENCH=1 (scripts/bench-cluster.sh)")
	}
	cfg := clusterBenchEnv(t)
	bin := ferryBin.Path(t)
	jsonl, err := os.Create(filepath.Join(cfg.out, "cluster-bench.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer jsonl.Close()
	var rows []clusterBenchRow
	for _, name := range cfg.engines {
		t.Run(name, func(t *testing.T) {
			eng := startEngine(t, name)
			var urls []string
			for i := range 3 {
				n := ferrytest.Start(t, fmt.Sprintf("%s%d", name, i+1), ferrytest.Options{
					Binary: bin,
					Broker: eng.url,
					Env: []string{
						"FERRY_NAMESPACES=" + cfg.namespace,
						"FERRY_LOGS_LEVEL=warn",
						"FERRY_MAX_CONNECTIONS_PER_USER=0",
					},
				})
				urls = append(urls, n.BaseURL())
			}
			for _, rate := range cfg.rates {
				before, err := treeCPU(eng.pid())
				if err != nil {
					t.Fatalf("engine CPU: %v", err)
				}
				res := runClusterBench(t, bin, urls, cfg, rate)
				after, err := treeCPU(eng.pid())
				if err != nil {
					t.Fatalf("engine CPU: %v", err)
				}
				row := clusterBenchRow{Engine: name, History: cfg.history, Result: res, EngineCPUSeconds: after - before}
				f := res.Fanout
				if f == nil {
					t.Fatalf("rate %v: the bench reported no fanout phase", rate)
				}
				if f.Deliveries > 0 {
					row.EngineCPUPerDeliveryUS = row.EngineCPUSeconds / float64(f.Deliveries) * 1e6
				}
				rows = append(rows, row)
				b, _ := json.Marshal(row)
				_, _ = jsonl.Write(append(b, '\n'))
				t.Logf("%s", clusterBenchLine(row))
				if f.Latency.P99 > cfg.maxP99 || f.Missing > 0 {
					break
				}
			}
		})
	}
	report := clusterBenchReport(cfg, rows)
	if err := os.WriteFile(filepath.Join(cfg.out, "cluster-bench.md"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", report)
}

// runClusterBench runs `ferry bench --mode cluster` once and returns its
// JSON result.
func runClusterBench(t *testing.T, bin string, urls []string, cfg clusterBenchConfig, rate float64) *bench.Result {
	t.Helper()
	cmd := exec.Command(bin, "bench", "--mode", "cluster", "--url", strings.Join(urls, ","),
		"--conns", strconv.Itoa(cfg.conns), "--channels", "1", "--channel-prefix", "bench:",
		"--rate", strconv.FormatFloat(rate, 'f', -1, 64), "--duration", cfg.duration.String(),
		"--publish-to", "first", "--json", "--quiet",
		"--secret", ferrytest.DefaultSecret, "--api-key", ferrytest.DefaultAPIKey)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ferry bench at %v/s: %v\n%s", rate, err, stderr.String())
	}
	var res bench.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("ferry bench at %v/s: unreadable result: %v\n%s", rate, err, stdout.String())
	}
	if res.Connect.Failed > 0 {
		t.Fatalf("ferry bench at %v/s: %d connections failed: %v", rate, res.Connect.Failed, res.Connect.Errors)
	}
	return &res
}

func clusterBenchLine(r clusterBenchRow) string {
	f := r.Result.Fanout
	return fmt.Sprintf("%s: %.0f/s x %d subscribers: %.0f deliveries/s, p50 %.1f ms, p99 %.1f ms, max %.1f ms, missing %d, dup %d; server CPU %.2f µs/delivery, engine CPU %.2f µs/delivery (%.2fs), load %.2f",
		r.Engine, r.Result.Rate, r.Result.Conns, f.DeliveriesPerSec, f.Latency.P50, f.Latency.P99, f.Latency.Max,
		f.Missing, f.Duplicates, f.CPUPerDeliveryUS, r.EngineCPUPerDeliveryUS, r.EngineCPUSeconds, r.Result.LoadAvgStart[0])
}

// clusterBenchReport is a Markdown table per engine, and per engine the
// highest rate whose p99 stayed under the limit with nothing missing.
func clusterBenchReport(cfg clusterBenchConfig, rows []clusterBenchRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "3 nodes, %d subscribers on one channel (%d per node), publishes to the first node for %v each, history %v\n\n",
		cfg.conns, cfg.conns/3, cfg.duration, cfg.history)
	b.WriteString("| engine | publishes/s | deliveries/s | p50 ms | p99 ms | max ms | missing | dup | server CPU µs/delivery | engine CPU µs/delivery |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	best := map[string]clusterBenchRow{}
	var order []string
	for _, r := range rows {
		f := r.Result.Fanout
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.1f | %.1f | %.1f | %d | %d | %.2f | %.2f |\n",
			r.Engine, r.Result.Rate, f.DeliveriesPerSec, f.Latency.P50, f.Latency.P99, f.Latency.Max,
			f.Missing, f.Duplicates, f.CPUPerDeliveryUS, r.EngineCPUPerDeliveryUS)
		if _, seen := best[r.Engine]; !seen {
			order = append(order, r.Engine)
		}
		if f.Latency.P99 <= cfg.maxP99 && f.Missing == 0 && f.DeliveriesPerSec > best[r.Engine].deliveries() {
			best[r.Engine] = r
		}
	}
	fmt.Fprintf(&b, "\nHighest deliveries/s with p99 <= %.0f ms and nothing missing:\n", cfg.maxP99)
	for _, e := range order {
		r, ok := best[e]
		if !ok || r.Result == nil {
			fmt.Fprintf(&b, "- %s: none of the rates\n", e)
			continue
		}
		fmt.Fprintf(&b, "- %s: %s\n", e, clusterBenchLine(r))
	}
	return b.String()
}

func (r clusterBenchRow) deliveries() float64 {
	if r.Result == nil || r.Result.Fanout == nil {
		return 0
	}
	return r.Result.Fanout.DeliveriesPerSec
}

// treeCPU is the CPU time (user + system, seconds) of pid and every
// process below it, from /proc (Linux). The clock tick is taken as 100
// Hz, the kernel's USER_HZ on every Linux architecture Go supports here.
func treeCPU(pid int) (float64, error) {
	if pid == 0 {
		return 0, fmt.Errorf("the engine is not running")
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	parent := map[int]int{}
	ticks := map[int]float64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The command name is in parentheses and may hold spaces: the
		// fields after the last ')' are state, ppid, ... utime (14th
		// field of the line), stime (15th).
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		parent[p] = pp
		ticks[p] = ut + st
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	var total float64
	for p, tk := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				total += tk
				break
			}
		}
	}
	return total / 100, nil
}
