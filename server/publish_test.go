package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// TestPublishFromGo is the embedder's publish: the same delivery as the
// server API's, with options, and clear errors for bad input.
func TestPublishFromGo(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "alice")
	cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:go"})
	ctx := context.Background()

	res, err := n.srv.Publish(ctx, "chat:go", []byte(`{"x":1}`), server.WithKey("k1"), server.WithPriority("critical"))
	if err != nil || res.Offset != 1 || res.Duplicate {
		t.Fatalf("Publish = %+v, %v; want offset 1", res, err)
	}
	m := cl.expect("message")
	if m["channel"] != "chat:go" || m["priority"] != "critical" || num(m["data"].(map[string]any)["x"]) != 1 {
		t.Fatalf("delivered %v", m)
	}
	res, err = n.srv.Publish(ctx, "chat:go", []byte(`{"x":1}`), server.WithKey("k1"))
	if err != nil || !res.Duplicate || res.Offset != 1 {
		t.Fatalf("repeat with the same key = %+v, %v; want the duplicate of offset 1", res, err)
	}

	bad := []struct {
		name, channel, data string
		code                int
	}{
		{"bad channel", "bad channel", `1`, protocol.CodeBadRequest},
		{"not JSON", "chat:go", `{"broken"`, protocol.CodeBadRequest},
		{"empty data", "chat:go", ``, protocol.CodeBadRequest},
		{"unknown namespace", "nowhere:x", `1`, protocol.CodeNotFound},
	}
	for _, tc := range bad {
		_, err := n.srv.Publish(ctx, tc.channel, []byte(tc.data))
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s: err %v, want a protocol error with code %d", tc.name, err, tc.code)
		}
	}
}
