package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// TestCloseCodes drives the client against a scripted server: the first
// connection ends as the case says, later ones stay open. It checks whether
// the client reconnects, after which delay (on a fake clock: no sleeps),
// with which token, and that it resumes the session.
func TestCloseCodes(t *testing.T) {
	t.Parallel()
	const r = 0.25 // the jitter draw: factor 1 + 0.2*(2r-1) = 0.9
	backoff := client.Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}
	first := backoff.Delay(0, constRand(r)) // 900ms
	upward := func(d time.Duration) time.Duration { return d + time.Duration(float64(d)*0.2*r) }

	type want struct {
		terminal bool
		code     int           // the close code / HTTP status of the error that closed it
		delay    time.Duration // the backoff timer before the reconnect; 0 = at once
		resume   bool          // the reconnect asks to resume
		tokens   []string      // the Authorization headers, in order
		attempts int           // handshakes seen by the server
	}
	cases := []struct {
		name     string
		action   func(n int) tinyAction
		getToken bool
		want     want
	}{
		{"1000 from the server", closeWith(1000, 0), false, want{terminal: true, code: 1000, attempts: 1}},
		{"4001 unauthorized", closeWith(4001, 0), false, want{terminal: true, code: 4001, attempts: 1}},
		{"4003 forbidden", closeWith(4003, 0), false, want{terminal: true, code: 4003, attempts: 1}},
		{"4009 too big", closeWith(4009, 0), false, want{terminal: true, code: 4009, attempts: 1}},
		{"4011 evicted", closeWith(4011, 0), false, want{terminal: true, code: 4011, attempts: 1}},
		{"4014 protocol error", closeWith(4014, 0), false, want{terminal: true, code: 4014, attempts: 1}},
		{"4016 taken over", closeWith(4016, 0), false, want{terminal: true, code: 4016, attempts: 1}},
		{"4015 without GetToken", closeWith(4015, 0), false, want{terminal: true, code: 4015, attempts: 1}},
		{"4008 waits retry_after_ms", closeWith(4008, 1234), false, want{delay: upward(1234 * time.Millisecond), resume: true, attempts: 2}},
		{"4010 slow consumer", closeWith(4010, 0), false, want{delay: first, resume: true, attempts: 2}},
		{"4012 heartbeat", closeWith(4012, 0), false, want{delay: first, resume: true, attempts: 2}},
		{"4013 draining, jitter and retry_after", closeWith(4013, 500), false, want{delay: first, resume: true, attempts: 2}},
		{"4013 retry_after longer than backoff", closeWith(4013, 5000), false, want{delay: upward(5 * time.Second), resume: true, attempts: 2}},
		{"4015 gets a new token", closeWith(4015, 0), true, want{delay: 0, resume: true, attempts: 2, tokens: []string{"Bearer tok1", "Bearer tok2"}}},
		{"1011 server error", closeWith(1011, 0), false, want{delay: first, resume: true, attempts: 2}},
		{"dropped without a close frame", func(n int) tinyAction { return tinyAction{abrupt: n == 1} }, false, want{delay: first, resume: true, attempts: 2}},
		{"HTTP 401 refreshes the token once", refuse(401, "", 1), true, want{delay: 0, attempts: 2, tokens: []string{"Bearer tok1", "Bearer tok2"}}},
		{"HTTP 401 twice closes", refuse(401, "", 2), true, want{terminal: true, code: 401, attempts: 2}},
		{"HTTP 401 without GetToken closes", refuse(401, "", 1), false, want{terminal: true, code: 401, attempts: 1}},
		{"HTTP 403 closes", refuse(403, "", 1), false, want{terminal: true, code: 403, attempts: 1}},
		{"HTTP 429 waits Retry-After", refuse(429, "3", 1), false, want{delay: upward(3 * time.Second), attempts: 2}},
		{"HTTP 503 retries", refuse(503, "", 1), false, want{delay: first, attempts: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newTinyServer(t, tc.action)
			clock := newFakeClock()
			log := &stateLog{}
			var tokens atomic.Int32
			cfg := client.Config{
				Token:          "static",
				Clock:          clock,
				Rand:           constRand(r),
				Backoff:        backoff,
				DisableAutoAck: true,
				OnState:        log.onState,
				OnError:        log.onError,
				Logger:         testLogger(t, "client"),
			}
			if tc.getToken {
				cfg.Token = ""
				cfg.GetToken = func(context.Context) (string, error) {
					return fmt.Sprintf("tok%d", tokens.Add(1)), nil
				}
			}
			c, err := client.New(srv.url(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			connectErr := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				connectErr <- c.Connect(ctx)
			}()

			if tc.want.terminal {
				select {
				case <-c.Done():
				case <-time.After(10 * time.Second):
					t.Fatalf("client not closed; states: %v", log)
				}
				err := c.Err()
				if !errors.Is(err, client.ErrClosed) || codeOf(err) != tc.want.code {
					t.Fatalf("Err() = %v, want code %d", err, tc.want.code)
				}
				if err := <-connectErr; tc.want.code < 1000 && !errors.Is(err, client.ErrClosed) {
					t.Fatalf("Connect: %v", err)
				}
				clock.noTimer(t)
				eventually(t, "error reported", func() bool {
					_, errs := log.snapshot()
					return len(errs) > 0 && codeOf(errs[len(errs)-1]) == tc.want.code
				})
				if c.State() != client.StateClosed {
					t.Fatalf("state %v", c.State())
				}
			} else {
				if tc.want.delay > 0 {
					if d := clock.nextTimer(t); d != tc.want.delay {
						t.Fatalf("reconnect delay %v, want %v", d, tc.want.delay)
					}
					clock.Advance(tc.want.delay)
				}
				if err := <-connectErr; err != nil {
					t.Fatalf("Connect: %v; states %v", err, log)
				}
				eventually(t, "connected again", func() bool { return c.State() == client.StateConnected && srv.count() >= tc.want.attempts })
				clock.noTimer(t)
				// Callbacks run on the client's event goroutine: wait for them.
				eventually(t, "reconnect reported", func() bool {
					states, _ := log.snapshot()
					seenDisc := false
					for _, sc := range states {
						seenDisc = seenDisc || sc.State == client.StateDisconnected
						if seenDisc && sc.State == client.StateConnected {
							return true
						}
					}
					return false
				})
				states, _ := log.snapshot()
				var disc *client.StateChange
				for i := range states {
					if states[i].State == client.StateDisconnected {
						disc = &states[i]
						break
					}
				}
				if disc == nil || disc.RetryIn != tc.want.delay {
					t.Fatalf("no Disconnected state with RetryIn %v: %v", tc.want.delay, log)
				}
				if tc.want.resume {
					res, _ := srv.attempt(1).connect["resume"].(map[string]any)
					if res["session"] != "sess-1" || res["token"] != "rt-1" {
						t.Fatalf("second connect: %v, want resume of sess-1 with rt-1", srv.attempt(1).connect)
					}
				}
			}
			if srv.count() != tc.want.attempts {
				t.Fatalf("%d handshakes, want %d", srv.count(), tc.want.attempts)
			}
			for i, tok := range tc.want.tokens {
				if got := srv.attempt(i).auth; got != tok {
					t.Fatalf("handshake %d: Authorization %q, want %q", i+1, got, tok)
				}
			}
			if a := srv.attempt(0).auth; !tc.getToken && a != "Bearer static" {
				t.Fatalf("Authorization %q", a)
			}
		})
	}
}

func closeWith(code int, retryMS int64) func(int) tinyAction {
	return func(n int) tinyAction {
		if n == 1 {
			return tinyAction{close: code, retryMS: retryMS}
		}
		return tinyAction{}
	}
}

// refuse refuses the first times handshakes with status.
func refuse(status int, retryAfter string, times int) func(int) tinyAction {
	return func(n int) tinyAction {
		if n <= times {
			return tinyAction{status: status, retryAfter: retryAfter}
		}
		return tinyAction{}
	}
}

// codeOf returns the close code or HTTP status an error carries.
func codeOf(err error) int {
	var ce *client.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var he *client.HandshakeError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return -1
}

// TestCloseCodesRealServer checks the codes the real node sends: through
// the API's disconnect call, the per-user connection limit and token
// expiry.
func TestCloseCodesRealServer(t *testing.T) {
	t.Parallel()
	n := startNode(t, func(c *server.Config) { c.MaxConnectionsPerUser = 1 })
	disconnect := func(t *testing.T, user string, code int) { t.Helper(); disconnectUser(t, n, user, code) }
	t.Run("API disconnect 4003 closes", func(t *testing.T) {
		t.Parallel()
		log := &stateLog{}
		c := dial(t, n, "kicked", func(c *client.Config) { c.OnState, c.OnError = log.onState, log.onError })
		disconnect(t, "kicked", protocol.CloseForbidden)
		<-c.Done()
		if codeOf(c.Err()) != 4003 {
			t.Fatalf("Err %v", c.Err())
		}
		if _, err := c.Publish(t.Context(), "chat:x", 1); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("publish after close: %v", err)
		}
	})
	t.Run("API disconnect 4010 reconnects and resumes", func(t *testing.T) {
		t.Parallel()
		c := dial(t, n, "slowpoke", nil)
		s, err := c.Subscribe(t.Context(), "chat:slow")
		if err != nil {
			t.Fatal(err)
		}
		publishAPI(t, n, "chat:slow", 1)
		recv(t, s)
		disconnect(t, "slowpoke", protocol.CloseSlowConsumer)
		publishAPI(t, n, "chat:slow", 2)
		eventually(t, "reconnected", func() bool { return c.Stats().Connects >= 2 && c.State() == client.StateConnected })
		publishAPI(t, n, "chat:slow", 3)
		for want := uint64(2); want <= 3; want++ {
			if m := recv(t, s); m.Offset != want {
				t.Fatalf("offset %d, want %d", m.Offset, want)
			}
		}
		if st := c.Stats(); st.Resumed != 1 {
			t.Fatalf("stats %+v: want one resumed connection", st)
		}
	})
	t.Run("per-user limit evicts with 4011", func(t *testing.T) {
		t.Parallel()
		a := dial(t, n, "twin", nil)
		b := dial(t, n, "twin", nil)
		<-a.Done()
		if codeOf(a.Err()) != 4011 {
			t.Fatalf("first: %v", a.Err())
		}
		if err := b.Ping(t.Context()); err != nil {
			t.Fatalf("second: %v", err)
		}
	})
	t.Run("expired static token closes with 4015", func(t *testing.T) {
		t.Parallel()
		c := dial(t, n, "brief", func(c *client.Config) { c.Token = mint(t, "brief", 2*time.Second) })
		select {
		case <-c.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("not closed after the token expired")
		}
		if codeOf(c.Err()) != 4015 {
			t.Fatalf("Err %v", c.Err())
		}
	})
}

// TestTokenRefresh: with GetToken, the client refreshes the token on the
// open connection before it expires, and the node never closes it.
func TestTokenRefresh(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	var calls atomic.Int32
	var firstExp time.Time
	c := dial(t, n, "", func(c *client.Config) {
		c.Token = ""
		c.GetToken = func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				firstExp = time.Now().Add(2 * time.Second)
			}
			return mint(t, "renewer", 2*time.Second), nil
		}
	})
	eventually(t, "refreshed twice", func() bool { return calls.Load() >= 3 })
	// The first token has expired by now (the node checks every second).
	time.Sleep(time.Until(firstExp.Add(1500 * time.Millisecond)))
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Connects != 1 {
		t.Fatalf("reconnected: %+v", st)
	}
}
