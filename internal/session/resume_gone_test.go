package session

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/protocol"
)

// countingKV counts the reads of one key.
type countingKV struct {
	broker.KV
	key   string
	reads atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string) ([]byte, error) {
	if key == k.key {
		k.reads.Add(1)
	}
	return k.KV.Get(ctx, key)
}

func TestResumeFromGoneNodeDoesNotWaitForTakeover(t *testing.T) {
	// The session is live on a node that no longer listens (killed): the
	// takeover request reaches nobody, so the resume must use the saved
	// state at once rather than poll the snapshot for an answer that
	// cannot come.
	env := writersEnv(t, flow.NewWriters(2))
	claims := &auth.Claims{Subject: "u"}
	oldT := &recTransport{}
	old := New(env, oldT, Handshake{Codec: protocol.JSON, Token: "t", Claims: claims})
	old.HandleMessage([]byte(`{"type":"connect","id":1}`))
	waitFor(t, "the first connection's connected frame", func() bool { return len(oldT.frames(t)) > 0 })
	var connected protocol.Connected
	if err := json.Unmarshal(oldT.sends[0], &connected); err != nil || connected.ResumeToken == "" {
		t.Fatalf("connected frame %s: %v", oldT.sends[0], err)
	}

	// Another node, whose control messages to the first node reach nobody.
	other := *env
	other.NodeID = "other"
	var takeovers atomic.Int64
	other.Node = unreachable{Node: env.Node, takeovers: &takeovers}
	kv := &countingKV{KV: env.KV, key: snapshotKey(connected.Session)}
	other.KV = kv
	newT := &recTransport{}
	s := New(&other, newT, Handshake{Codec: protocol.JSON, Token: "t", Claims: claims})
	s.HandleMessage([]byte(`{"type":"connect","id":1,"resume":{"session":"` + connected.Session + `","token":"` + connected.ResumeToken + `"}}`))
	waitFor(t, "the resumed connection's connected frame", func() bool { return len(newT.frames(t)) > 0 })
	if !strings.Contains(string(newT.sends[0]), `"resumed":true`) {
		t.Fatalf("connected frame %s, want resumed", newT.sends[0])
	}
	if takeovers.Load() != 1 {
		t.Fatalf("%d takeover requests, want 1", takeovers.Load())
	}
	if n := kv.reads.Load(); n != 1 {
		t.Fatalf("the snapshot was read %d times, want once (no polling for a takeover answer)", n)
	}
}

// unreachable is a node whose control messages reach nobody; it counts the
// takeover requests it was asked to send.
type unreachable struct {
	Node
	takeovers *atomic.Int64
}

func (u unreachable) Control(_ context.Context, c broker.Control) error {
	if c.Kind == broker.ControlTakeover {
		u.takeovers.Add(1)
	}
	return broker.ErrNoNode
}
