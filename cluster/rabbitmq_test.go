package cluster_test

import (
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
// 1, 2, 3... across both.
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
}
