package rabbitmq

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/brokertest"
	"github.com/ferry-io/ferry/internal/testutil/rabbittest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	srv := rabbittest.Start(t)
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
