package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/client"
)

// TestCloseStopsEverything: Close with a subscription nobody reads, a
// publish waiting for a connection and a reconnect delay in progress
// returns, fails the publish, closes the Messages channel and leaves no
// goroutine behind. (Not parallel: it counts goroutines.)
func TestCloseStopsEverything(t *testing.T) {
	n := startNode(t, nil)
	ignore := goleak.IgnoreCurrent() // the test binary's and the node's own
	c, err := client.Dial(t.Context(), n.url, client.Config{
		Token:   mint(t, "leaky", time.Hour),
		Backoff: client.Backoff{Initial: time.Hour}, // stays in the delay after the cut
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Subscribe(t.Context(), "chat:leak", client.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 { // more than the buffer: the delivery goroutine blocks
		publishAPI(t, n, "chat:leak", i)
	}
	eventually(t, "buffer full", func() bool { return len(s.Messages()) == 1 })
	disconnectUser(t, n, "leaky", 4012)
	eventually(t, "disconnected", func() bool { return c.State() == client.StateDisconnected })
	pubErr := make(chan error, 1)
	go func() {
		_, err := c.Publish(context.Background(), "chat:leak", "late")
		pubErr <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the publish queue (either way, Close must fail it)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-pubErr; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("publish: %v, want ErrClosed", err)
	}
	for range s.Messages() {
	}
	if !errors.Is(s.Err(), client.ErrClosed) || c.State() != client.StateClosed || c.Err() != nil {
		t.Fatalf("after Close: sub %v, state %v, err %v", s.Err(), c.State(), c.Err())
	}
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	goleak.VerifyNone(t, ignore)
}
