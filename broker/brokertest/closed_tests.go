package brokertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

func testClosed(t *testing.T, s *suite) {
	n := s.node(t, s.name("node"))
	ctx := context.Background()
	ch := s.name("ch")
	if err := n.b.Ping(ctx); err != nil {
		t.Fatalf("Ping of an open broker: %v", err)
	}
	publish(t, n.b, ch, `{}`, keep)
	if err := n.close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	calls := map[string]func() error{
		"Ping":        func() error { return n.b.Ping(ctx) },
		"Subscribe":   func() error { return n.b.Subscribe(ctx, ch) },
		"Unsubscribe": func() error { return n.b.Unsubscribe(ctx, ch) },
		"Publish": func() error {
			_, err := n.b.Publish(ctx, ch, broker.Publication{Data: []byte(`{}`)}, keep)
			return err
		},
		"History": func() error {
			_, err := n.b.History(ctx, ch, broker.HistoryQuery{})
			return err
		},
		"PublishControl": func() error {
			return n.b.PublishControl(ctx, broker.Control{Kind: broker.ControlDisconnect, User: "u"})
		},
	}
	if p, ok := n.b.(broker.Presence); ok {
		calls["AddPresence"] = func() error { return p.AddPresence(ctx, ch, broker.PresenceInfo{Conn: "c"}, time.Minute) }
		calls["RemovePresence"] = func() error { return p.RemovePresence(ctx, ch, "c") }
		calls["Presence"] = func() error { _, err := p.Presence(ctx, ch); return err }
	}
	if u, ok := n.b.(broker.Users); ok {
		calls["AddUserConn"] = func() error {
			_, err := u.AddUserConn(ctx, "u", broker.ConnRef{Conn: "c"}, time.Minute, 0)
			return err
		}
		calls["RemoveUserConn"] = func() error { return u.RemoveUserConn(ctx, "u", "c") }
	}
	if kv, ok := n.b.(broker.KV); ok {
		calls["Set"] = func() error { return kv.Set(ctx, "k", nil, time.Minute) }
		calls["Get"] = func() error { _, err := kv.Get(ctx, "k"); return err }
		calls["Take"] = func() error { _, err := kv.Take(ctx, "k"); return err }
		calls["Delete"] = func() error { return kv.Delete(ctx, "k") }
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, broker.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
