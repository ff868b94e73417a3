package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// tryLock is TryLock failing the test on an error.
func tryLock(t testing.TB, l broker.Locker, key, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := l.TryLock(context.Background(), key, owner, ttl)
	if err != nil {
		t.Fatalf("TryLock(%q, %q): %v", key, owner, err)
	}
	return ok
}

// refresh is Refresh failing the test on an error.
func refresh(t testing.TB, l broker.Locker, key, owner string, ttl time.Duration) bool {
	t.Helper()
	ok, err := l.Refresh(context.Background(), key, owner, ttl)
	if err != nil {
		t.Fatalf("Refresh(%q, %q): %v", key, owner, err)
	}
	return ok
}

func testLock(t *testing.T, s *suite) {
	l := capability[broker.Locker](t, s.node(t, s.name("node")))
	ctx := context.Background()
	key := s.name("lock")
	if !tryLock(t, l, key, "a", time.Minute) {
		t.Fatal("TryLock of a free key = false")
	}
	if tryLock(t, l, key, "b", time.Minute) {
		t.Fatal("TryLock of a held key by another owner = true")
	}
	if !tryLock(t, l, key, "a", time.Minute) {
		t.Fatal("TryLock by the holder again = false, want its lease renewed")
	}
	if refresh(t, l, key, "b", time.Minute) {
		t.Fatal("Refresh by another owner = true")
	}
	if err := l.Unlock(ctx, key, "b"); !errors.Is(err, broker.ErrNotHeld) {
		t.Fatalf("Unlock by another owner: %v, want ErrNotHeld", err)
	}
	if tryLock(t, l, key, "b", time.Minute) {
		t.Fatal("another owner's Unlock freed the key")
	}
	if !refresh(t, l, key, "a", time.Minute) {
		t.Fatal("Refresh by the holder = false")
	}
	if err := l.Unlock(ctx, key, "a"); err != nil {
		t.Fatalf("Unlock by the holder: %v", err)
	}
	if refresh(t, l, key, "a", time.Minute) {
		t.Fatal("Refresh after Unlock = true")
	}
	if err := l.Unlock(ctx, key, "a"); !errors.Is(err, broker.ErrNotHeld) {
		t.Fatalf("second Unlock: %v, want ErrNotHeld", err)
	}
	if !tryLock(t, l, key, "b", time.Minute) {
		t.Fatal("TryLock after Unlock = false")
	}
	if !tryLock(t, l, s.name("lock"), "a", time.Minute) {
		t.Fatal("TryLock of another key = false")
	}
	// What no lease can mean is refused.
	for _, c := range []struct {
		owner string
		ttl   time.Duration
	}{{"", time.Minute}, {"a", 0}, {"a", -time.Second}} {
		if _, err := l.TryLock(ctx, s.name("lock"), c.owner, c.ttl); err == nil {
			t.Errorf("TryLock(owner %q, ttl %v) = nil error", c.owner, c.ttl)
		}
	}
}

func testLockRace(t *testing.T, s *suite) {
	// Contenders on two nodes when the engine is multi-node, else on one.
	lockers := []broker.Locker{capability[broker.Locker](t, s.node(t, s.name("node")))}
	if s.f.MultiNode {
		lockers = append(lockers, capability[broker.Locker](t, s.node(t, s.name("node"))))
	}
	const contenders = 16
	for round := range 5 {
		key := s.name("lock")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for i := range contenders {
			owner := fmt.Sprintf("owner-%d", i)
			wg.Go(func() {
				ok, err := lockers[i%len(lockers)].TryLock(context.Background(), key, owner, time.Minute)
				if err != nil {
					t.Errorf("TryLock: %v", err)
					return
				}
				if ok {
					mu.Lock()
					winners = append(winners, owner)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v of %d TryLocks, want exactly one", round, winners, contenders)
		}
		// Everyone sees the winner, on every node.
		for _, l := range lockers {
			if tryLock(t, l, key, "late", time.Minute) {
				t.Fatalf("round %d: a late TryLock won a held key", round)
			}
			if !refresh(t, l, key, winners[0], time.Minute) {
				t.Fatalf("round %d: the winner's Refresh = false", round)
			}
		}
	}
}

func testLockExpiry(t *testing.T, s *suite) {
	l := capability[broker.Locker](t, s.node(t, s.name("node")))
	key := s.name("lock")
	if !tryLock(t, l, key, "crashed", 300*time.Millisecond) {
		t.Fatal("TryLock of a free key = false")
	}
	// The holder never refreshes (it crashed): the key frees itself.
	waitFor(t, "lease to lapse", func() bool { return tryLock(t, l, key, "next", time.Minute) })
	if refresh(t, l, key, "crashed", time.Minute) {
		t.Fatal("Refresh by the lapsed holder = true")
	}
	if err := l.Unlock(context.Background(), key, "crashed"); !errors.Is(err, broker.ErrNotHeld) {
		t.Fatalf("Unlock by the lapsed holder: %v, want ErrNotHeld", err)
	}
	// Refresh sets the lease to ttl from now (here shorter than the
	// first, so that the test waits for a lapse, never for a non-event).
	kept := s.name("lock")
	if !tryLock(t, l, kept, "a", time.Hour) || !refresh(t, l, kept, "a", 300*time.Millisecond) {
		t.Fatal("TryLock and Refresh of a free key failed")
	}
	waitFor(t, "refreshed lease to lapse", func() bool { return tryLock(t, l, kept, "b", time.Minute) })
}
