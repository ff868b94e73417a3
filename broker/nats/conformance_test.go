package nats

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/brokertest"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout is Config.Timeout in the tests: the suite runs its checks
// in parallel on a loaded machine, and replicated writes wait for a
// quorum. A bound against hangs, not an expectation of speed.
const testTimeout = 10 * time.Second

// factory makes brokers on the servers of urls, node i on urls[i%len].
func factory(urls []string, replicas int) brokertest.Factory {
	var n atomic.Int64
	return brokertest.Factory{
		New: func(t testing.TB, nodeID string) broker.Broker {
			url := urls[int(n.Add(1)-1)%len(urls)]
			b, err := New(t.Context(), Config{URL: url, NodeID: nodeID, Replicas: replicas, Timeout: testTimeout})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return b
		},
		MultiNode: true,
	}
}

func TestConformance(t *testing.T) {
	srv := natstest.Start(t)
	brokertest.Run(t, factory([]string{srv.URL()}, 1))
}

// TestConformanceCluster runs the suite on a 3-server cluster with the
// stream and buckets replicated on all three; each node connects to
// another server than the one before.
func TestConformanceCluster(t *testing.T) {
	c := natstest.StartCluster(t)
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	brokertest.Run(t, factory(urls, 3))
}

// TestUsersScale: connect, disconnect, refresh and eviction cost the same
// with 10 and with 2,000 connections of one user (one key per connection
// and a head with the count and the oldest; see users.go).
func TestUsersScale(t *testing.T) {
	srv := natstest.Start(t)
	b, err := New(t.Context(), Config{URL: srv.URL(), NodeID: "scale", Timeout: testTimeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	brokertest.UsersScale(t, b, 10, 2000)
}

// TestUsersScaleCluster: the same on the 3-server cluster with the
// buckets replicated on all three (1,000 connections: each write waits
// for a quorum, and the front holds 32 whatever the count).
func TestUsersScaleCluster(t *testing.T) {
	c := natstest.StartCluster(t)
	b, err := New(t.Context(), Config{URL: c.Servers[0].URL(), NodeID: "scale", Replicas: 3, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	brokertest.UsersScale(t, b, 10, 1000)
}
