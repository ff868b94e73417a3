package rabbitmq

import (
	"log/slog"
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
			b, err := New(t.Context(), Config{URL: srv.URL(), NodeID: nodeID, Logger: testLogger(t)})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return b
		},
		MultiNode: true,
	})
}

// testLogger sends the broker's log lines to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
