package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/examples/internal/demo"
)

// channel carries every tick; the page subscribes to it alone.
const channel = "ticks:all"

var symbolNames = []string{
	"ACME", "BOLT", "CRUX", "DYNA", "ECHO", "FLUX", "GRID", "HALO", "IONS", "JADE",
	"KILN", "LUMA", "MESA", "NOVA", "ONYX", "PIKE", "QUAD", "RUNE", "SAGE", "TIDE",
	"UMBR", "VOLT", "WISP", "XENO", "YAWL", "ZINC", "ARCH", "BEAM", "CORE", "DUNE",
	"EPIC", "FERN", "GLOW", "HIVE", "ISLE", "JOLT", "KITE", "LYNX", "MOSS", "NEON",
}

// tick is one price update: symbol, price (in cents), the feed's sequence
// number and the publish time in Unix ms (the page measures latency).
type tick struct {
	S string `json:"s"`
	P int64  `json:"p"`
	N uint64 `json:"n"`
	T int64  `json:"t"`
}

// feed publishes random-walk prices. Each symbol belongs to one worker, so
// a symbol's ticks are published in order and its last published price is
// well defined (the test checks the page shows exactly that).
type feed struct {
	clients []*client.Client
	rate    int
	symbols []string
	paused  atomic.Bool
	seq     atomic.Uint64
	sent    atomic.Uint64

	mu   sync.Mutex // guards last
	last map[string]int64
}

func newFeed(ctx context.Context, nodes []string, token string, rate int, symbols []string) (*feed, error) {
	f := &feed{rate: rate, symbols: symbols, last: make(map[string]int64)}
	for _, n := range nodes {
		c, err := client.Dial(ctx, n, client.Config{Token: token, ClientName: "ticker-feed/1"})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("feed: dial %s: %w", n, err)
		}
		f.clients = append(f.clients, c)
	}
	return f, nil
}

func (f *feed) close() {
	for _, c := range f.clients {
		_ = c.Close()
	}
}

// workers publish concurrently (each waits for its publish's reply).
const workers = 8

func (f *feed) run(ctx context.Context) {
	var wg sync.WaitGroup
	per := float64(f.rate) / workers
	for w := range workers {
		var mine []string
		for i := w; i < len(f.symbols); i += workers {
			mine = append(mine, f.symbols[i])
		}
		if len(mine) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx, mine, per)
		}()
	}
	wg.Wait()
}

// work publishes ticks of its symbols at perSec, catching up in bursts
// when a publish was slow (so the total rate holds on a busy machine).
func (f *feed) work(ctx context.Context, symbols []string, perSec float64) {
	price := make(map[string]int64, len(symbols))
	for _, s := range symbols {
		price[s] = 10000 + rand.Int64N(90000)
	}
	interval := time.Duration(float64(time.Second) / perSec)
	next := time.Now()
	for ctx.Err() == nil {
		if f.paused.Load() {
			time.Sleep(50 * time.Millisecond)
			next = time.Now()
			continue
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		s := symbols[rand.IntN(len(symbols))]
		step := int64(math.Round(rand.NormFloat64() * 20))
		price[s] = max(100, price[s]+step)
		t := tick{S: s, P: price[s], N: f.seq.Add(1), T: time.Now().UnixMilli()}
		ok := true
		for _, c := range f.clients {
			ok = ok && publishOnce(ctx, c, t)
		}
		if ok {
			f.sent.Add(1)
			f.mu.Lock()
			f.last[s] = t.P
			f.mu.Unlock()
		}
	}
}

// routes: GET /feed (last prices and counters), POST /feed?paused=true|false.
func (f *feed) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		last := make(map[string]int64, len(f.last))
		for k, v := range f.last {
			last[k] = v
		}
		f.mu.Unlock()
		demo.WriteJSON(w, map[string]any{"paused": f.paused.Load(), "sent": f.sent.Load(), "rate": f.rate, "last": last})
	})
	mux.HandleFunc("POST /feed", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("paused") {
		case "true":
			f.paused.Store(true)
		case "false":
			f.paused.Store(false)
		default:
			http.Error(w, "feed: want ?paused=true or ?paused=false", http.StatusBadRequest)
			return
		}
		demo.WriteJSON(w, map[string]any{"paused": f.paused.Load()})
	})
}

// runID tells this feed's idempotency keys from those of an earlier feed
// on the same node (its tick numbers start at 1 again).
var runID = strconv.FormatUint(rand.Uint64(), 36)

// publishOnce publishes t until a node confirms it, with one idempotency
// key for every attempt: a publish whose reply was lost (a timeout on a
// busy machine) may have landed, and its retry then counts once. So the
// feed's last price per symbol is exactly the last one the pages can get.
// False only when ctx ends.
func publishOnce(ctx context.Context, c *client.Client, t tick) bool {
	key := "tick-" + runID + "-" + strconv.FormatUint(t.N, 10)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.Publish(pctx, channel, t, client.WithConflate(t.S), client.WithKey(key))
		cancel()
		if err == nil {
			return true
		}
		select { // back off a little before the retry
		case <-ctx.Done():
		case <-time.After(time.Duration(min(attempt, 10)) * 100 * time.Millisecond):
		}
	}
	return false
}
