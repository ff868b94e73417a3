package memory

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/brokertest"
)

// TestConformanceSharedBackend runs the suite's multi-node tests against
// several node views of one memory broker. It checks the suite's
// cross-node tests themselves before a real multi-node engine runs them.
func TestConformanceSharedBackend(t *testing.T) {
	var clusters sync.Map // testing.TB -> *cluster
	brokertest.Run(t, brokertest.Factory{
		New: func(t testing.TB, nodeID string) broker.Broker {
			c, loaded := clusters.LoadOrStore(t, &cluster{nodes: make(map[string]*clusterNode)})
			cl := c.(*cluster)
			if !loaded {
				cl.backend = New(Config{NodeID: "backend"})
				if err := cl.backend.Start(context.Background(), cl); err != nil {
					t.Fatalf("Start: %v", err)
				}
				t.Cleanup(func() {
					_ = cl.backend.Close()
					clusters.Delete(t)
				})
			}
			return &clusterNode{Broker: cl.backend, cluster: cl, id: nodeID, subs: make(map[string]int)}
		},
		MultiNode: true,
	})
}

// cluster fans the backend's deliveries out to the node views.
type cluster struct {
	backend *Broker
	mu      sync.Mutex
	nodes   map[string]*clusterNode
}

func (c *cluster) live() []*clusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*clusterNode, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

func (c *cluster) HandlePublication(p *broker.Publication) {
	for _, n := range c.live() {
		n.mu.Lock()
		subscribed := n.subs[p.Channel] > 0
		n.mu.Unlock()
		if subscribed {
			n.h.HandlePublication(p)
		}
	}
}

func (c *cluster) HandleControl(broker.Control) {}

// clusterNode is one node's view: its own handler, subscriptions and
// closed state over the shared backend (whose other methods it inherits).
type clusterNode struct {
	*Broker
	cluster *cluster
	id      string
	h       broker.Handler

	mu     sync.Mutex
	subs   map[string]int
	closed bool
}

func (n *clusterNode) check(ctx context.Context) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return broker.ErrClosed
	}
	return ctx.Err()
}

func (n *clusterNode) Start(_ context.Context, h broker.Handler) error {
	n.h = h
	n.cluster.mu.Lock()
	n.cluster.nodes[n.id] = n
	n.cluster.mu.Unlock()
	return nil
}

func (n *clusterNode) Close() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.cluster.mu.Lock()
	delete(n.cluster.nodes, n.id)
	n.cluster.mu.Unlock()
	return nil
}

func (n *clusterNode) Subscribe(ctx context.Context, ch string) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	if err := n.Broker.Subscribe(ctx, ch); err != nil {
		return err
	}
	n.mu.Lock()
	n.subs[ch]++
	n.mu.Unlock()
	return nil
}

func (n *clusterNode) Unsubscribe(ctx context.Context, ch string) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	had := n.subs[ch] > 0
	if had {
		n.subs[ch]--
	}
	n.mu.Unlock()
	if !had {
		return nil
	}
	return n.Broker.Unsubscribe(ctx, ch)
}

func (n *clusterNode) PublishControl(ctx context.Context, c broker.Control) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	reached := false
	for _, node := range n.cluster.live() {
		if c.Node == "" || c.Node == node.id {
			node.h.HandleControl(c)
			reached = true
		}
	}
	if c.Node != "" && !reached {
		return broker.ErrNoNode
	}
	return nil
}

func (n *clusterNode) Publish(ctx context.Context, ch string, p broker.Publication, opts broker.PublishOptions) (broker.PublishResult, error) {
	if err := n.check(ctx); err != nil {
		return broker.PublishResult{}, err
	}
	return n.Broker.Publish(ctx, ch, p, opts)
}

func (n *clusterNode) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if err := n.check(ctx); err != nil {
		return broker.HistoryResult{}, err
	}
	return n.Broker.History(ctx, ch, q)
}

func (n *clusterNode) Ping(ctx context.Context) error { return n.check(ctx) }

func (n *clusterNode) AddPresence(ctx context.Context, ch string, info broker.PresenceInfo, ttl time.Duration) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	return n.Broker.AddPresence(ctx, ch, info, ttl)
}

func (n *clusterNode) RemovePresence(ctx context.Context, ch, conn string) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	return n.Broker.RemovePresence(ctx, ch, conn)
}

func (n *clusterNode) Presence(ctx context.Context, ch string) ([]broker.PresenceInfo, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return n.Broker.Presence(ctx, ch)
}

func (n *clusterNode) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return n.Broker.AddUserConn(ctx, user, ref, ttl, keep)
}

func (n *clusterNode) RemoveUserConn(ctx context.Context, user, conn string) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	return n.Broker.RemoveUserConn(ctx, user, conn)
}

func (n *clusterNode) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	return n.Broker.Set(ctx, key, val, ttl)
}

func (n *clusterNode) Get(ctx context.Context, key string) ([]byte, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return n.Broker.Get(ctx, key)
}

func (n *clusterNode) Take(ctx context.Context, key string) ([]byte, error) {
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	return n.Broker.Take(ctx, key)
}

func (n *clusterNode) Delete(ctx context.Context, key string) error {
	if err := n.check(ctx); err != nil {
		return err
	}
	return n.Broker.Delete(ctx, key)
}
