package redis

import (
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/brokertest"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	brokertest.Run(t, brokertest.Factory{
		New: func(t testing.TB, nodeID string) broker.Broker {
			b, err := New(t.Context(), Config{URL: srv.URL(), NodeID: nodeID})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return b
		},
		MultiNode: true,
	})
}

// TestConformanceSharded runs the suite over two Redis servers and checks
// that both got a share of the data.
func TestConformanceSharded(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	url := a.URL() + "," + b.URL()
	t.Run("suite", func(t *testing.T) {
		brokertest.Run(t, brokertest.Factory{
			New: func(t testing.TB, nodeID string) broker.Broker {
				br, err := New(t.Context(), Config{URL: url, NodeID: nodeID})
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return br
			},
			MultiNode: true,
		})
	})
	for _, srv := range []*redistest.Server{a, b} {
		n, err := srv.Do("DBSIZE")
		if err != nil {
			t.Fatalf("DBSIZE: %v", err)
		}
		if n.(int64) == 0 {
			t.Errorf("server %s holds no keys: channels were not spread over both shards", srv.Addr)
		}
	}
}

// TestUsersScale: connect, disconnect, refresh and eviction cost the same
// with 10 and with 10,000 connections of one user (sorted sets: nothing
// reads or returns the whole set).
func TestUsersScale(t *testing.T) {
	srv := redistest.Start(t)
	b, _ := startBroker(t, Config{URL: srv.URL(), NodeID: "a"})
	brokertest.UsersScale(t, b, 10, 10000)
}
