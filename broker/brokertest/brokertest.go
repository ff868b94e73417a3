package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// Factory tells the suite how to make brokers of one engine and what the
// engine can do.
type Factory struct {
	// New returns a new, not yet started broker for the node nodeID. The
	// suite calls Start and, when the test ends, Close; New registers the
	// cleanup of anything else it creates (with t.Cleanup). When MultiNode
	// is set, every broker New returns within one test must share one
	// backend, as the nodes of a cluster do.
	New func(t testing.TB, nodeID string) broker.Broker
	// MultiNode says that brokers from New share state, so that the
	// cross-node tests (delivery, control, idempotency, presence, users
	// and KV seen from another node) run. Without it they are skipped.
	MultiNode bool
}

// pollTimeout bounds every wait of the suite. It is a safety net against a
// hung test, not a timing assertion: nothing is expected to take long.
const pollTimeout = 10 * time.Second

// Run runs the conformance suite against the engine f makes. Each check is
// a subtest of t; the subtests run in parallel with each other.
// Capabilities the engine does not implement (broker.Presence, broker.Users,
// broker.KV, broker.Locker) have their subtests skipped.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.New == nil {
		t.Fatal("brokertest: Factory.New is nil")
	}
	s := &suite{f: f, prefix: "bt-" + randomHex(4)}
	tests := []struct {
		name string
		fn   func(t *testing.T, s *suite)
	}{
		{"Offsets", testOffsets},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"HistorySize", testHistorySize},
		{"HistoryZeroSize", testHistoryZeroSize},
		{"HistoryTTL", testHistoryTTL},
		{"HistoryQuery", testHistoryQuery},
		{"HistoryOverflow", testHistoryOverflow},
		{"HistoryEmptyChannel", testHistoryEmptyChannel},
		{"HistoryConsistentUnderPublish", testHistoryConsistent},
		{"Idempotency", testIdempotency},
		{"IdempotencyWindow", testIdempotencyWindow},
		{"Delivery", testDelivery},
		{"SubscribeRefcount", testSubscribeRefcount},
		{"Control", testControl},
		{"Presence", testPresence},
		{"PresenceExpiry", testPresenceExpiry},
		{"Users", testUsers},
		{"UsersExpiry", testUsersExpiry},
		{"KV", testKV},
		{"KVConcurrentTake", testKVConcurrentTake},
		{"KVExpiry", testKVExpiry},
		{"Lock", testLock},
		{"LockRace", testLockRace},
		{"LockExpiry", testLockExpiry},
		{"Closed", testClosed},
		{"MultiNode/SharedStream", testMultiNodeStream},
		{"MultiNode/Delivery", testMultiNodeDelivery},
		{"MultiNode/Control", testMultiNodeControl},
		{"MultiNode/Idempotency", testMultiNodeIdempotency},
		{"MultiNode/Capabilities", testMultiNodeCapabilities},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s)
		})
	}
}

// suite is the state shared by the subtests of one Run.
type suite struct {
	f      Factory
	prefix string
	seq    atomic.Uint64
}

// name returns a channel, user or key name no other test uses.
func (s *suite) name(kind string) string {
	return fmt.Sprintf("%s-%s-%d", s.prefix, kind, s.seq.Add(1))
}

// node is one started broker with the handler recording its deliveries.
type node struct {
	id  string
	b   broker.Broker
	rec *recorder

	closeOnce sync.Once
	closeErr  error
}

// close closes the broker once; later calls return the first result.
func (n *node) close() error {
	n.closeOnce.Do(func() { n.closeErr = n.b.Close() })
	return n.closeErr
}

// node makes and starts a broker for node id, closed when t ends.
func (s *suite) node(t testing.TB, id string) *node {
	t.Helper()
	b := s.f.New(t, id)
	if b == nil {
		t.Fatal("Factory.New returned nil")
	}
	n := &node{id: id, b: b, rec: newRecorder()}
	if err := b.Start(context.Background(), n.rec); err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := n.close(); err != nil {
			t.Errorf("Close(%s): %v", id, err)
		}
	})
	return n
}

// nodes makes a cluster of count nodes sharing a backend; the test is
// skipped when the engine is single-node.
func (s *suite) nodes(t testing.TB, count int) []*node {
	t.Helper()
	if !s.f.MultiNode {
		t.Skip("engine is single-node (Factory.MultiNode is false)")
	}
	out := make([]*node, count)
	for i := range out {
		out[i] = s.node(t, fmt.Sprintf("%s-node%d", s.name("n"), i))
	}
	return out
}

// recorder is a broker.Handler that keeps everything it is given.
type recorder struct {
	mu       sync.Mutex
	pubs     map[string][]broker.Publication
	controls []broker.Control
}

func newRecorder() *recorder {
	return &recorder{pubs: make(map[string][]broker.Publication)}
}

// HandlePublication records a copy of p. It yields the processor first,
// as a handler doing some work would, which makes an engine that calls
// handlers of one channel out of order much more likely to be caught.
func (r *recorder) HandlePublication(p *broker.Publication) {
	runtime.Gosched()
	cp := *p
	cp.Data = append([]byte(nil), p.Data...)
	r.mu.Lock()
	r.pubs[p.Channel] = append(r.pubs[p.Channel], cp)
	r.mu.Unlock()
}

// HandleControl records c.
func (r *recorder) HandleControl(c broker.Control) {
	r.mu.Lock()
	r.controls = append(r.controls, c)
	r.mu.Unlock()
}

// received returns a copy of what was delivered for ch.
func (r *recorder) received(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Publication(nil), r.pubs[ch]...)
}

// controlsFor returns the control messages received for user.
func (r *recorder) controlsFor(user string) []broker.Control {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Control
	for _, c := range r.controls {
		if c.User == user {
			out = append(out, c)
		}
	}
	return out
}

// waitFor polls cond until it holds; it fails the test after pollTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitReceived waits until n delivered count publications on ch and returns
// them.
func waitReceived(t testing.TB, n *node, ch string, count int) []broker.Publication {
	t.Helper()
	var got []broker.Publication
	waitFor(t, fmt.Sprintf("%d deliveries on %s to %s", count, ch, n.id), func() bool {
		got = n.rec.received(ch)
		return len(got) >= count
	})
	return got
}

func publish(t testing.TB, b broker.Broker, ch string, data string, opts broker.PublishOptions) broker.PublishResult {
	t.Helper()
	res, err := b.Publish(context.Background(), ch, broker.Publication{Data: []byte(data)}, opts)
	if err != nil {
		t.Fatalf("Publish(%s): %v", ch, err)
	}
	return res
}

func history(t testing.TB, b broker.Broker, ch string, q broker.HistoryQuery) broker.HistoryResult {
	t.Helper()
	res, err := b.History(context.Background(), ch, q)
	if err != nil {
		t.Fatalf("History(%s): %v", ch, err)
	}
	return res
}

// offsets lists the offsets of pubs.
func offsets(pubs []broker.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

// span returns the offsets from, from+1, ..., to (empty when to < from).
func span(from, to uint64) []uint64 {
	out := []uint64{}
	for o := from; o <= to && from > 0; o++ {
		out = append(out, o)
	}
	return out
}

// checkRun reports whether pubs have the offsets from, from+1, ... in
// order, all in epoch.
func checkRun(t testing.TB, what string, pubs []broker.Publication, from uint64, epoch string) {
	t.Helper()
	for i, p := range pubs {
		if want := from + uint64(i); p.Offset != want {
			near := offsets(pubs[max(0, i-5):min(len(pubs), i+6)])
			t.Fatalf("%s: message %d has offset %d, want %d (offsets around it: %v)", what, i, p.Offset, want, near)
		}
		if p.Epoch != epoch {
			t.Fatalf("%s: message %d has epoch %q, want %q", what, i, p.Epoch, epoch)
		}
	}
}

func isNotFound(err error) bool { return errors.Is(err, broker.ErrNotFound) }

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}

// capability returns n's broker as capability C, skipping the test when the
// engine does not implement it.
func capability[C any](t testing.TB, n *node) C {
	t.Helper()
	c, ok := n.b.(C)
	if !ok {
		var zero C
		t.Skipf("engine does not implement %T", &zero)
	}
	return c
}
