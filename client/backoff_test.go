package client_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
)

func TestBackoffCurve(t *testing.T) {
	t.Parallel()
	def := client.Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}
	cases := []struct {
		name string
		b    client.Backoff
		r    float64
		want []time.Duration
	}{
		{"middle draw is the curve", def, 0.5, []time.Duration{1e9, 2e9, 4e9, 8e9, 16e9, 30e9, 30e9, 30e9}},
		{"lowest draw is -20%", def, 0, []time.Duration{800e6, 1600e6, 3200e6, 6400e6, 12800e6, 24e9, 24e9}},
		{"no jitter", client.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 3}, 0.9,
			[]time.Duration{100e6, 300e6, 900e6, 1e9, 1e9}},
	}
	for _, tc := range cases {
		for n, want := range tc.want {
			if got := tc.b.Delay(n, constRand(tc.r)); got != want {
				t.Errorf("%s: Delay(%d) = %v, want %v", tc.name, n, got, want)
			}
		}
	}
	// Any draw stays within +-Jitter of the capped curve.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		n := rng.IntN(12)
		base := min(time.Duration(float64(time.Second)*float64(uint(1)<<n)), 30*time.Second)
		d := def.Delay(n, rng)
		if d < time.Duration(float64(base)*0.8) || d > time.Duration(float64(base)*1.2) {
			t.Fatalf("Delay(%d) = %v outside [0.8, 1.2] x %v", n, d, base)
		}
	}
	// A huge attempt count neither overflows nor passes the cap.
	if d := def.Delay(1<<30, constRand(0.5)); d != 30*time.Second {
		t.Fatalf("Delay(2^30) = %v", d)
	}
}

// TestBackoffSchedule runs a client against a port that refuses
// connections, on a fake clock: each delay it waits follows the curve, and
// it gives up after MaxAttempts.
func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	clock := newFakeClock()
	b := client.Backoff{Initial: 200 * time.Millisecond, Max: 2 * time.Second, Multiplier: 3, Jitter: 0.1, MaxAttempts: 6}
	log := &stateLog{}
	c, err := client.New("http://"+addr, client.Config{
		Backoff: b, Clock: clock, Rand: constRand(1 - 1e-9), DisableAutoAck: true,
		OnState: log.onState, OnError: log.onError,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Connect(context.Background()) }()
	// The delays before attempts 2..6: 200ms, 600ms, 1.8s, 2s, 2s, +10%.
	for i, base := range []time.Duration{200e6, 600e6, 1800e6, 2e9, 2e9} {
		want := time.Duration(float64(base) * (1 + 0.1*(2*(1-1e-9)-1)))
		if d := clock.nextTimer(t); d != want {
			t.Fatalf("delay %d = %v, want %v", i, d, want)
		}
		clock.Advance(want)
	}
	err = <-done
	if !errors.Is(err, client.ErrClosed) || !errors.Is(err, client.ErrGaveUp) {
		t.Fatalf("Connect: %v, want ErrGaveUp", err)
	}
	clock.noTimer(t)
	eventually(t, "closed reported", func() bool { return log.count(client.StateClosed) == 1 })
	if got := log.count(client.StateConnecting); got != 6 {
		t.Fatalf("%d attempts, want 6: %v", got, log)
	}
}
