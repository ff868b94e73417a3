package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/server"
)

// TestHookLoad measures what the hooks add: 1,000 connects through the
// connect hook and 10,000 rpcs at concurrency 200, against a back end that
// answers after 5 ms. It prints the latency seen by the clients and the
// latency Ferry adds (the back end's 5 ms subtracted), and fails on any
// error. It is a measurement, not a check of speed: it runs only with
// FERRY_HOOK_LOAD=1 (on a quiet machine for figures that mean anything):
//
//	FERRY_HOOK_LOAD=1 go test ./server -run TestHookLoad -v -count=1
func TestHookLoad(t *testing.T) {
	if os.Getenv("FERRY_HOOK_LOAD") != "1" {
		t.Skip("a measurement: set FERRY_HOOK_LOAD=1 to run it")
	}
	const (
		delay       = 5 * time.Millisecond
		connects    = 1000
		rpcs        = 10000
		concurrency = 200
	)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req hooks.RPCRequest // the fields a connect request shares
		_ = json.NewDecoder(r.Body).Decode(&req)
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/connect" {
			_ = json.NewEncoder(w).Encode(hooks.ConnectAnswer{User: "u-" + req.Conn})
			return
		}
		_ = json.NewEncoder(w).Encode(hooks.RPCAnswer{Data: req.Data})
	}))
	defer backend.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // -v must not log every connection
	n := startNodeWith(t, func(c *server.Config) {
		c.Hooks = server.HooksConfig{
			Connect: backend.URL + "/connect", RPC: map[string]string{"": backend.URL + "/rpc"},
			Secret: hookSecret, MaxConcurrent: 2 * concurrency,
		}
	}, server.Options{Logger: quiet})

	var errs atomic.Int64
	run := func(total int, op func(i int) error) []time.Duration {
		lat := make([]time.Duration, total)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= total {
						return
					}
					start := time.Now()
					if err := op(i); err != nil {
						if errs.Add(1) <= 5 {
							t.Errorf("op %d: %v", i, err)
						}
					}
					lat[i] = time.Since(start)
				}
			}()
		}
		wg.Wait()
		return lat
	}

	// Connects: dial, connect without a token, connected.
	clients := make([]*client, connects)
	began := time.Now()
	connLat := run(connects, func(i int) error {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			return err
		}
		clients[i] = cl
		cl.send(map[string]any{"type": "connect", "id": 1, "client": fmt.Sprint("load-", i)})
		if f := cl.next(); f["type"] != "connected" {
			return fmt.Errorf("connect: %v", f)
		}
		return nil
	})
	report(t, "connect (dial + connect hook + connected)", connLat, delay, time.Since(began))

	// RPCs: concurrency connections, each with one call in flight at a
	// time.
	per := rpcs / concurrency
	lat := make([]time.Duration, 0, rpcs)
	var mu sync.Mutex
	var wg sync.WaitGroup
	began = time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w]
			mine := make([]time.Duration, 0, per)
			for k := range per {
				id := 100 + k
				start := time.Now()
				cl.send(map[string]any{"type": "rpc", "id": id, "method": "load", "data": k})
				f := cl.next()
				if f["type"] != "rpc.result" || int(num(f["id"])) != id {
					if errs.Add(1) <= 5 {
						t.Errorf("rpc %d on client %d: %v", id, w, f)
					}
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	report(t, "rpc (send to rpc.result)", lat, delay, time.Since(began))
	if e := errs.Load(); e != 0 {
		t.Fatalf("%d errors", e)
	}
	t.Logf("errors: 0")
}

// report logs the rate, percentiles of lat and of lat less the back
// end's delay. (The clients and the back end share the process and its
// cores with the node: at this concurrency the figures include their
// queueing for a core.)
func report(t *testing.T, what string, lat []time.Duration, backend, took time.Duration) {
	t.Helper()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("%s: n=%d in %v (%.0f/s) p50=%v p99=%v max=%v; added by Ferry (back end's %v subtracted): p50=%v p99=%v",
		what, len(lat), took.Round(time.Millisecond), float64(len(lat))/took.Seconds(),
		p(0.50), p(0.99), lat[len(lat)-1], backend, p(0.50)-backend, p(0.99)-backend)
}
