package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

func TestRecoveryAfterHistoryOverflow(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.Namespaces["short"] = server.Namespace{Subscribe: true, HistorySize: 10, HistoryTTL: time.Hour}
	})
	first := publishAPI(t, n, "short:x", 1)
	for i := 2; i <= 31; i++ {
		publishAPI(t, n, "short:x", i)
	}
	cl := connectClient(t, n, "late")
	r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "short:x",
		"since": map[string]any{"offset": 1, "epoch": first["epoch"]}})
	if r["recovered"] != false || num(r["missed"]) != 20 || num(r["offset"]) != 31 {
		t.Fatalf("subscribed: %v (want recovered false, missed 20)", r)
	}
	for want := 22; want <= 31; want++ {
		if m := cl.expect("message"); num(m["offset"]) != float64(want) {
			t.Fatalf("got %v, want offset %d", m, want)
		}
	}
}

// A node that restarts with an empty memory broker has new epochs: a client
// that comes back with an old position is told it did not recover.
func TestEpochChangeAfterBrokerRestart(t *testing.T) {
	a := startNode(t, nil)
	old := publishAPI(t, a, "chat:e", "before")
	b := startNode(t, nil) // a fresh node: its memory broker never saw chat:e
	publishAPI(t, b, "chat:e", "after-1")
	publishAPI(t, b, "chat:e", "after-2")
	cl := connectClient(t, b, "alice")
	r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:e",
		"since": map[string]any{"offset": num(old["offset"]), "epoch": old["epoch"]}})
	if r["recovered"] != false || r["epoch"] == old["epoch"] {
		t.Fatalf("subscribed: %v (old epoch %v)", r, old["epoch"])
	}
	for _, want := range []string{"after-1", "after-2"} {
		if m := cl.expect("message"); m["data"] != want || m["epoch"] != r["epoch"] {
			t.Fatalf("got %v, want %s in the new epoch", m, want)
		}
	}
}

// The seam race: publishers never stop while subscribers reconnect with
// `since` in a loop. Every subscriber must see every offset exactly once, in
// order. FERRY_SEAM_SECONDS sets the duration (default 10 s, 2 s with -short).
func TestSeamRaceNoGapNoDuplicate(t *testing.T) {
	dur := 10 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	if v, err := strconv.Atoi(os.Getenv("FERRY_SEAM_SECONDS")); err == nil && v > 0 {
		dur = time.Duration(v) * time.Second
	}
	n := startNode(t, func(c *server.Config) {
		c.Namespaces["seam"] = server.Namespace{Subscribe: true, Publish: true, HistorySize: 100000, HistoryTTL: time.Hour}
		c.ClientPublish.Rate = 100000
		c.ClientPublish.Burst = 100000
		c.MaxConnectionsPerUser = 100
	})
	const ch = "seam:race"
	epoch := publishAPI(t, n, ch, 0)["epoch"].(string) // offset 1

	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	var published atomic.Int64
	published.Store(1)
	var pubs, wg sync.WaitGroup
	var pubsDone atomic.Bool
	for p := 0; p < 3; p++ {
		pubs.Add(1)
		go func(p int) {
			defer pubs.Done()
			pub := connectClient(t, n, fmt.Sprint("pub", p))
			for id := 10; ctx.Err() == nil; id++ {
				r := pub.request(map[string]any{"type": "publish", "id": id, "channel": ch, "data": id})
				if r["type"] != "published" {
					t.Errorf("publish: %v", r)
					return
				}
				published.Add(1)
			}
		}(p)
	}
	go func() { pubs.Wait(); pubsDone.Store(true) }()
	type result struct {
		seen, reconnects int
	}
	results := make([]result, 4)
	for s := range results {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			last := uint64(0)
			for round := 0; ; round++ {
				final := pubsDone.Load()
				cl := connectClient(t, n, fmt.Sprint("sub", s))
				r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": ch,
					"since": map[string]any{"offset": last, "epoch": epoch}})
				if r["type"] != "subscribed" || r["recovered"] != true {
					t.Errorf("subscriber %d round %d: %v", s, round, r)
					return
				}
				target := uint64(num(r["offset"])) // the channel's offset at subscribe time
				deadline := time.Now().Add(time.Duration(rng.IntN(150)) * time.Millisecond)
				for {
					if final && last >= uint64(published.Load()) {
						break
					}
					if !final && last >= target && (time.Now().After(deadline) || pubsDone.Load()) {
						break
					}
					m, ok := cl.poll(50 * time.Millisecond)
					if !ok {
						if final && time.Since(deadline) > 10*time.Second {
							t.Errorf("subscriber %d: stuck at offset %d of %d", s, last, published.Load())
							return
						}
						continue
					}
					if m["type"] != "message" {
						t.Errorf("subscriber %d: unexpected frame %v", s, m)
						return
					}
					off := uint64(num(m["offset"]))
					if off != last+1 {
						t.Errorf("subscriber %d: offset %d after %d (gap or duplicate)", s, off, last)
						return
					}
					last = off
					results[s].seen++
				}
				cl.close()
				results[s].reconnects++
				if final {
					return
				}
			}
		}(s)
	}
	wg.Wait()
	total := published.Load()
	for s, r := range results {
		t.Logf("subscriber %d: %d messages in order over %d connections", s, r.seen, r.reconnects)
		if int64(r.seen) != total {
			t.Errorf("subscriber %d saw %d messages, %d were published", s, r.seen, total)
		}
	}
	t.Logf("seam race: %d messages published by 3 publishers in %v; 0 gaps, 0 duplicates", total, dur)
}
