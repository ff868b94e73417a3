package cluster_test

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// affinityHeader returns handshake headers carrying an affinity key, in
// the cookie (browsers) or the X-Ferry-Affinity header (other clients).
func affinityHeader(key string, asCookie bool) http.Header {
	h := http.Header{}
	if asCookie {
		h.Set("Cookie", "ferry_affinity="+key)
	} else {
		h.Set("X-Ferry-Affinity", key)
	}
	return h
}

// nodeThrough connects through p with header and returns the node that
// answered; the connection is closed again.
func nodeThrough(t *testing.T, c *cluster, p *proxytest.Proxy, header http.Header) string {
	t.Helper()
	ctx, cancel := withTimeout()
	defer cancel()
	w, f, err := connectWS(ctx, p.WebSocketURL(), header, c.token("affinity"), nil)
	if err != nil {
		t.Fatalf("connect through haproxy: %v", err)
	}
	w.close()
	return f.Node
}

// waitAllUp waits until HAProxy's health checks (GET /readyz) see every
// node up.
func waitAllUp(t *testing.T, p *proxytest.Proxy) {
	t.Helper()
	eventually(t, "haproxy sees every node UP", func() bool {
		st, err := p.ServerStatus()
		if err != nil || len(st) == 0 {
			return false
		}
		for _, s := range st {
			if s != "UP" {
				return false
			}
		}
		return true
	})
}

// TestHAProxyConsistentHashing: behind deploy/haproxy.cfg (consistent
// hashing on the ferry_affinity cookie or the X-Ferry-Affinity header), a
// client that reconnects lands on the same node as long as that node is
// up; keys spread over the nodes; when a key's node dies its clients move,
// and come back once it is up again.
func TestHAProxyConsistentHashing(t *testing.T) {
	c := startCluster(t, 3)
	hp := proxytest.StartHAProxy(t, c.backends()...)
	waitAllUp(t, hp)

	// Each key sticks to one node over reconnects; cookie and header with
	// the same key reach the same node.
	const keys, reconnects = 12, 4
	home := map[string]string{}
	perNode := map[string]int{}
	for i := range keys {
		key := fmt.Sprintf("device-%02d", i)
		first := nodeThrough(t, c, hp, affinityHeader(key, true))
		for r := range reconnects {
			asCookie := r%2 == 1
			if got := nodeThrough(t, c, hp, affinityHeader(key, asCookie)); got != first {
				t.Fatalf("key %s: reconnect %d (cookie %v) landed on %s, first connection on %s", key, r+1, asCookie, got, first)
			}
		}
		home[key] = first
		perNode[first]++
	}
	t.Logf("%d keys x %d connections each: keys per node %v", keys, reconnects+1, perNode)
	if len(perNode) < 2 {
		t.Fatalf("all %d keys hashed to one node (%v): the balancer is not hashing the key", keys, perNode)
	}

	// An SDK client with a key: the server closes it (4012, a code after
	// which the SDK reconnects) three times; it comes back to its node.
	const key = "device-sdk"
	sub := startSDKSub(t, "sdk-affinity", hp.URL(), affinityHeader(key, true), c.token("sdk-affinity"), "chat:affinity")
	rec := sub.record()
	eventually(t, "the SDK client knows its node", func() bool { return rec.lastNode() != "" })
	sdkHome := rec.lastNode()
	for i := range 3 {
		ctx, cancel := withTimeout()
		var out struct {
			Disconnected int `json:"disconnected"`
		}
		err := c.api(ctx, hp.URL(), http.MethodPost, "/v1/api/disconnect", map[string]any{"user": "sdk-affinity", "code": 4012, "reason": "test: reconnect"}, &out)
		cancel()
		if err != nil {
			t.Fatalf("disconnect: %v", err)
		}
		eventually(t, "the SDK client reconnected", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.reconnects) == i+1 && len(rec.nodes) == i+2
		})
		if got := rec.lastNode(); got != sdkHome {
			t.Fatalf("SDK reconnect %d landed on %s, its node is %s", i+1, got, sdkHome)
		}
	}
	rec.mu.Lock()
	t.Logf("SDK client with key %s: nodes %v, reconnect times %v", key, rec.nodes, roundAll(rec.reconnects))
	rec.mu.Unlock()

	// The SDK client's node dies: the client moves to another node (HAProxy
	// retries and redispatches), and so do the keys of that node; the keys
	// of the other nodes stay where they were.
	victim := c.nodes.Node(sdkHome)
	victim.Kill()
	eventually(t, "the SDK client moved off the killed node", func() bool {
		return rec.lastNode() != sdkHome && allConnected([]subscriber{sub})
	})
	rec.mu.Lock()
	moveTime := rec.reconnects[len(rec.reconnects)-1]
	rec.mu.Unlock()
	t.Logf("killed %s: the SDK client reconnected to %s after %v", victim.ID, rec.lastNode(), moveTime.Round(time.Millisecond))
	for _, k := range slices.Sorted(maps.Keys(home)) {
		got := nodeThrough(t, c, hp, affinityHeader(k, true))
		switch {
		case home[k] == victim.ID && got == victim.ID:
			t.Fatalf("key %s still reached the killed node", k)
		case home[k] != victim.ID && got != home[k]:
			t.Fatalf("key %s moved from %s to %s though only %s died", k, home[k], got, victim.ID)
		}
	}

	// Back up: once the health checks pass, every key is home again.
	victim.Restart()
	waitAllUp(t, hp)
	for _, k := range slices.Sorted(maps.Keys(home)) {
		if got := nodeThrough(t, c, hp, affinityHeader(k, true)); got != home[k] {
			t.Fatalf("after %s came back, key %s lands on %s, before on %s", victim.ID, k, got, home[k])
		}
	}
}
