package session

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/protocol"
)

// notAlive is a node that reports every other node dead (no liveness
// record), while its control messages are still sent (the old node's
// subscription is there: it is frozen, not gone).
type notAlive struct {
	Node
	checks *atomic.Int64
}

func (n notAlive) Alive(context.Context, string) bool {
	n.checks.Add(1)
	return false
}

// onOtherNode is env as seen from another node, "other", whose node is n.
func onOtherNode(env *Env, n Node) *Env {
	other := *env
	other.NodeID = "other"
	other.Node = n
	return &other
}

// connectFirst connects a session on env and returns it with its connected
// frame.
func connectFirst(t *testing.T, env *Env, claims *auth.Claims) (*Session, *recTransport, protocol.Connected) {
	t.Helper()
	tr := &recTransport{}
	s := New(env, tr, Handshake{Codec: protocol.JSON, Token: "t", Claims: claims})
	s.HandleMessage([]byte(`{"type":"connect","id":1}`))
	waitFor(t, "the first connection's connected frame", func() bool { return len(tr.frames(t)) > 0 })
	var c protocol.Connected
	if err := json.Unmarshal(tr.sends[0], &c); err != nil || c.ResumeToken == "" {
		t.Fatalf("connected frame %s: %v", tr.sends[0], err)
	}
	return s, tr, c
}

// resumeOn resumes connected's session on env, returning the new session
// once it answered connected.
func resumeOn(t *testing.T, env *Env, claims *auth.Claims, c protocol.Connected) (*Session, *recTransport) {
	t.Helper()
	tr := &recTransport{}
	s := New(env, tr, Handshake{Codec: protocol.JSON, Token: "t", Claims: claims})
	s.HandleMessage([]byte(`{"type":"connect","id":1,"resume":{"session":"` + c.Session + `","token":"` + c.ResumeToken + `"}}`))
	waitFor(t, "the resumed connection's connected frame", func() bool { return len(tr.frames(t)) > 0 })
	if !strings.Contains(string(tr.sends[0]), `"resumed":true`) {
		t.Fatalf("connected frame %s, want resumed", tr.sends[0])
	}
	return s, tr
}

func TestResumeDoesNotWaitForANodeWithoutLiveness(t *testing.T) {
	// The old connection is live on a node that does not answer (frozen:
	// its control subscription still counts as a receiver). Its node keeps
	// no liveness record, so the resume must not wait for its takeover
	// answer: it reads the snapshot once and goes on.
	env := writersEnv(t, flow.NewWriters(2))
	claims := &auth.Claims{Subject: "u"}
	old, _, connected := connectFirst(t, env, claims)
	defer old.Abort()

	var checks atomic.Int64
	other := onOtherNode(env, notAlive{Node: env.Node, checks: &checks})
	kv := &countingKV{KV: env.KV, key: snapshotKey(connected.Session)}
	other.KV = kv
	s, _ := resumeOn(t, other, claims, connected)
	defer s.Abort()
	if checks.Load() == 0 {
		t.Fatal("the resume never asked whether the old node is alive")
	}
	// One read to load the snapshot, one for the new connection's fence
	// check is not made at connect: exactly one.
	if n := kv.reads.Load(); n != 1 {
		t.Fatalf("the snapshot was read %d times, want once (no waiting for a frozen node)", n)
	}
	snap, err := s.readSnapshot(context.Background(), connected.Session)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Gen != 1 || snap.Node != "other" || !snap.Live {
		t.Fatalf("record after the resume: gen %d node %q live %v, want gen 1 on other, live", snap.Gen, snap.Node, snap.Live)
	}
}

func TestWokenConnectionIsFencedOff(t *testing.T) {
	// A node froze holding a live session; another node resumed it
	// (generation 1). When the old connection wakes, it must neither
	// overwrite the record (its save is fenced) nor stay open to deliver
	// (Fence closes it with 4016).
	env := writersEnv(t, flow.NewWriters(2))
	claims := &auth.Claims{Subject: "u"}
	old, _, connected := connectFirst(t, env, claims)

	var checks atomic.Int64
	s, _ := resumeOn(t, onOtherNode(env, notAlive{Node: env.Node, checks: &checks}), claims, connected)
	defer s.Abort()

	ctx := context.Background()
	// The old connection's periodic save comes first: it must not write.
	old.saveSnapshot(ctx, true, nil)
	snap, err := s.readSnapshot(ctx, connected.Session)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Node != "other" || snap.Gen != 1 {
		t.Fatalf("the woken connection overwrote the record: node %q gen %d", snap.Node, snap.Gen)
	}
	code, _, closing := old.CloseCode()
	if !closing || code != protocol.CloseSessionTakenOver {
		t.Fatalf("the fenced connection: closing %v with %d, want %d", closing, code, protocol.CloseSessionTakenOver)
	}
	// The wire goes (the transport reports it) and the session releases.
	old.Closed(code, "")
	// Its release (the closed connection's final save) is fenced too.
	snap, err = s.readSnapshot(ctx, connected.Session)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Node != "other" || snap.Gen != 1 || !snap.Live {
		t.Fatalf("record after the old connection closed: node %q gen %d live %v, want other's live generation 1", snap.Node, snap.Gen, snap.Live)
	}
}

func TestFenceLeavesTheOwnerOpen(t *testing.T) {
	env := writersEnv(t, flow.NewWriters(2))
	s, _, _ := connectFirst(t, env, &auth.Claims{Subject: "u"})
	defer s.Abort()
	s.Fence(context.Background())
	if _, _, closing := s.CloseCode(); closing {
		t.Fatal("Fence closed the connection that owns its session")
	}
}

func TestSnapshotGenerationRoundTrip(t *testing.T) {
	in := &snapshot{ID: "s", User: "u", TokenHash: "h", Node: "n", Conn: "c", Live: true, Gen: 7,
		Subs: []snapshotSub{{Channel: "a", Epoch: "e", Offset: 3}}}
	out, err := decodeSnapshot(encodeSnapshot(nil, in))
	if err != nil {
		t.Fatal(err)
	}
	if out.Gen != 7 || out.ID != "s" || len(out.Subs) != 1 {
		t.Fatalf("round trip: %+v", out)
	}
	// A record of the version before generations reads as generation 0.
	v1 := []byte{snapshotV1, snapLive}
	for range 5 {
		v1 = appendString(v1, "x")
	}
	v1 = append(v1, 0, 0, 0) // seq, no unacked, no subs
	old, err := decodeSnapshot(v1)
	if err != nil {
		t.Fatal(err)
	}
	if old.Gen != 0 || !old.Live || old.ID != "x" {
		t.Fatalf("v1 record: %+v", old)
	}
	// A generation beyond 32 bits is not a snapshot.
	bad := append([]byte{snapshotV2, 0}, 0x80, 0x80, 0x80, 0x80, 0x10)
	if _, err := decodeSnapshot(bad); err == nil {
		t.Fatal("a 33-bit generation was accepted")
	}
}

// slowHistory is a broker whose History waits until released, once it
// said it was called.
type slowHistory struct {
	broker.Broker
	called, release chan struct{}
}

func (b *slowHistory) History(ctx context.Context, ch string, q broker.HistoryQuery) (broker.HistoryResult, error) {
	select {
	case b.called <- struct{}{}:
	default:
	}
	<-b.release
	return b.Broker.History(ctx, ch, q)
}

// closedWithSubs connects a session of user u on env, closes it and
// rewrites its record to hold subs; it returns the connected frame.
func closedWithSubs(t *testing.T, env *Env, subs []snapshotSub) protocol.Connected {
	t.Helper()
	old, _, connected := connectFirst(t, env, &auth.Claims{Subject: "u"})
	old.Closed(1000, "")
	ctx := context.Background()
	snap, err := old.readSnapshot(ctx, connected.Session)
	if err != nil {
		t.Fatal(err)
	}
	snap.Subs = subs
	if err := env.KV.Set(ctx, snapshotKey(connected.Session), encodeSnapshot(nil, snap), time.Minute); err != nil {
		t.Fatal(err)
	}
	return connected
}

// resumeHeldInHistory resumes connected's session on another node whose
// History waits: it returns once the restore reads its first channel's
// history, with the broker to release and a channel closed when the
// connect frame is handled.
func resumeHeldInHistory(t *testing.T, env *Env, connected protocol.Connected) (*Session, *slowHistory, chan struct{}) {
	t.Helper()
	slow := &slowHistory{Broker: env.Broker, called: make(chan struct{}, 1), release: make(chan struct{})}
	other := onOtherNode(env, env.Node)
	other.Broker = slow
	s := New(other, &recTransport{}, Handshake{Codec: protocol.JSON, Token: "t", Claims: &auth.Claims{Subject: "u"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.HandleMessage([]byte(`{"type":"connect","id":1,"resume":{"session":"` + connected.Session + `","token":"` + connected.ResumeToken + `"}}`))
	}()
	<-slow.called
	return s, slow, done
}

func TestRestoredSubscriptionIsSavedWhileItStarts(t *testing.T) {
	// A session resumed from a record that has channel c:x at 5@e: while
	// the restored subscription still reads its history (it has not
	// started), the connection's state is saved (it is taken over again:
	// an HTTP session whose next request lands on another node). The
	// saved state must keep c:x at 5@e, not leave it out.
	env := writersEnv(t, flow.NewWriters(2))
	connected := closedWithSubs(t, env, []snapshotSub{{Channel: "c:x", Epoch: "e", Offset: 5}})
	ctx := context.Background()
	s, slow, done := resumeHeldInHistory(t, env, connected)
	s.saveSnapshot(ctx, true, nil)
	saved, err := s.readSnapshot(ctx, connected.Session)
	close(slow.release)
	<-done
	defer s.Abort()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved.Subs) != 1 || saved.Subs[0] != (snapshotSub{Channel: "c:x", Epoch: "e", Offset: 5}) {
		t.Fatalf("saved while the restored subscription started: %+v, want c:x at 5@e", saved.Subs)
	}
}

func TestTakeoverWhileRestoringKeepsEveryChannel(t *testing.T) {
	// A session resumed from a record with c:x and c:y is taken over
	// again (closed with 4016) while its restore still reads c:x's
	// history, before it reached c:y: an HTTP session whose requests hop
	// between nodes during connection resets. Both the state saved at
	// connect and the state saved at the close must keep both channels
	// at their positions; before, c:y was left out and the client never
	// got c:y again.
	env := writersEnv(t, flow.NewWriters(2))
	want := []snapshotSub{{Channel: "c:x", Epoch: "e", Offset: 5}, {Channel: "c:y", Epoch: "f", Offset: 7}}
	connected := closedWithSubs(t, env, want)
	ctx := context.Background()
	s, slow, done := resumeHeldInHistory(t, env, connected)
	check := func(what string, wantLive bool) {
		t.Helper()
		saved, err := s.readSnapshot(ctx, connected.Session)
		if err != nil {
			t.Fatal(err)
		}
		if saved.Live != wantLive || len(saved.Subs) != len(want) {
			t.Fatalf("%s: live %v, subs %+v; want live %v, subs %+v", what, saved.Live, saved.Subs, wantLive, want)
		}
		for i := range want {
			if saved.Subs[i] != want[i] {
				t.Fatalf("%s: subs %+v, want %+v", what, saved.Subs, want)
			}
		}
	}
	check("saved at connect, restore under way", true)
	// Taken over: what a transport does on Close, then its Closed.
	s.Close(protocol.CloseSessionTakenOver, "session taken over by a resumed connection")
	s.Closed(protocol.CloseSessionTakenOver, "")
	close(slow.release)
	<-done
	check("saved at the close during restore", false)
}

func TestLiveSaveAfterCloseDoesNotOverwriteTheClosedState(t *testing.T) {
	// A live save (the sweep's, or one after a subscription changed)
	// that started before the connection closed ends after Closed saved
	// the final state: it must not write the record back as live with
	// no subscriptions (Closed took them), which would make the next
	// resume wait for a takeover nobody answers and then restore
	// nothing.
	env := writersEnv(t, flow.NewWriters(2))
	s, _, connected := connectFirst(t, env, &auth.Claims{Subject: "u"})
	s.mu.Lock()
	s.addSubLocked(&subscription{ch: "c:x", epoch: "e", written: 3, acked: 3})
	s.mu.Unlock()
	s.Closed(1000, "")
	s.saveSnapshot(context.Background(), true, nil)
	saved, err := s.readSnapshot(context.Background(), connected.Session)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Live || len(saved.Subs) != 1 || saved.Subs[0].Channel != "c:x" {
		t.Fatalf("record after a late live save: live %v, subs %+v; want closed with c:x", saved.Live, saved.Subs)
	}
}
