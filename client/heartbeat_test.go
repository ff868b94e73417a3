package client_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// freezingServer answers connect (heartbeat 3 s + 2 s) and one subscribe,
// sends one message when told to, and then stops reading: it answers no
// ping, as a frozen node would not.
func freezingServer(t *testing.T, sendMessage <-chan struct{}) string {
	stop := make(chan struct{}) // the test is over: the handler returns
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.SubprotocolJSON}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		reply := func(v map[string]any) bool {
			b, _ := json.Marshal(v)
			return c.Write(ctx, websocket.MessageText, b) == nil
		}
		var f map[string]any
		for _, answer := range []func() map[string]any{
			func() map[string]any {
				return map[string]any{"type": "connected", "id": f["id"], "session": "s", "resume_token": "rt", "node": "n", "user": "u",
					"heartbeat": map[string]any{"interval_ms": 3000, "timeout_ms": 2000}, "limits": map[string]any{"max_frame_bytes": 65536}}
			},
			func() map[string]any {
				return map[string]any{"type": "subscribed", "id": f["id"], "channel": f["channel"], "offset": 0, "epoch": "e"}
			},
		} {
			_, b, err := c.Read(ctx)
			if err != nil || json.Unmarshal(b, &f) != nil || !reply(answer()) {
				return
			}
		}
		select {
		case <-sendMessage:
			reply(map[string]any{"type": "message", "channel": "chat:hb", "offset": 1, "epoch": "e", "data": 1})
		case <-ctx.Done():
			return
		}
		select { // frozen: no more reads, so no pong
		case <-stop:
		case <-ctx.Done():
		}
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(func() { close(stop) })
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

// TestHeartbeatNoticesSilenceAfterInterval: the client checks the
// connection when it will have been idle for the heartbeat interval, not
// a whole interval after its last check, so a server that stops answering
// is noticed interval + timeout after its last frame.
func TestHeartbeatNoticesSilenceAfterInterval(t *testing.T) {
	t.Parallel()
	send := make(chan struct{})
	clock := newFakeClock()
	lost := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, freezingServer(t, send), client.Config{
		Clock: clock, DisableAutoAck: true,
		OnState: func(sc client.StateChange) {
			if sc.State == client.StateDisconnected && sc.Prev == client.StateConnected {
				select {
				case lost <- struct{}{}:
				default:
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "chat:hb")
	if err != nil {
		t.Fatal(err)
	}
	// The heartbeat check is armed at connect, for the interval.
	for clock.nextTimer(t) != 3*time.Second {
	}
	// The last frame comes 1 s after connect; the first check, 3 s after
	// connect, finds the connection idle for 2 s only, and looks again
	// when it will have been idle for the interval: 1 s later (not a
	// whole interval later, at 6 s).
	clock.Advance(time.Second)
	close(send)
	recv(t, sub)
	clock.Advance(2 * time.Second)
	if d := clock.nextTimer(t); d != time.Second {
		t.Fatalf("after a check that found the connection idle for 2 s of 3, the next check is in %v, want 1s", d)
	}
	// 4 s after connect it has been idle for the interval: the client
	// pings, gets no answer, and drops the connection after the timeout
	// (2 s, real time).
	clock.Advance(time.Second)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the silence was not noticed one heartbeat interval after the last frame")
	}
}
