package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// Traffic of the failover tests: 50 messages a second through the server
// API, behind nginx.
const (
	pubInterval = 20 * time.Millisecond
	sdkClients  = 6
	rawClients  = 3
)

// startSubscribers connects sdkClients SDK subscribers and rawClients
// protocol-level subscribers to ch through the proxy.
func startSubscribers(t *testing.T, c *cluster, p *proxytest.Proxy, ch string) []subscriber {
	t.Helper()
	var subs []subscriber
	for i := range sdkClients {
		name := fmt.Sprintf("sdk%d", i+1)
		subs = append(subs, startSDKSub(t, name, p.URL(), nil, c.token(name), ch))
	}
	for i := range rawClients {
		name := fmt.Sprintf("raw%d", i+1)
		subs = append(subs, startRawSub(t, name, p.WebSocketURL(), nil, c.token(name), ch))
	}
	// The SDK learns its node from the log line after connected; wait
	// until every subscriber knows where it is.
	eventually(t, "every subscriber knows its node", func() bool {
		for _, s := range subs {
			if s.record().lastNode() == "" {
				return false
			}
		}
		return true
	})
	return subs
}

// onNode returns the subscribers whose current connection is on node id.
func onNode(subs []subscriber, id string) []subscriber {
	var out []subscriber
	for _, s := range subs {
		if s.record().lastNode() == id {
			out = append(out, s)
		}
	}
	return out
}

// busiest returns the node with the most subscribers.
func busiest(c *cluster, subs []subscriber) *ferrytest.Node {
	best, most := c.nodes.Nodes[0], -1
	for _, n := range c.nodes.Nodes {
		if k := len(onNode(subs, n.ID)); k > most {
			best, most = n, k
		}
	}
	return best
}

// allConnected reports whether no subscriber is between connections.
func allConnected(subs []subscriber) bool {
	for _, s := range subs {
		r := s.record()
		r.mu.Lock()
		lost := !r.lostAt.IsZero()
		r.mu.Unlock()
		if lost {
			return false
		}
	}
	return true
}

// waitDelivered waits until every subscriber has every position of want.
func waitDelivered(t *testing.T, subs []subscriber, want []position) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		done := true
		for _, s := range subs {
			if !s.record().has(want) {
				done = false
				break
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			// Fall through: report names what is missing.
			t.Errorf("not every subscriber got all %d messages within %v of the last publish", len(want), hangGuard)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKillNodeDuringTraffic: kill -9 one of three nodes while a publisher
// sends 50 messages a second through nginx for about 10 s, on each engine.
// Its clients reconnect through nginx to the other nodes and recover every
// message: none lost, none duplicated (checked by offsets).
func TestKillNodeDuringTraffic(t *testing.T) {
	onEngines(t, killNodeDuringTraffic)
}

func killNodeDuringTraffic(t *testing.T, e engine) {
	c := startClusterOn(t, e, 3)
	ngx := proxytest.StartNginx(t, c.backends()...)
	const ch = "chat:kill"
	subs := startSubscribers(t, c, ngx, ch)

	const total = 500 // 10 s at 50 messages a second
	pub := newPublisher(c, ngx.URL(), ch)
	stop := pub.start(total, pubInterval)
	defer stop()
	pub.wait(t, 150)

	victim := busiest(c, subs)
	moved := onNode(subs, victim.ID)
	if len(moved) == 0 {
		t.Fatalf("no subscriber on the busiest node %s", victim.ID)
	}
	killedAt := time.Now()
	victim.Kill()
	t.Logf("killed %s (SIGKILL) after %d messages; %d subscribers were on it", victim.ID, pub.count(), len(moved))

	eventually(t, "the victim's subscribers reconnected elsewhere", func() bool {
		for _, s := range moved {
			if n := s.record().lastNode(); n == victim.ID || !allConnected([]subscriber{s}) {
				return false
			}
		}
		return true
	})
	t.Logf("every subscriber of %s was connected to another node %v after the kill", victim.ID, time.Since(killedAt).Round(time.Millisecond))

	pub.wait(t, total)
	times := stopAndCheck(t, stop, pub, subs)
	if len(times) < len(moved) {
		t.Errorf("%d subscribers were on the killed node but only %d reconnects were recorded", len(moved), len(times))
	}
	for _, s := range moved {
		if n := s.record().lastNode(); n == victim.ID {
			t.Errorf("%s is still on the killed node", s.record().name)
		}
	}
}

// TestRollingRestart: each of three nodes in turn is stopped with SIGTERM
// (its clients get 4013 and reconnect through nginx), restarted, and then
// the next one, while a publisher sends 50 messages a second. No message is
// lost or duplicated, and every node exits cleanly.
func TestRollingRestart(t *testing.T) {
	c := startCluster(t, 3)
	ngx := proxytest.StartNginx(t, c.backends()...)
	const ch = "chat:rolling"
	subs := startSubscribers(t, c, ngx, ch)

	pub := newPublisher(c, ngx.URL(), ch)
	stop := pub.start(5000, pubInterval)
	defer stop()
	pub.wait(t, 50)

	for _, n := range c.nodes.Nodes {
		on := onNode(subs, n.ID)
		before := make(map[*recorder]int, len(on))
		for _, s := range on {
			r := s.record()
			r.mu.Lock()
			before[r] = r.codes[4013]
			r.mu.Unlock()
		}
		start := time.Now()
		if err := n.Stop(); err != nil {
			t.Errorf("stop %s: %v", n.ID, err)
		}
		drained := time.Since(start)
		eventually(t, n.ID+"'s subscribers reconnected to other nodes", func() bool {
			for _, s := range on {
				if s.record().lastNode() == n.ID || !allConnected([]subscriber{s}) {
					return false
				}
			}
			return true
		})
		for _, s := range on {
			r := s.record()
			r.mu.Lock()
			got := r.codes[4013] - before[r]
			r.mu.Unlock()
			if got != 1 {
				t.Errorf("%s on draining %s: %d closes with 4013, want 1 (codes %v)", r.name, n.ID, got, r.codes)
			}
		}
		n.Restart()
		// The procedure of docs/operations.md: go on only once the
		// balancer sends requests to the restarted node again (nginx
		// skips a node for fail_timeout after it failed a request).
		back := time.Now()
		waitServedBy(t, c, ngx, n.ID)
		t.Logf("%s: drained in %v (%d subscribers moved), restarted, served by nginx again after %v; %d messages published so far",
			n.ID, drained.Round(time.Millisecond), len(on), time.Since(back).Round(time.Millisecond), pub.count())
	}

	stopAndCheck(t, stop, pub, subs)
}

// stopAndCheck stops the publisher, checks that its messages got offsets
// 1..n in one epoch and that every subscriber got each exactly once, and
// returns the subscribers' reconnect times.
func stopAndCheck(t *testing.T, stop func() error, pub *publisher, subs []subscriber) []time.Duration {
	t.Helper()
	if err := stop(); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	want := pub.positions()
	t.Log(pub.summary())
	checkContiguous(t, want)
	waitDelivered(t, subs, want)
	return report(t, subs, want)
}

// waitServedBy waits until a request through the proxy is answered by node
// id (GET /v1/api/stats names the node that answers it).
func waitServedBy(t *testing.T, c *cluster, p *proxytest.Proxy, id string) {
	t.Helper()
	eventually(t, "the proxy sends requests to "+id, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var st nodeStats
		err := c.api(ctx, p.URL(), http.MethodGet, "/v1/api/stats", nil, &st)
		return err == nil && st.Node == id
	})
}
