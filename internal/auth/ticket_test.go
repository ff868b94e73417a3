package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errKVNotFound = errors.New("kv: not found")

// mapKV is a small in-memory KV with expiry, as a broker provides it.
type mapKV struct {
	mu        sync.Mutex
	clock     func() time.Time
	noExpiry  bool // behave like a KV that expires lazily (never, here)
	m         map[string]mapEntry
	takes     atomic.Int64
	lastTTL   time.Duration
	failTakes error
}

type mapEntry struct {
	val []byte
	exp time.Time
}

func newMapKV(clock func() time.Time) *mapKV {
	return &mapKV{clock: clock, m: map[string]mapEntry{}}
}

func (k *mapKV) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastTTL = ttl
	k.m[key] = mapEntry{val: append([]byte(nil), val...), exp: k.clock().Add(ttl)}
	return nil
}

func (k *mapKV) Take(_ context.Context, key string) ([]byte, error) {
	k.takes.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failTakes != nil {
		return nil, k.failTakes
	}
	e, ok := k.m[key]
	delete(k.m, key)
	if !ok || (!k.noExpiry && !k.clock().Before(e.exp)) {
		return nil, errKVNotFound
	}
	return e.val, nil
}

var _ KV = (*mapKV)(nil)

func TestTicketSingleUse(t *testing.T) {
	clock := newFakeClock(t0)
	kv := newMapKV(clock.Now)
	s := NewTicketStore(kv, TicketConfig{NotFound: errKVNotFound, Clock: clock.Now})
	ctx := context.Background()

	ticket, err := s.Issue(ctx, "the.jwt.token")
	if err != nil {
		t.Fatal(err)
	}
	if len(ticket) != ticketIDLen || !validTicket(ticket) {
		t.Fatalf("ticket %q has the wrong shape", ticket)
	}
	if kv.lastTTL != 30*time.Second {
		t.Errorf("stored with ttl %v, want the default 30s", kv.lastTTL)
	}
	got, err := s.Redeem(ctx, ticket)
	if err != nil || got != "the.jwt.token" {
		t.Fatalf("Redeem = %q, %v", got, err)
	}
	if _, err := s.Redeem(ctx, ticket); !errors.Is(err, ErrTicketInvalid) {
		t.Fatalf("second Redeem: %v, want ErrTicketInvalid", err)
	}
}

func TestTicketInvalid(t *testing.T) {
	clock := newFakeClock(t0)
	kv := newMapKV(clock.Now)
	s := NewTicketStore(kv, TicketConfig{NotFound: errKVNotFound, Clock: clock.Now})
	ctx := context.Background()

	// Malformed tickets never reach the KV.
	for _, bad := range []string{"", "short", "AAAAAAAAAAAAAAAAAAAAA/", "AAAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAA=="} {
		if _, err := s.Redeem(ctx, bad); !errors.Is(err, ErrTicketInvalid) {
			t.Errorf("Redeem(%q) = %v", bad, err)
		}
	}
	if n := kv.takes.Load(); n != 0 {
		t.Errorf("malformed tickets caused %d KV calls", n)
	}
	if _, err := s.Redeem(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, ErrTicketInvalid) {
		t.Errorf("unknown ticket: %v", err)
	}
	if _, err := s.Issue(ctx, ""); err == nil {
		t.Error("Issue of an empty token succeeded")
	}

	// A KV failure is not the client's fault.
	kv.failTakes = errors.New("connection refused")
	if _, err := s.Redeem(ctx, "AAAAAAAAAAAAAAAAAAAAAA"); err == nil || errors.Is(err, ErrTicketInvalid) {
		t.Errorf("KV failure reported as %v", err)
	}
}

func TestTicketExpiry(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		clock := newFakeClock(t0)
		kv := newMapKV(clock.Now)
		kv.noExpiry = lazy
		s := NewTicketStore(kv, TicketConfig{TTL: 10 * time.Second, NotFound: errKVNotFound, Clock: clock.Now})
		ctx := context.Background()
		early, _ := s.Issue(ctx, "tok")
		late, _ := s.Issue(ctx, "tok")
		clock.Advance(9 * time.Second)
		if _, err := s.Redeem(ctx, early); err != nil {
			t.Fatalf("lazy KV %v: redeem within ttl: %v", lazy, err)
		}
		clock.Advance(time.Second)
		if _, err := s.Redeem(ctx, late); !errors.Is(err, ErrTicketInvalid) {
			t.Fatalf("lazy KV %v: redeem at ttl: %v, want ErrTicketInvalid", lazy, err)
		}
	}
}

func TestTicketConcurrentRedeem(t *testing.T) {
	kv := newMapKV(time.Now)
	s := NewTicketStore(kv, TicketConfig{NotFound: errKVNotFound})
	ctx := context.Background()
	for range 20 {
		ticket, err := s.Issue(ctx, "tok")
		if err != nil {
			t.Fatal(err)
		}
		var wins, invalid atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				<-start
				_, err := s.Redeem(ctx, ticket)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrTicketInvalid):
					invalid.Add(1)
				default:
					t.Errorf("Redeem: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || invalid.Load() != 15 {
			t.Fatalf("%d redeems won and %d were refused, want 1 and 15", wins.Load(), invalid.Load())
		}
	}
}

func TestTicketsAreDistinct(t *testing.T) {
	s := NewTicketStore(newMapKV(time.Now), TicketConfig{NotFound: errKVNotFound})
	seen := map[string]bool{}
	for range 1000 {
		tk, err := s.Issue(context.Background(), "tok")
		if err != nil {
			t.Fatal(err)
		}
		if seen[tk] {
			t.Fatalf("ticket %q issued twice", tk)
		}
		seen[tk] = true
	}
}
