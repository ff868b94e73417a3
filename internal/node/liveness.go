package node

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// A node's liveness record is a key in the broker's KV, refreshed by the
// node every LivenessEvery and expiring LivenessTTL after the last refresh.
// Other nodes read it before they wait for this node to hand a session
// over: a node that is gone (killed) or frozen (SIGSTOP, a stalled VM, a
// GC pause longer than the TTL) has no record, and waiting for its answer
// would hold the resuming client hostage. The record only shortens a wait;
// it never decides who owns a session (the session record's generation
// does, see internal/session), so a record that lapsed while its node was
// alive costs at most duplicates that clients drop by offset.
const (
	// LivenessEvery is how often a node refreshes its record.
	LivenessEvery = time.Second
	// LivenessTTL is how long a record outlives its last refresh: three
	// refreshes, so that one slow broker round trip does not drop it.
	LivenessTTL = 3 * time.Second
)

// livenessKey is the KV key of node id's liveness record.
func livenessKey(id string) string { return "ferry:node:" + id }

// liveness is the node's side of its record: when it was last written.
type liveness struct {
	kv broker.KV // nil: the broker keeps no KV, and no record is kept
	// lastBeat is when the record was last written successfully (unix
	// nanos, 0: never). Atomic: written by Beat's caller, read by Lapsed.
	lastBeat atomic.Int64
}

// Beat writes the node's liveness record (call it every LivenessEvery).
// lapsed reports that the previous successful write is more than
// LivenessTTL old: the record expired in between, so other nodes may have
// taken this node's sessions over without waiting for it, and the node
// must check that its sessions are still its own (it was frozen, or cut
// from the broker) before it delivers into them.
func (n *Node) Beat(ctx context.Context, now time.Time) (lapsed bool, err error) {
	if n.live.kv == nil {
		return false, nil
	}
	if err := n.live.kv.Set(ctx, livenessKey(n.id), []byte(strconv.FormatInt(now.UnixMilli(), 10)), LivenessTTL); err != nil {
		return false, BrokerError("liveness", err)
	}
	prev := n.live.lastBeat.Swap(now.UnixNano())
	return prev != 0 && now.Sub(time.Unix(0, prev)) > LivenessTTL, nil
}

// Alive reports whether node id keeps its liveness record, that is, is
// running and reached the broker within LivenessTTL. It answers true when
// it cannot tell (no KV, a broker error): the caller then waits for the
// node's answer as long as it would have without the record.
func (n *Node) Alive(ctx context.Context, id string) bool {
	if n.live.kv == nil || id == n.id {
		return true
	}
	_, err := n.live.kv.Get(ctx, livenessKey(id))
	return !errors.Is(err, broker.ErrNotFound)
}

// Forget deletes the node's liveness record (at the end of a shutdown,
// once its sessions are handed over), so that no other node waits for it.
func (n *Node) Forget(ctx context.Context) {
	if n.live.kv != nil {
		_ = n.live.kv.Delete(ctx, livenessKey(n.id))
	}
}

// Beating reports whether the node's record is current: written within
// LivenessTTL of now (or not kept at all, or not yet tried). A node whose
// record lapsed is not ready (/readyz): other nodes already treat it as
// gone, and new clients should go elsewhere until it writes it again.
func (n *Node) Beating(now time.Time) bool {
	last := n.live.lastBeat.Load()
	return n.live.kv == nil || last == 0 || now.Sub(time.Unix(0, last)) <= LivenessTTL
}
