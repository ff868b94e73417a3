package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/server"
)

// stuckBroker is a memory broker whose Publish waits for its context: a
// broker that stopped answering.
type stuckBroker struct {
	*memory.Broker
	once    sync.Once
	entered chan struct{} // closed when a Publish is waiting
	ended   chan error    // what ended the Publish
}

func (b *stuckBroker) Publish(ctx context.Context, _ string, _ broker.Publication, _ broker.PublishOptions) (broker.PublishResult, error) {
	b.once.Do(func() { close(b.entered) })
	<-ctx.Done()
	b.ended <- ctx.Err()
	return broker.PublishResult{}, ctx.Err()
}

// TestShutdownCancelsInFlightFrames: a client's publish stuck on the broker
// is canceled by Shutdown (once the drain is over), not left to run out
// its own 10 s timeout.
func TestShutdownCancelsInFlightFrames(t *testing.T) {
	b := &stuckBroker{Broker: memory.New(memory.Config{NodeID: "stuck"}), entered: make(chan struct{}), ended: make(chan error, 1)}
	n := startNodeWith(t, func(c *server.Config) {
		c.NodeID = "stuck"
		c.Shutdown.Timeout = 100 * time.Millisecond // the stuck frame keeps its connection from leaving
	}, server.Options{Broker: b})
	cl := connectClient(t, n, "alice")
	cl.send(map[string]any{"type": "publish", "id": 5, "channel": "chat:x", "data": 1})
	wait.For(t, "the publish to reach the broker", func() bool {
		select {
		case <-b.entered:
			return true
		default:
			return false
		}
	})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait.Timeout)
		defer cancel()
		done <- n.srv.Shutdown(ctx)
	}()
	var got error
	wait.For(t, "the stuck publish to end", func() bool {
		select {
		case got = <-b.ended:
			return true
		default:
			return false
		}
	})
	if !errors.Is(got, context.Canceled) {
		t.Fatalf("the stuck publish ended with %v, want context.Canceled (Shutdown cancels in-flight work)", got)
	}
	wait.For(t, "Shutdown to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}
