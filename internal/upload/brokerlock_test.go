package upload

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/broker/redis"
	"github.com/ferry-io/ferry/internal/testutil/randfile"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/protocol"
)

// nopHandler is a broker.Handler for brokers used only for their locks.
type nopHandler struct{}

func (nopHandler) HandlePublication(*broker.Publication) {}
func (nopHandler) HandleControl(broker.Control)          {}

// redisNode starts a Redis broker for node id on srv, closed when t ends.
func redisNode(t testing.TB, srv *redistest.Server, id string) *redis.Broker {
	t.Helper()
	b, err := redis.New(t.Context(), redis.Config{URL: srv.URL(), NodeID: id})
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	if err := b.Start(t.Context(), nopHandler{}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// waitUntil polls cond until it holds, failing after a generous bound (a
// safety net against a hang, not a timing assertion).
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// takeLock takes upload id's lock from l, waiting up to a generous bound.
func takeLock(l handler.Locker, id string, release func()) (handler.Lock, error) {
	k, err := l.NewLock(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return k, k.Lock(ctx, release)
}

// lockOrFail is takeLock failing the test (on the test's goroutine).
func lockOrFail(t testing.TB, l handler.Locker, id string, release func()) handler.Lock {
	t.Helper()
	k, err := takeLock(l, id, release)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	return k
}

// TestBrokerLockerMutualExclusion: lockers of two nodes on one Redis take
// one upload's lock in turns; never two holders at once.
func TestBrokerLockerMutualExclusion(t *testing.T) {
	srv := redistest.Start(t)
	cfg := BrokerLockerConfig{TTL: 5 * time.Second, Poll: 5 * time.Millisecond}
	lockers := []*BrokerLocker{
		NewBrokerLocker(redisNode(t, srv, "a"), cfg),
		NewBrokerLocker(redisNode(t, srv, "b"), cfg),
	}
	var inside, entries atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		l := lockers[i%2]
		wg.Go(func() {
			for range 5 {
				k, err := takeLock(l, "upload1", func() {})
				if err != nil {
					t.Errorf("Lock: %v", err)
					return
				}
				if n := inside.Add(1); n != 1 {
					t.Errorf("%d holders of one lock at once", n)
				}
				entries.Add(1)
				time.Sleep(time.Millisecond) // hold it for a moment: an overlap would show
				inside.Add(-1)
				if err := k.Unlock(); err != nil {
					t.Errorf("Unlock: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got := entries.Load(); got != 40 {
		t.Fatalf("%d entries, want 40", got)
	}
}

// TestBrokerLockerTwoStores: two stores on one directory, each with the
// locker of its own node on one Redis, get the same chunk at once: exactly
// one writes it, the others are told the new offset; the file is intact.
func TestBrokerLockerTwoStores(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	var stores []*Store
	for _, id := range []string{"a", "b"} {
		s, _ := newTestStore(t, func(c *Config) {
			c.Dir = dir
			c.NoSync = true
			c.Locker = NewBrokerLocker(redisNode(t, srv, id), BrokerLockerConfig{Poll: 5 * time.Millisecond})
		})
		stores = append(stores, s)
	}
	ctx := context.Background()
	data, sum := randfile.New(t, 4*1000)
	id, _, err := stores[0].Begin(ctx, "u1", Begin{Name: "f.bin", Size: int64(len(data)), SHA256: sum})
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	for off := 0; off < len(data); off += 1000 {
		chunk := data[off : off+1000]
		var wg sync.WaitGroup
		var wrote, refused atomic.Int32
		for i := range 6 {
			wg.Go(func() {
				_, err := stores[i%2].Chunk(ctx, "u1", id, int64(off), chunk)
				var pe *protocol.Error
				switch {
				case err == nil:
					wrote.Add(1)
				case errors.As(err, &pe) && pe.Code == protocol.CodeConflict:
					refused.Add(1)
				default:
					t.Errorf("Chunk at %d: %v", off, err)
				}
			})
		}
		wg.Wait()
		if wrote.Load() != 1 || refused.Load() != 5 {
			t.Fatalf("chunk at %d: %d writes and %d refusals, want 1 and 5", off, wrote.Load(), refused.Load())
		}
	}
	if _, err := stores[1].Commit(ctx, "u1", id); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, id))
	if err != nil || string(got) != string(data) {
		t.Fatalf("stored bytes differ (%d of %d bytes; %v)", len(got), len(data), err)
	}
}

// TestBrokerLockerHolderDies: a node that loses the broker (as when it
// crashes) stops refreshing; its lease lapses after the TTL and another
// node takes the lock. The holder is asked to release once its lease may
// be lost.
func TestBrokerLockerHolderDies(t *testing.T) {
	srv := redistest.Start(t)
	cfg := BrokerLockerConfig{TTL: 600 * time.Millisecond, Poll: 20 * time.Millisecond}
	dying := redisNode(t, srv, "a")
	la, lb := NewBrokerLocker(dying, cfg), NewBrokerLocker(redisNode(t, srv, "b"), cfg)
	var asked atomic.Bool
	held := lockOrFail(t, la, "upload1", func() { asked.Store(true) })
	if err := dying.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	next := lockOrFail(t, lb, "upload1", func() {})
	waitUntil(t, "the dead holder to be asked to release", asked.Load)
	if err := held.Unlock(); err == nil {
		t.Fatal("Unlock of a lapsed lease on a closed broker = nil")
	}
	if err := next.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}

// TestBrokerLockerReleaseRequest: a request waiting for a held lock asks
// the holder (on another node) to release it, through the broker's KV; the
// holder does, and the waiter gets the lock long before the lease lapses.
func TestBrokerLockerReleaseRequest(t *testing.T) {
	b := memory.New(memory.Config{NodeID: "a"})
	if err := b.Start(context.Background(), nopHandler{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	l := NewBrokerLocker(b, BrokerLockerConfig{TTL: time.Hour, Poll: 10 * time.Millisecond})
	released := make(chan struct{})
	var once sync.Once
	held := lockOrFail(t, l, "upload1", func() { once.Do(func() { close(released) }) })
	type result struct {
		k   handler.Lock
		err error
	}
	got := make(chan result, 1)
	go func() {
		k, err := takeLock(l, "upload1", func() {})
		got <- result{k, err}
	}()
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("the holder was never asked to release")
	}
	if err := held.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("Lock of the released lock: %v", r.err)
	}
	if err := r.k.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	// A lock that times out waiting says so as tusd expects.
	held = lockOrFail(t, l, "upload2", func() {})
	k2, _ := l.NewLock("upload2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := k2.Lock(ctx, func() {}); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("Lock of a held lock until the deadline: %v, want ErrLockTimeout", err)
	}
	if err := held.Unlock(); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
}
