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

// streamResetServer answers connect and one subscribe (epoch "old", at
// offset 2), then sends what a node sends when the broker lost the
// channel's stream under a live subscription: old:3, then new:2 and new:3
// (new:1 never came).
func streamResetServer(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.SubprotocolJSON}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		send := func(v map[string]any) {
			b, _ := json.Marshal(v)
			_ = c.Write(ctx, websocket.MessageText, b)
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f map[string]any
			_ = json.Unmarshal(b, &f)
			switch f["type"] {
			case "connect":
				send(map[string]any{"type": "connected", "id": f["id"], "session": "s", "resume_token": "rt", "node": "n", "user": "u",
					"heartbeat": map[string]any{"interval_ms": 0, "timeout_ms": 0}, "limits": map[string]any{"max_frame_bytes": 65536}})
			case "subscribe":
				send(map[string]any{"type": "subscribed", "id": f["id"], "channel": f["channel"], "offset": 2, "epoch": "old", "recovered": false})
				for _, m := range []struct {
					epoch string
					off   int
				}{{"old", 3}, {"new", 2}, {"new", 3}} {
					send(map[string]any{"type": "message", "channel": f["channel"], "offset": m.off, "epoch": m.epoch, "data": m.off})
				}
			}
		}
	}))
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

// TestStreamResetOnALiveSubscription: a live subscription whose channel
// moves to a new epoch reports a Gap with the fields a re-subscription's
// recovered:false gets (the new epoch, the previous one, the last position
// delivered, the offsets of the new stream it never got), once, before
// the new stream's first message.
func TestStreamResetOnALiveSubscription(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type event struct {
		gap *client.Gap
		msg string
	}
	events := make(chan event, 16)
	c, err := client.Dial(ctx, streamResetServer(t), client.Config{DisableAutoAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Subscribe(ctx, "chat:x",
		client.WithHandler(func(m client.Message) { events <- event{msg: m.Epoch + ":" + string(m.Data)} }),
		client.WithGapHandler(func(g client.Gap) { events <- event{gap: &g} }))
	if err != nil {
		t.Fatal(err)
	}
	var got []event
	for len(got) < 4 {
		select {
		case e := <-events:
			got = append(got, e)
		case <-ctx.Done():
			t.Fatalf("got %+v, then nothing", got)
		}
	}
	if got[0].msg != "old:3" || got[1].gap == nil || got[2].msg != "new:2" || got[3].msg != "new:3" {
		t.Fatalf("events %+v, want old:3, a gap, new:2, new:3", got)
	}
	want := client.Gap{Channel: "chat:x", Missed: 1, Epoch: "new", PrevEpoch: "old", After: client.Position{Offset: 3, Epoch: "old"}}
	if *got[1].gap != want {
		t.Fatalf("gap %+v, want %+v", *got[1].gap, want)
	}
	if st := c.Stats(); st.Gaps != 1 {
		t.Fatalf("stats report %d gaps, want 1", st.Gaps)
	}
}
