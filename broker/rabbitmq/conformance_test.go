package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

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
	t.Run("ShardsMismatch", func(t *testing.T) { testShardsMismatch(t, srv.URL()) })
	t.Run("StreamSettingsMismatch", func(t *testing.T) { testStreamMismatch(t, srv.URL()) })
}

// testStreamMismatch: a node whose stream retention differs from the
// declared streams' fails to start with RabbitMQ's reason.
func testStreamMismatch(t *testing.T, url string) {
	startNodeWith(t, Config{URL: url, NodeID: "day", Prefix: "retention"})
	b, err := New(t.Context(), Config{URL: url, NodeID: "hour", Prefix: "retention", StreamMaxAge: time.Hour})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer b.Close()
	err = b.Start(context.Background(), &recorder{})
	if err == nil || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Fatalf("Start with another StreamMaxAge: %v, want RabbitMQ's PRECONDITION_FAILED", err)
	}
}

// testShardsMismatch: a node configured with another shard count than the
// writer's gets a clear error instead of offsets from the wrong writer.
func testShardsMismatch(t *testing.T, url string) {
	ctx := context.Background()
	writer, _ := startNodeWith(t, Config{URL: url, NodeID: "sixteen", Prefix: "mismatch"})
	other, _ := startNodeWith(t, Config{URL: url, NodeID: "eight", Prefix: "mismatch", Shards: 8})
	for i := range 4 {
		_, err := other.Publish(ctx, fmt.Sprint("ch", i), broker.Publication{Data: []byte(`{}`)}, broker.PublishOptions{})
		if err == nil || !strings.Contains(err.Error(), "Shards") {
			t.Fatalf("Publish from a node with Shards 8 to writers with 16: %v, want an error naming Shards", err)
		}
	}
	if _, err := writer.Publish(ctx, "ch0", broker.Publication{Data: []byte(`{}`)}, broker.PublishOptions{}); err != nil {
		t.Fatalf("Publish from the writer's own node: %v", err)
	}
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

// TestUsersScale: connect, disconnect, refresh and eviction cost the same
// with 10 and with 1,000 connections of one user (the records live in the
// writer's memory engine, and a reply names only the connections to
// evict). The node is its own writer, so both sides are measured.
func TestUsersScale(t *testing.T) {
	srv := rabbittest.Start(t)
	b, _ := startNodeWith(t, Config{URL: srv.URL(), NodeID: "scale", Prefix: "scale"})
	brokertest.UsersScale(t, b, 10, 1000)
}
