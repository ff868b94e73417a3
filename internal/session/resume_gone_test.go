package session

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
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
	_, _, connected := connectFirst(t, env, claims)

	// Another node, whose control messages to the first node reach nobody.
	var takeovers atomic.Int64
	other := onOtherNode(env, unreachable{Node: env.Node, takeovers: &takeovers})
	kv := &countingKV{KV: env.KV, key: snapshotKey(connected.Session)}
	other.KV = kv
	resumeOn(t, other, claims, connected)
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
