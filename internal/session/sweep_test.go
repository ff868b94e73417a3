package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/protocol"
)

// gatedUsers is a Users broker whose calls, once gate is set, wait until
// want calls are in flight together (or their context ends).
type gatedUsers struct {
	broker.Users
	gate     atomic.Bool
	want     int
	mu       sync.Mutex
	cond     *sync.Cond
	inflight int
	most     int
}

func (u *gatedUsers) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	if !u.gate.Load() {
		return u.Users.AddUserConn(ctx, user, ref, ttl, keep)
	}
	u.mu.Lock()
	u.inflight++
	u.most = max(u.most, u.inflight)
	u.cond.Broadcast()
	stop := context.AfterFunc(ctx, func() { u.mu.Lock(); u.cond.Broadcast(); u.mu.Unlock() })
	for u.inflight < u.want && ctx.Err() == nil && u.most < u.want {
		u.cond.Wait()
	}
	u.inflight--
	u.mu.Unlock()
	stop()
	return u.Users.AddUserConn(ctx, user, ref, ttl, keep)
}

func TestSweepRefreshesRecordsConcurrently(t *testing.T) {
	// With a broker round trip per record, a sweep that refreshed one
	// session after the other would take the number of connections times
	// the latency. Here every refresh waits until four are in flight: done
	// one by one they would all time out.
	env := writersEnv(t, flow.NewWriters(2))
	users := &gatedUsers{Users: env.Users, want: 4}
	users.cond = sync.NewCond(&users.mu)
	env.Users = users
	env.Limits.HeartbeatInterval, env.Limits.HeartbeatTimeout = time.Hour, time.Hour
	for i := range 4 {
		s := New(env, &recTransport{}, Handshake{Codec: protocol.JSON, Token: "t", Claims: &auth.Claims{Subject: fmt.Sprint("u", i)}})
		s.HandleMessage([]byte(`{"type":"connect","id":1}`))
		waitFor(t, "connected", s.Connected)
	}
	users.gate.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	env.Registry.Sweep(ctx, time.Now().Add(3*time.Hour)) // every record is due
	if ctx.Err() != nil || users.most < 4 {
		t.Fatalf("at most %d refreshes in flight together (want 4); sweep context: %v", users.most, ctx.Err())
	}
}
