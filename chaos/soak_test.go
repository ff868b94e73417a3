package chaos_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/history"
)

// soakConfig is the soak's shape, from FERRY_SOAK_* variables (set by
// scripts/soak.sh, which documents them).
type soakConfig struct {
	duration time.Duration // FERRY_SOAK_DURATION, default 30m
	conns    int           // FERRY_SOAK_CONNS: connections per node, default 15000
	churn    float64       // FERRY_SOAK_CHURN: % of the connections reconnecting per minute, default 10
	rate     float64       // FERRY_SOAK_RATE: publishes per second, default 1000
	channels int           // FERRY_SOAK_CHANNELS, default 100
	interval time.Duration // FERRY_SOAK_INTERVAL: sampling, default 10s
	warmup   time.Duration // FERRY_SOAK_WARMUP: default a fifth of the duration
	out      string        // FERRY_SOAK_OUT: directory for soak.csv, soak.png, soak.txt
}

func soakEnv(t *testing.T) soakConfig {
	t.Helper()
	c := soakConfig{duration: 30 * time.Minute, conns: 15000, churn: 10, rate: 1000, channels: 100, interval: 10 * time.Second}
	dur := func(name string, p *time.Duration) {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				t.Fatalf("%s=%q: want a positive duration such as 2m", name, v)
			}
			*p = d
		}
	}
	num := func(name string, p *float64) {
		if v := os.Getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 {
				t.Fatalf("%s=%q: want a number >= 0", name, v)
			}
			*p = f
		}
	}
	dur("FERRY_SOAK_DURATION", &c.duration)
	dur("FERRY_SOAK_INTERVAL", &c.interval)
	c.warmup = c.duration / 5
	dur("FERRY_SOAK_WARMUP", &c.warmup)
	conns, channels := float64(c.conns), float64(c.channels)
	num("FERRY_SOAK_CONNS", &conns)
	num("FERRY_SOAK_CHURN", &c.churn)
	num("FERRY_SOAK_RATE", &c.rate)
	num("FERRY_SOAK_CHANNELS", &channels)
	c.conns, c.channels = int(conns), max(int(channels), 1)
	if c.warmup >= c.duration {
		t.Fatalf("FERRY_SOAK_WARMUP (%v) must be shorter than the duration (%v)", c.warmup, c.duration)
	}
	c.out = os.Getenv("FERRY_SOAK_OUT")
	if c.out == "" {
		c.out = t.TempDir()
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSoak holds a loaded cluster for a while and checks that the nodes
// do not grow (slope test on RSS, heap, goroutines and open files after
// the warm-up) and that a checked workload loses nothing. It runs only
// with FERRY_SOAK=1: use scripts/soak.sh.
//
// The load: `ferry bench --mode cluster` holds conns connections per node
// and publishes rate messages a second over channels channels through the
// server API; churners (SDK clients) connect, subscribe, stay 30-90 s and
// leave, so that churn % of the connections come and go each minute; and
// a checked publisher (5/s) with WebSocket, SSE and long-poll subscribers
// whose links are reset every minute records its history.
func TestSoak(t *testing.T) {
	if os.Getenv("FERRY_SOAK") != "1" {
		t.Skip("the soak runs with FERRY_SOAK=1 (scripts/soak.sh)")
	}
	cfg := soakEnv(t)
	s := startSystem(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()

	// The bulk: ferry bench against the nodes directly.
	var urls []string
	for _, n := range s.nodes {
		urls = append(urls, n.BaseURL())
	}
	benchOut := filepath.Join(cfg.out, "bench.log")
	bf, err := os.Create(benchOut)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	bench := exec.Command(ferryBin.Path(t), "bench", "--mode", "cluster", "--url", strings.Join(urls, ","),
		"--conns", strconv.Itoa(cfg.conns*len(s.nodes)), "--channels", strconv.Itoa(cfg.channels),
		"--channel-prefix", "chat:soak-", "--rate", strconv.FormatFloat(cfg.rate, 'f', -1, 64),
		"--duration", cfg.duration.String(), "--publish-to", "first", "--quiet",
		"--secret", ferrytest.DefaultSecret, "--api-key", ferrytest.DefaultAPIKey)
	bench.Stdout, bench.Stderr = bf, bf
	if err := bench.Start(); err != nil {
		t.Fatalf("ferry bench: %v", err)
	}
	// benchDone is closed when bench exited; benchErr is then its outcome.
	var benchErr error
	benchDone := make(chan struct{})
	go func() { benchErr = bench.Wait(); close(benchDone) }()
	defer func() {
		select {
		case <-benchDone:
		default:
			_ = bench.Process.Kill()
			<-benchDone
		}
	}()

	// The checked workload.
	rec := history.New()
	checked := []string{"chat:soak-checked"}
	var subs []subscriber
	for i := range nodeCount {
		subs = append(subs, startWS(t, s, rec, fmt.Sprintf("ws%d", i+1), s.clientURL(i), checked))
	}
	subs = append(subs, startSSE(t, s, rec, "sse1", 0, checked), startPoll(t, s, rec, "poll1", 1, checked))
	pub := newPublisher(s, rec)
	pub.start(checked, 5, 1)

	var wg sync.WaitGroup
	churned := runChurn(ctx, &wg, s, cfg)
	samples := make(chan []sample, 1)
	go func() { samples <- sampleNodes(ctx, s, cfg) }()

	// Links of the checked clients are reset every minute.
	tick := time.NewTicker(time.Minute)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			resetLinks(t, s.toNode)
		}
	}
	tick.Stop()
	pub.halt()
	wg.Wait()
	all := <-samples
	waitSettled(rec)
	for _, sub := range subs {
		sub.Close()
	}
	select {
	case <-benchDone:
		if benchErr != nil {
			t.Errorf("ferry bench: %v (see %s)", benchErr, benchOut)
		}
	case <-time.After(2 * time.Minute): // bench drains for 10 s after its duration
		t.Errorf("ferry bench did not end (see %s)", benchOut)
	}

	rep := rec.Check(history.Options{Window: historyWindow})
	verdicts := slopes(all, cfg)
	summary := soakSummary(cfg, rep, verdicts, churned.Load(), len(all))
	csvPath, pngPath := filepath.Join(cfg.out, "soak.csv"), filepath.Join(cfg.out, "soak.png")
	if err := writeCSV(csvPath, all); err != nil {
		t.Error(err)
	}
	if err := writePlot(pngPath, all, cfg); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "soak.txt"), []byte(summary), 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("soak: %s, %s, %s\n%s", csvPath, pngPath, filepath.Join(cfg.out, "soak.txt"), summary)
	if !rep.OK() {
		t.Errorf("the checked workload shows violations:\n%s", rep)
	}
	for _, v := range verdicts {
		if !v.ok {
			t.Errorf("growth after the warm-up: %s", v)
		}
	}
	if len(all) == 0 {
		t.Error("no samples were taken")
	}
}

// runChurn starts churners until ctx ends: each connects to a node,
// subscribes to a channel of the bench's, stays 30-90 s and closes. They
// are started at the pace that makes churn % of the connections come and
// go per minute. It returns the count of churners started.
func runChurn(ctx context.Context, wg *sync.WaitGroup, s *system, cfg soakConfig) *atomic.Int64 {
	var started atomic.Int64
	perSecond := cfg.churn / 100 * float64(cfg.conns*len(s.nodes)) / 60
	if perSecond <= 0 {
		return &started
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		gap := time.Duration(float64(time.Second) / perSecond)
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			started.Add(1)
			stay := time.Duration(30+rng.IntN(61)) * time.Second
			node := s.nodes[i%len(s.nodes)]
			ch := fmt.Sprintf("chat:soak-churn-%d", rng.IntN(cfg.channels))
			wg.Add(1)
			go func() {
				defer wg.Done()
				churnOnce(ctx, s, node, fmt.Sprintf("churn%d", i), ch, stay)
			}()
		}
	}()
	return &started
}

// churnOnce is one churner's life.
func churnOnce(ctx context.Context, s *system, n *ferrytest.Node, user, ch string, stay time.Duration) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := mintFor(user)
	if err != nil {
		return
	}
	c, err := client.Dial(dctx, n.BaseURL(), client.Config{Token: tok, Backoff: client.Backoff{MaxAttempts: 3}})
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.Subscribe(dctx, ch, client.WithHandler(func(client.Message) {})); err != nil {
		return
	}
	sleepCtx(ctx, stay)
}

// sample is one node's figures at one time.
type sample struct {
	at         time.Duration // since the start
	node       string
	rss, heap  float64 // bytes
	goroutines float64
	fds        float64
}

// soakMetrics are the Prometheus series sampled, in sample's order.
var soakMetrics = []string{"process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "go_goroutines", "process_open_fds"}

// sampleNodes reads every node's /metrics each interval until ctx ends.
func sampleNodes(ctx context.Context, s *system, cfg soakConfig) []sample {
	var out []sample
	start := time.Now()
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for {
		for _, n := range s.nodes {
			if v, err := scrape(ctx, s.http, n.BaseURL()+"/metrics"); err == nil {
				out = append(out, sample{at: time.Since(start), node: n.ID, rss: v[0], heap: v[1], goroutines: v[2], fds: v[3]})
			}
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// scrape returns the values of soakMetrics from a Prometheus text page.
func scrape(ctx context.Context, hc *http.Client, url string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	vals := make([]float64, len(soakMetrics))
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		for i, m := range soakMetrics {
			if name == m {
				if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
					vals[i] = f
					found++
				}
			}
		}
	}
	if found != len(soakMetrics) {
		return nil, fmt.Errorf("%s: %d of %d series found", url, found, len(soakMetrics))
	}
	return vals, sc.Err()
}
