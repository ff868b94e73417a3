package session

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/protocol"
)

func TestSubscriptionsSmallAndIndexed(t *testing.T) {
	for _, n := range []int{1, 2, subIndexAt, subIndexAt + 1, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := &Session{}
			subs := make([]*subscription, n)
			for i := range subs {
				subs[i] = &subscription{ch: fmt.Sprintf("ns:ch%d", i)}
				s.addSubLocked(subs[i])
			}
			if indexed := s.extra != nil && s.extra.subIdx != nil; indexed != (n > subIndexAt) {
				t.Fatalf("%d subscriptions: indexed = %v", n, indexed)
			}
			for i, sub := range subs {
				if got := s.subFor(fmt.Sprintf("ns:ch%d", i)); got != sub {
					t.Fatalf("subFor(ch%d) = %p, want %p", i, got, sub)
				}
			}
			if got := s.subFor("ns:other"); got != nil {
				t.Fatalf("subFor of a channel not subscribed = %+v", got)
			}
			// Remove every other one, then the rest.
			for i := 0; i < n; i += 2 {
				if !s.removeSubLocked(subs[i]) {
					t.Fatalf("remove ch%d: not found", i)
				}
			}
			if s.removeSubLocked(subs[0]) {
				t.Fatal("removing a removed subscription reported true")
			}
			for i, sub := range subs {
				want := sub
				if i%2 == 0 {
					want = nil
				}
				if got := s.subFor(sub.ch); got != want {
					t.Fatalf("after removing the even ones: subFor(ch%d) = %p, want %p", i, got, want)
				}
			}
			if len(s.subs) != n/2 {
				t.Fatalf("%d left, want %d", len(s.subs), n/2)
			}
			for i := 1; i < n; i += 2 {
				s.removeSubLocked(subs[i])
			}
			if s.subs != nil || (s.extra != nil && s.extra.subIdx != nil) {
				t.Fatalf("empty set keeps memory: subs %v, extra %+v", s.subs, s.extra)
			}
		})
	}
}

func TestDoneMadeOnDemand(t *testing.T) {
	env, done := idleEnv(t)
	defer done()
	isClosed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	// Asked for before the end: closed by Closed.
	s := New(env, &sinkTransport{}, Handshake{Codec: protocol.JSON})
	d := s.Done()
	if isClosed(d) {
		t.Fatal("Done of an open session is closed")
	}
	s.Closed(1000, "")
	if !isClosed(d) || !isClosed(s.Done()) {
		t.Fatal("Done not closed after Closed")
	}
	// Asked for only after the end: already closed.
	s = New(env, &sinkTransport{}, Handshake{Codec: protocol.JSON})
	s.Closed(1000, "")
	if !isClosed(s.Done()) {
		t.Fatal("Done asked after Closed is not closed")
	}
}

func TestConnectKeepsOnlyWhatItUses(t *testing.T) {
	env, done := idleEnv(t)
	defer done()
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	claims := &auth.Claims{
		Subject:   "alice",
		ExpiresAt: exp,
		IssuedAt:  time.Now(),
		Channels:  &auth.ChannelsClaim{Subscribe: []string{"room:*"}},
	}
	s := New(env, &sinkTransport{}, Handshake{Codec: protocol.JSON, Claims: claims, Token: "tok", ResumeSeq: -1})
	if got := s.Claims(); got != nil {
		t.Fatalf("Claims before connect = %+v", got)
	}
	s.HandleMessage([]byte(`{"type":"connect","id":1}`))
	if !s.Connected() {
		t.Fatal("not connected")
	}
	s.mu.Lock()
	extra := s.extra
	s.mu.Unlock()
	if extra != nil {
		t.Fatalf("an idle connected session keeps its extra: %+v", extra)
	}
	got := s.Claims()
	if got == nil || got.Subject != "alice" || !got.ExpiresAt.Equal(exp) || got.Channels != claims.Channels {
		t.Fatalf("Claims = %+v, want subject, expiry and channels only", got)
	}
	// The channels claim still applies.
	if _, err := s.permit("room:1", false); err != nil {
		t.Fatalf("permit(room:1) = %v", err)
	}
	if _, err := s.permit("other:1", false); err == nil {
		t.Fatal("permit(other:1) allowed a channel the token does not name")
	}
	// A second connect frame is refused.
	s.HandleMessage([]byte(`{"type":"connect","id":2}`))
	if !s.Connected() {
		t.Fatal("second connect frame ended the session")
	}
	s.Closed(1000, "")
}

func TestTokenHash(t *testing.T) {
	legacy := func(tok string) string {
		h := sha256.Sum256([]byte(tok))
		return hex.EncodeToString(h[:])
	}
	tests := []struct {
		name  string
		hash  string
		token string
		want  bool
	}{
		{"compact", hashToken("secret-token"), "secret-token", true},
		{"compact, wrong token", hashToken("secret-token"), "other-token", false},
		{"legacy hex", legacy("secret-token"), "secret-token", true},
		{"legacy hex, wrong token", legacy("secret-token"), "other-token", false},
		{"empty hash", "", "secret-token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tokenMatches(tt.hash, tt.token); got != tt.want {
				t.Fatalf("tokenMatches(%q, %q) = %v, want %v", tt.hash, tt.token, got, tt.want)
			}
		})
	}
	if n := len(hashToken("x")); n != 22 {
		t.Fatalf("hashToken is %d characters, want 22", n)
	}
}

func TestSnapshotEncoding(t *testing.T) {
	full := &snapshot{
		ID: "sess", User: "alice", TokenHash: hashToken("tok"), Node: "node-1", Conn: "conn-1",
		Live: true, Acked: true, Seq: 300,
		Unacked: []snapshotAck{{Seq: 299, Channel: "a", Offset: 7}, {Seq: 300, Channel: "b", Offset: 1 << 40}},
		Subs:    []snapshotSub{{Channel: "a", Epoch: "e1", Offset: 7, Presence: true}, {Channel: "b", Epoch: "", Offset: 1 << 40}},
	}
	tests := []struct {
		name string
		snap *snapshot
	}{
		{"connect", &snapshot{ID: "sess", User: "alice", TokenHash: hashToken("tok"), Node: "node-1", Conn: "conn-1", Live: true}},
		{"full", full},
		{"empty", &snapshot{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeSnapshot(nil, tt.snap)
			got, err := decodeSnapshot(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.snap) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.snap)
			}
			js, err := json.Marshal(tt.snap)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) >= len(js)/2 && tt.name != "empty" {
				t.Errorf("binary form is %d bytes, JSON %d: want under half", len(b), len(js))
			}
			// The JSON form of earlier versions is still read.
			got, err = decodeSnapshot(js)
			if err != nil || !reflect.DeepEqual(got, tt.snap) {
				t.Fatalf("decode JSON = %+v, %v; want %+v", got, err, tt.snap)
			}
			// Every truncation is refused.
			for n := range len(b) {
				if _, err := decodeSnapshot(b[:n]); err == nil {
					t.Fatalf("decode of the first %d of %d bytes succeeded", n, len(b))
				}
			}
			if _, err := decodeSnapshot(append(b, 0)); err == nil {
				t.Fatal("decode with a trailing byte succeeded")
			}
		})
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(encodeSnapshot(nil, &snapshot{ID: "s", User: "u", Live: true, Subs: []snapshotSub{{Channel: "c", Offset: 3}}}))
	f.Add([]byte(`{"id":"s","user":"u","live":true}`))
	f.Add([]byte{snapshotV1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := decodeSnapshot(b)
		if err != nil || (len(b) > 0 && b[0] == '{') {
			return
		}
		again, err := decodeSnapshot(encodeSnapshot(nil, snap))
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, snap) {
			t.Fatalf("round trip changed the snapshot:\n got %+v\nwant %+v", again, snap)
		}
	})
}
