package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// TestFanOutAcrossNodesThroughNginx: three nodes on one engine (Redis, or a
// NATS cluster) behind nginx (round-robin). A subscriber on each node
// receives what a client publishes on another node, and what the server API
// publishes through nginx or directly on a third node.
func TestFanOutAcrossNodesThroughNginx(t *testing.T) {
	onEngines(t, fanOutAcrossNodes)
}

func fanOutAcrossNodes(t *testing.T, e engine) {
	c := startClusterOn(t, e, 3)
	ngx := proxytest.StartNginx(t, c.backends()...)
	const ch = "chat:fanout"

	// Connect through nginx until there is a subscriber on every node
	// (round-robin, but each nginx worker keeps its own turn).
	subs := map[string]*wsConn{}
	for attempt := 0; len(subs) < 3; attempt++ {
		if attempt == 30 {
			t.Fatalf("30 connections through nginx reached only nodes %v", slices.Sorted(maps.Keys(subs)))
		}
		w, conn := mustConnect(t, ngx.WebSocketURL(), nil, c.token(fmt.Sprintf("sub%d", attempt)))
		if subs[conn.Node] != nil {
			w.close()
			continue
		}
		ctx, cancel := withTimeout()
		if _, err := subscribe(ctx, w, 2, ch, nil); err != nil {
			t.Fatalf("subscribe on %s: %v", conn.Node, err)
		}
		cancel()
		subs[conn.Node] = w
	}
	counts := c.connections()
	for _, n := range c.nodes.Nodes {
		if counts[n.ID] < 1 {
			t.Fatalf("stats say node %s has %d connections, but a subscriber's connected frame named it (counts %v)", n.ID, counts[n.ID], counts)
		}
	}
	t.Logf("subscribers: one on each of %v; connections per node from /v1/api/stats: %v", slices.Sorted(maps.Keys(subs)), counts)

	// A client publisher on each node in turn: every subscriber, on the
	// same node and on the two others, gets the message.
	want := uint64(0)
	ctx, cancel := withTimeout()
	defer cancel()
	for _, n := range c.nodes.Nodes {
		pub, conn := mustConnect(t, n.WebSocketURL(), nil, c.token("pub-"+n.ID))
		if conn.Node != n.ID {
			t.Fatalf("connected directly to %s, but the node says %q", n.ID, conn.Node)
		}
		if err := pub.send(ctx, map[string]any{"type": "publish", "id": 7, "channel": ch, "data": map[string]string{"from": n.ID}}); err != nil {
			t.Fatal(err)
		}
		res, err := pub.expect(ctx, "published")
		if err != nil {
			t.Fatalf("publish on %s: %v", n.ID, err)
		}
		want++
		if res.Offset != want {
			t.Fatalf("publish %d on %s got offset %d", want, n.ID, res.Offset)
		}
		expectMessage(ctx, t, subs, ch, want, `{"from":"`+n.ID+`"}`)
	}

	// The server API, through nginx and straight to one node.
	want++
	if res := c.mustPublish(ngx.URL(), ch, "via nginx"); res.Offset != want {
		t.Fatalf("API publish through nginx got offset %d, want %d", res.Offset, want)
	}
	expectMessage(ctx, t, subs, ch, want, `"via nginx"`)
	want++
	direct := c.nodes.Nodes[2]
	if res := c.mustPublish(direct.BaseURL(), ch, "via "+direct.ID); res.Offset != want {
		t.Fatalf("API publish on %s got offset %d, want %d", direct.ID, res.Offset, want)
	}
	expectMessage(ctx, t, subs, ch, want, `"via `+direct.ID+`"`)
}

// expectMessage waits until every subscriber got the message at offset off
// with data, and nothing else before it.
func expectMessage(ctx context.Context, t *testing.T, subs map[string]*wsConn, ch string, off uint64, data string) {
	t.Helper()
	for node, w := range subs {
		f, err := w.expect(ctx, "message")
		if err != nil {
			t.Fatalf("subscriber on %s: %v", node, err)
		}
		if f.Channel != ch || f.Offset != off || !jsonEqual(f.Data, data) {
			t.Fatalf("subscriber on %s got %s@%d %s, want %s@%d %s", node, f.Channel, f.Offset, f.Data, ch, off, data)
		}
	}
}

func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// TestPerUserLimitAcrossNodes: with max_connections_per_user 2, a user's
// third connection, on a third node, evicts the oldest (on the first node)
// with 4011; the two newest stay. On each engine.
func TestPerUserLimitAcrossNodes(t *testing.T) {
	onEngines(t, perUserLimitAcrossNodes)
}

func perUserLimitAcrossNodes(t *testing.T, e engine) {
	c := startClusterOn(t, e, 3, "FERRY_MAX_CONNECTIONS_PER_USER=2")
	tok := c.token("carol")
	var conns []*wsConn
	for i, n := range c.nodes.Nodes {
		w, f := mustConnect(t, n.WebSocketURL(), nil, tok)
		if f.Node != n.ID {
			t.Fatalf("connection %d: on node %q, want %s", i, f.Node, n.ID)
		}
		conns = append(conns, w)
		// The limit orders connections by their opening time, which the
		// broker keeps in milliseconds: keep the order unambiguous.
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := withTimeout()
	defer cancel()
	code, err := conns[0].waitClosed(ctx)
	if err != nil {
		t.Fatalf("the oldest connection (node %s) was not closed: %v", c.nodes.Nodes[0].ID, err)
	}
	if code != 4011 {
		t.Fatalf("the oldest connection was closed with %d, want 4011", code)
	}
	// The two newest are alive: they answer a ping.
	for i, w := range conns[1:] {
		if err := w.send(ctx, map[string]any{"type": "ping", "id": 9}); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		if _, err := w.expect(ctx, "pong"); err != nil {
			t.Fatalf("connection %d on %s after the eviction: %v", i+1, c.nodes.Nodes[i+1].ID, err)
		}
	}
	t.Logf("user carol: connections on %s, %s, %s; the one on %s closed with %d",
		c.nodes.Nodes[0].ID, c.nodes.Nodes[1].ID, c.nodes.Nodes[2].ID, c.nodes.Nodes[0].ID, code)
}
