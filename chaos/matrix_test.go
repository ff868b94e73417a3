package chaos_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"

	"github.com/ferry-io/ferry/internal/testutil/history"
)

// fault is one row of the matrix: what is done to the running system.
// inject returns once the fault has healed.
type fault struct {
	name   string
	inject func(t *testing.T, s *system, m mode)
	// sentinel runs the system on a Redis primary with a replica and three
	// sentinels instead of one Redis behind proxies.
	sentinel bool
	// knownBroken names transports whose violations under this fault are
	// a known server bug (reported, owned elsewhere): they are counted and
	// logged but fail the test only with FERRY_CHAOS_STRICT=1.
	knownBroken map[string]string
}

// faultFor is how long a fault that lasts lasts.
func faultFor(m mode) time.Duration {
	if m.name == "long" {
		return 30 * time.Second
	}
	return 4 * time.Second
}

// partitionFor is how long one node is cut off from Redis (the issue asks
// for 10 s in every form).
const partitionFor = 10 * time.Second

// faults is the matrix's fault axis.
var faults = []fault{
	{name: "none", inject: func(t *testing.T, s *system, m mode) {}},
	{name: "latency", inject: func(t *testing.T, s *system, m mode) {
		// 200 ms +/- 100 ms on every link, both directions.
		heal := toxic(t, s.allLinks(), "latency", `{"latency":200,"jitter":100}`)
		time.Sleep(faultFor(m))
		heal()
	}},
	{name: "bandwidth", inject: func(t *testing.T, s *system, m mode) {
		// 16 KB/s per connection and direction.
		heal := toxic(t, s.allLinks(), "bandwidth", `{"rate":16}`)
		time.Sleep(faultFor(m))
		heal()
	}},
	{name: "resets", inject: func(t *testing.T, s *system, m mode) {
		// Cut every connection of a random link every 300-800 ms.
		links := s.allLinks()
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
		end := time.Now().Add(faultFor(m))
		for time.Now().Before(end) {
			resetLinks(t, []*toxiproxy.Proxy{links[rng.IntN(len(links))]})
			time.Sleep(time.Duration(300+rng.IntN(500)) * time.Millisecond)
		}
	}},
	{name: "partition", inject: func(t *testing.T, s *system, m mode) {
		// node1 hears nothing from Redis for 10 s: what it sends is
		// held, then the connections are cut (what was held is lost) and
		// the link heals.
		p := s.toRedis[0]
		heal := toxic(t, []*toxiproxy.Proxy{p}, "timeout", `{"timeout":0}`)
		time.Sleep(partitionFor)
		p.Stop()
		heal()
		if err := p.Start(); err != nil {
			t.Fatalf("heal the partition: %v", err)
		}
		s.waitReady()
	}},
	{name: "redis-restart-empty", inject: func(t *testing.T, s *system, m mode) {
		s.redis.Kill()
		time.Sleep(time.Second)
		s.redis.Restart(true)
		s.waitReady()
	}},
	{name: "redis-restart-snapshot", inject: func(t *testing.T, s *system, m mode) {
		// A snapshot, more publishes, then a crash: Redis comes back
		// with the snapshot, behind what the nodes and clients saw.
		if _, err := s.redis.Do("SAVE"); err != nil {
			t.Fatalf("SAVE: %v", err)
		}
		time.Sleep(time.Second)
		s.redis.Kill()
		time.Sleep(time.Second)
		s.redis.Restart(false)
		s.waitReady()
	}},
	{name: "sentinel-failover", sentinel: true, inject: func(t *testing.T, s *system, m mode) {
		s.failover(t)
		s.waitReady()
	}},
	{name: "rolling-restart", inject: func(t *testing.T, s *system, m mode) {
		for _, n := range s.nodes {
			if err := n.Stop(); err != nil { // SIGTERM: drain
				t.Errorf("drain %s: %v", n.ID, err)
			}
			n.Restart()
			s.waitReady()
		}
	}},
	{name: "kill-node", inject: func(t *testing.T, s *system, m mode) {
		s.nodes[0].Kill()
		time.Sleep(2 * time.Second)
		s.nodes[0].Restart()
		s.waitReady()
	}},
}

// transports are the matrix's other axis: the client name prefixes.
var transports = []string{"ws", "sse", "poll"}

// clientsPerTransport is how many clients each transport has (spread over
// the nodes).
const clientsPerTransport = 3

// historyWindow is the "chat" namespace's history size (ferrytest's
// default namespaces).
const historyWindow = 10000

// row is one fault's outcome for one transport.
type row struct {
	fault, transport string
	published        int
	c                history.ChannelReport
	note             string // "known issue" for a violation reported elsewhere
}

var (
	matrixMu sync.Mutex
	matrix   []row
)

// TestMatrix runs every fault with clients on every transport, and checks
// the history of each run.
func TestMatrix(t *testing.T) {
	m := chaosMode(t)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) { runFault(t, f, m) })
	}
	writeMatrix(t, m)
}

func runFault(t *testing.T, f fault, m mode) {
	var s *system
	if f.sentinel {
		s = startSentinelSystem(t)
	} else {
		s = startSystem(t, "")
	}
	rec := history.New()
	var channels []string
	for i := range m.channels {
		channels = append(channels, fmt.Sprintf("chat:%s-%d", f.name, i+1))
	}
	var subs []subscriber
	for i := range clientsPerTransport {
		subs = append(subs, startWS(t, s, rec, fmt.Sprintf("ws%d", i+1), s.clientURL(i), channels))
		subs = append(subs, startSSE(t, s, rec, fmt.Sprintf("sse%d", i+1), i, channels))
		subs = append(subs, startPoll(t, s, rec, fmt.Sprintf("poll%d", i+1), i, channels))
	}

	pub := newPublisher(s, rec)
	pub.start(channels, m.rate, 4)
	defer pub.halt()
	time.Sleep(m.before)
	start := time.Now()
	f.inject(t, s, m)
	t.Logf("%s: fault injected and healed in %v", f.name, time.Since(start).Round(time.Millisecond))
	time.Sleep(m.after)
	pub.halt()

	// Wait until every client has what it should. A lost message never
	// comes: the wait ends when nothing was delivered for stallFor, or at
	// the hang guard.
	waitSettled(rec)
	var rep history.Report
	for _, sub := range subs {
		sub.Close()
	}
	rep = rec.Check(history.Options{Window: historyWindow})
	t.Logf("%s: %d publishes accepted, %d retried, %d with unknown outcome", f.name, pub.ok.Load(), pub.retries.Load(), pub.unknown.Load())
	rows := recordRows(f, rep)
	if rep.OK() {
		t.Logf("%s: %s", f.name, strings.SplitN(rep.String(), "\n", 2)[0])
		return
	}
	strict := os.Getenv("FERRY_CHAOS_STRICT") == "1"
	for _, r := range rows {
		if !r.bad() {
			continue
		}
		if why, known := f.knownBroken[r.transport]; known && !strict {
			t.Logf("%s over %s: KNOWN ISSUE (%s): %d lost, %d duplicated; not failing (FERRY_CHAOS_STRICT=1 makes it fail)",
				f.name, r.transport, why, r.c.Lost, r.c.Duplicated)
			continue
		}
		t.Errorf("%s over %s: %d lost, %d duplicated, %d reordered, %d mismatched", f.name, r.transport, r.c.Lost, r.c.Duplicated, r.c.Reordered, r.c.Mismatched)
	}
	// Violations no client owns (a publish applied twice) fail in any case.
	if rep.Total.Unjustified > 0 || clientless(rep) {
		t.Errorf("%s: violations outside the clients' rows", f.name)
	}
	if t.Failed() {
		t.Logf("%s: the history:\n%s", f.name, rep)
	}
}

// bad reports whether the row shows a violation.
func (r row) bad() bool {
	return r.c.Lost+r.c.Duplicated+r.c.Reordered+r.c.Mismatched+r.c.Unjustified > 0
}

// clientless reports whether the report has violations that no client's
// row carries (found among the publishes themselves).
func clientless(rep history.Report) bool {
	var sum history.ChannelReport
	for _, c := range rep.Clients {
		sum.Duplicated += c.Duplicated
		sum.Mismatched += c.Mismatched
	}
	return rep.Total.Duplicated > sum.Duplicated || rep.Total.Mismatched > sum.Mismatched
}

// recordRows adds the fault's rows (one per transport) to the matrix and
// returns them.
func recordRows(f fault, rep history.Report) []row {
	matrixMu.Lock()
	defer matrixMu.Unlock()
	first := len(matrix)
	for _, tr := range transports {
		r := row{fault: f.name, transport: tr, published: rep.Total.Published}
		for _, c := range rep.Clients {
			if !strings.HasPrefix(c.Channel, tr) {
				continue
			}
			r.c.Delivered += c.Delivered
			r.c.Lost += c.Lost
			r.c.Duplicated += c.Duplicated
			r.c.Reordered += c.Reordered
			r.c.Mismatched += c.Mismatched
			r.c.RecoveredFalse += c.RecoveredFalse
			r.c.Excused += c.Excused
			r.c.Unjustified += c.Unjustified
			r.c.Reapplied += c.Reapplied
		}
		if r.c.Reapplied > 0 {
			r.note = fmt.Sprintf("%d deliveries of publishes reapplied after Redis lost its keys", r.c.Reapplied)
		}
		if _, known := f.knownBroken[tr]; known && r.bad() {
			r.note = strings.TrimPrefix(r.note+"; known issue", "; ")
		}
		matrix = append(matrix, r)
	}
	return matrix[first:]
}

// writeMatrix logs the matrix as a Markdown table, and writes it to the
// file FERRY_CHAOS_REPORT names, if set (scripts/chaos.sh does).
func writeMatrix(t *testing.T, m mode) {
	matrixMu.Lock()
	defer matrixMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "Fault matrix, %s form (%d channels, %d publishes/s each; %d clients per transport)\n\n", m.name, m.channels, m.rate, clientsPerTransport)
	b.WriteString("| fault | transport | published | delivered | lost | duplicated | reordered | mismatched | recovered:false (messages) | note |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range matrix {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d (%d) | %s |\n",
			r.fault, r.transport, r.published, r.c.Delivered, r.c.Lost, r.c.Duplicated, r.c.Reordered, r.c.Mismatched, r.c.RecoveredFalse, r.c.Excused, r.note)
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("FERRY_CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Errorf("FERRY_CHAOS_REPORT: %v", err)
		}
	}
}

// stallFor is how long without a delivery ends the wait for the missing
// ones (a guard, not an expectation: a healthy run has nothing missing).
const stallFor = 10 * time.Second

// waitSettled waits until the history checks clean, or no delivery came
// for stallFor, or hangGuard passed.
func waitSettled(rec *history.Recorder) {
	deadline := time.Now().Add(hangGuard)
	_, last := rec.Counts()
	lastChange := time.Now()
	for time.Now().Before(deadline) && time.Since(lastChange) < stallFor {
		if rec.Check(history.Options{Window: historyWindow}).OK() {
			return
		}
		time.Sleep(200 * time.Millisecond)
		if _, n := rec.Counts(); n != last {
			last, lastChange = n, time.Now()
		}
	}
}
