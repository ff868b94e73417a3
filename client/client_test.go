package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

func TestPublishSubscribeRoundTrip(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack, protocol.Protobuf} {
		t.Run(codec.Name(), func(t *testing.T) {
			ch := "chat:rt-" + codec.Name()
			ctx := t.Context()
			sub := dial(t, n, "alice", func(c *client.Config) { c.Codec = codec })
			pub := dial(t, n, "bob", func(c *client.Config) { c.Codec = codec })
			s, err := sub.Subscribe(ctx, ch, client.WithPresence(nil))
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i <= 5; i++ {
				res, err := pub.Publish(ctx, ch, map[string]any{"n": i, "s": "x"}, client.WithPriority(protocol.PriorityCritical))
				if err != nil {
					t.Fatal(err)
				}
				if res.Offset != uint64(i) || res.Duplicate || res.Epoch == "" {
					t.Fatalf("publish %d: %+v", i, res)
				}
			}
			for i := 1; i <= 5; i++ {
				m := recv(t, s)
				var v struct {
					N int    `json:"n"`
					S string `json:"s"`
				}
				if err := m.Decode(&v); err != nil {
					t.Fatal(err)
				}
				if m.Offset != uint64(i) || v.N != i || v.S != "x" || m.From != "bob" || m.Priority != "critical" || m.Channel != ch {
					t.Fatalf("message %d: %+v (%s)", i, m, m.Data)
				}
			}
			if p := s.Position(); p.Offset != 5 || p.Epoch == "" {
				t.Fatalf("position %+v", p)
			}
			h, err := pub.History(ctx, ch, &client.Position{Offset: 2, Epoch: s.Position().Epoch}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Messages) != 2 || h.Messages[0].Offset != 3 || h.Offset != 5 || string(h.Messages[1].Data) != `{"n":4,"s":"x"}` {
				t.Fatalf("history %+v", h)
			}
			p, err := pub.Presence(ctx, ch)
			if err != nil {
				t.Fatal(err)
			}
			if p.Count != 1 || p.Clients[0].User != "alice" {
				t.Fatalf("presence %+v", p)
			}
			if err := pub.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestURLForms(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	host := strings.TrimPrefix(n.url, "http://")
	for _, u := range []string{n.url, n.url + "/", "ws://" + host, "ws://" + host + "/v1/ws", "http://" + host + "/v1/ws/"} {
		t.Run(u, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, u, client.Config{Token: mint(t, "u", time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, bad := range []string{"ftp://x", "http://", "ws://h/?token=abc", "://"} {
		if _, err := client.New(bad, client.Config{}); !errors.Is(err, client.ErrInvalidConfig) {
			t.Errorf("New(%q): %v, want ErrInvalidConfig", bad, err)
		}
	}
}

func TestURLHelpers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, ws, base string }{
		{"http://h:8080", "ws://h:8080/v1/ws", "http://h:8080"},
		{"https://h/ferry/", "wss://h/ferry/v1/ws", "https://h/ferry"},
		{"ws://h:1/v1/ws", "ws://h:1/v1/ws", "http://h:1"},
		{"wss://h/v1/ws/", "wss://h/v1/ws", "https://h"},
	} {
		ws, err := client.WebSocketURL(tc.in)
		if err != nil || ws != tc.ws {
			t.Errorf("WebSocketURL(%q) = %q, %v; want %q", tc.in, ws, err, tc.ws)
		}
		base, err := client.HTTPBaseURL(tc.in)
		if err != nil || base != tc.base {
			t.Errorf("HTTPBaseURL(%q) = %q, %v; want %q", tc.in, base, err, tc.base)
		}
	}
}

func TestHandlerAndUnsubscribe(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	c := dial(t, n, "carol", nil)
	ctx := t.Context()
	var mu sync.Mutex
	var got []uint64
	s, err := c.Subscribe(ctx, "chat:h", client.WithHandler(func(m client.Message) {
		mu.Lock()
		got = append(got, m.Offset)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages() != nil {
		t.Fatal("handler subscription has a Messages channel")
	}
	if _, err := c.Subscribe(ctx, "chat:h"); !errors.Is(err, client.ErrAlreadySubscribed) {
		t.Fatalf("second subscribe: %v", err)
	}
	for i := 0; i < 3; i++ {
		publishAPI(t, n, "chat:h", i)
	}
	eventually(t, "3 messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 3 })
	if err := s.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if s.Err() != nil {
		t.Fatalf("Err after Unsubscribe: %v", s.Err())
	}
	publishAPI(t, n, "chat:h", 3)
	// Subscribing again starts at the channel's current position.
	s2, err := c.Subscribe(ctx, "chat:h")
	if err != nil {
		t.Fatal(err)
	}
	if p := s2.Position(); p.Offset != 4 {
		t.Fatalf("new subscription at %+v, want offset 4", p)
	}
	publishAPI(t, n, "chat:h", 4)
	if m := recv(t, s2); m.Offset != 5 {
		t.Fatalf("got offset %d, want 5", m.Offset)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("handler got %v", got)
	}
}

func TestSubscribeWithSinceReplays(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	for i := 1; i <= 5; i++ {
		publishAPI(t, n, "chat:since", i)
	}
	epoch := historyAPI(t, n, "chat:since").Epoch
	c := dial(t, n, "dave", nil)
	s, err := c.Subscribe(t.Context(), "chat:since", client.WithSince(client.Position{Offset: 2, Epoch: epoch}))
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(3); want <= 5; want++ {
		if m := recv(t, s); m.Offset != want {
			t.Fatalf("offset %d, want %d", m.Offset, want)
		}
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	c := dial(t, n, "erin", nil)
	ctx := t.Context()
	var se *client.ServerError
	if _, err := c.Subscribe(ctx, "private:x"); !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("subscribe private: %v", err)
	}
	if _, err := c.Subscribe(ctx, "nope:x"); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("subscribe unknown namespace: %v", err)
	}
	if _, err := c.Publish(ctx, "news:x", 1); !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("publish forbidden: %v", err)
	}
	if _, err := c.History(ctx, "nohist:x", nil, 0); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("history without history: %v", err)
	}
	if _, err := c.Publish(ctx, "bad channel", 1); err == nil {
		t.Fatal("publish to an invalid channel name succeeded")
	}
	big := strings.Repeat("x", 70<<10)
	if _, err := c.Publish(ctx, "chat:big", big); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("publish too large: %v", err)
	}
	if _, err := c.Publish(ctx, "chat:x", json.RawMessage(`{"broken"`)); err == nil {
		t.Fatal("invalid raw JSON accepted")
	}
	// The connection survived all of it.
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Connects != 1 {
		t.Fatalf("reconnected: %+v", st)
	}
	// A subscription refused does not stay registered.
	if _, err := c.Subscribe(ctx, "chat:after"); err != nil {
		t.Fatal(err)
	}
}

func TestWindowAndBatches(t *testing.T) {
	t.Parallel()
	n := startNode(t, func(c *server.Config) { c.Batch.Delay = 5 * time.Millisecond })
	for _, tc := range []struct {
		name   string
		codec  protocol.Codec
		window uint32
	}{
		{"json window 4", protocol.JSON, 4},
		{"msgpack window 1", protocol.Msgpack, 1},
		{"protobuf window 2", protocol.Protobuf, 2},
		{"json no window", protocol.JSON, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := "chat:w" + strings.ReplaceAll(tc.name, " ", "-")
			c := dial(t, n, "win", func(c *client.Config) { c.Codec, c.Window = tc.codec, tc.window })
			s, err := c.Subscribe(t.Context(), ch, client.WithBuffer(0))
			if err != nil {
				t.Fatal(err)
			}
			const total = 300
			go func() {
				for i := 1; i <= total; i++ {
					publishAPI(t, n, ch, i)
				}
			}()
			for want := uint64(1); want <= total; want++ {
				if m := recv(t, s); m.Offset != want {
					t.Fatalf("offset %d, want %d", m.Offset, want)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []client.Config{
		{Window: 10, DisableAutoAck: true},
		{Window: protocol.MaxWindow + 1},
		{Backoff: client.Backoff{Initial: time.Minute, Max: time.Second}},
		{Backoff: client.Backoff{Jitter: 2}},
		{Backoff: client.Backoff{Multiplier: 0.5}},
		{AckEvery: -1},
	} {
		if _, err := client.New("http://localhost:1", cfg); !errors.Is(err, client.ErrInvalidConfig) {
			t.Errorf("New with %+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

// TestGapReported: a channel without history cannot replay what was
// published while the client was away; the subscription reports the gap
// (missed count, epoch) and goes on, whether the session was resumed or the
// client had to subscribe again.
func TestGapReported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		ttl     time.Duration // the node's session TTL
		resumed int
	}{
		{"resumed session", 0, 1},
		{"session expired", time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := startNode(t, func(c *server.Config) { c.Session.TTL = tc.ttl })
			clock := newFakeClock()
			gaps := make(chan client.Gap, 4)
			c := dial(t, n, "gappy", func(c *client.Config) {
				c.Clock, c.DisableAutoAck = clock, true
				c.OnGap = func(g client.Gap) { gaps <- g }
			})
			ctx := t.Context()
			s, err := c.Subscribe(ctx, "nohist:g")
			if err != nil {
				t.Fatal(err)
			}
			publishAPI(t, n, "nohist:g", "m1")
			epoch := recv(t, s).Epoch
			disconnectUser(t, n, "gappy", protocol.CloseHeartbeat)
			waitGone(t, n)
			for i := 2; i <= 4; i++ {
				publishAPI(t, n, "nohist:g", fmt.Sprint("m", i))
			}
			eventually(t, "reconnected", func() bool {
				clock.Advance(time.Minute) // the backoff delay passes
				return c.Stats().Connects == 2
			})
			select {
			case g := <-gaps:
				want := client.Gap{Channel: "nohist:g", Missed: 3, Epoch: epoch, PrevEpoch: epoch, After: client.Position{Offset: 1, Epoch: epoch}}
				if g != want {
					t.Fatalf("gap %+v, want %+v", g, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no gap reported")
			}
			publishAPI(t, n, "nohist:g", "m5")
			if m := recv(t, s); m.Offset != 5 || string(m.Data) != `"m5"` {
				t.Fatalf("after the gap: %+v", m)
			}
			if st := c.Stats(); st.Resumed != tc.resumed || st.Gaps != 1 {
				t.Fatalf("stats %+v, want %d resumed and 1 gap", st, tc.resumed)
			}
		})
	}
}

// TestResumeReconciles: changes made while disconnected survive a resumed
// session: a channel unsubscribed meanwhile is dropped on the server, one
// subscribed meanwhile is added, and a restored one replays what it missed.
func TestResumeReconciles(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	clock := newFakeClock()
	c := dial(t, n, "fickle", func(c *client.Config) { c.Clock, c.DisableAutoAck = clock, true })
	ctx := t.Context()
	a, err := c.Subscribe(ctx, "chat:ra")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Subscribe(ctx, "chat:rb")
	if err != nil {
		t.Fatal(err)
	}
	disconnectUser(t, n, "fickle", protocol.CloseHeartbeat)
	waitGone(t, n)
	if err := a.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	subC := make(chan *client.Subscription, 1)
	go func() {
		s, err := c.Subscribe(ctx, "chat:rc")
		if err != nil {
			t.Error(err)
		}
		subC <- s
	}()
	publishAPI(t, n, "chat:rb", "while away")
	var s *client.Subscription
	eventually(t, "chat:rc subscribed", func() bool {
		clock.Advance(time.Minute) // the backoff delay passes
		select {
		case s = <-subC:
			return true
		default:
			return false
		}
	})
	if s == nil {
		t.FailNow()
	}
	if st := c.Stats(); st.Resumed != 1 {
		t.Fatalf("stats %+v: want a resumed session", st)
	}
	if m := recv(t, b); m.Offset != 1 || string(m.Data) != `"while away"` {
		t.Fatalf("restored channel: %+v", m)
	}
	publishAPI(t, n, "chat:rc", "new")
	if m := recv(t, s); string(m.Data) != `"new"` {
		t.Fatalf("added channel: %+v", m)
	}
	eventually(t, "chat:ra dropped on the server", func() bool {
		p, err := c.Presence(ctx, "chat:ra")
		return err == nil && p.Count == 0
	})
	if p, err := c.Presence(ctx, "chat:rb"); err != nil || p.Count != 1 {
		t.Fatalf("chat:rb presence %+v %v", p, err)
	}
}
