package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/rabbittest"
)

// TestRabbitMQFanOut: two ferry nodes started with FERRY_BROKER set to a
// RabbitMQ amqp:// URL share one stream per channel: a subscriber on each
// node gets what the server API publishes on either node, with offsets
// 1, 2, 3... across both. Then RabbitMQ goes down: /readyz fails and
// publishes are refused; when it is back, the nodes are ready again without
// a restart, the stream continues and the connected subscribers get it.
func TestRabbitMQFanOut(t *testing.T) {
	srv := rabbittest.Start(t)
	nodes := ferrytest.StartCluster(t, 2, ferrytest.Options{Binary: ferryBin.Path(t), Broker: srv.URL(), IDPrefix: "rmq"})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	c := &cluster{t: t, nodes: nodes, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	const ch = "chat:rabbitmq"

	subs := map[string]*wsConn{}
	for _, n := range nodes.Nodes {
		w, conn := mustConnect(t, n.WebSocketURL(), nil, c.token("sub-"+n.ID))
		if conn.Node != n.ID {
			t.Fatalf("connected to %s, but the node says %q", n.ID, conn.Node)
		}
		ctx, cancel := withTimeout()
		if _, err := subscribe(ctx, w, 2, ch, nil); err != nil {
			t.Fatalf("subscribe on %s: %v", n.ID, err)
		}
		cancel()
		subs[n.ID] = w
	}
	ctx, cancel := withTimeout()
	defer cancel()
	for i := 1; i <= 4; i++ {
		n := nodes.Nodes[i%2]
		data := fmt.Sprintf("m%d via %s", i, n.ID)
		if res := c.mustPublish(n.BaseURL(), ch, data); res.Offset != uint64(i) {
			t.Fatalf("API publish %d on %s got offset %d", i, n.ID, res.Offset)
		}
		expectMessage(ctx, t, subs, ch, uint64(i), fmt.Sprintf("%q", data))
	}

	// RabbitMQ down for a while: the nodes say they are not ready and
	// publishes fail; when it is back they are ready again without a
	// restart, and the stream goes on where it was.
	srv.Down()
	for _, n := range nodes.Nodes {
		eventually(t, n.ID+" not ready", func() bool { return !n.Ready() })
	}
	pctx, pcancel := withTimeout()
	if _, err := c.publish(pctx, nodes.Nodes[0].BaseURL(), ch, "during the outage", ""); err == nil {
		t.Fatal("API publish with RabbitMQ down succeeded")
	}
	pcancel()
	srv.Restart()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	if !nodes.WaitReady(rctx) {
		t.Fatal("nodes not ready again after RabbitMQ came back")
	}
	if res := c.mustPublish(nodes.Nodes[1].BaseURL(), ch, "after"); res.Offset != 5 {
		t.Fatalf("API publish after the outage got offset %d, want 5 (the stream survives)", res.Offset)
	}
	// The subscribers stayed connected, and their nodes subscribed again.
	expectMessage(rctx, t, subs, ch, 5, `"after"`)
}
