package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

// An SSE stream cut at random points (the client stops reading after a
// random number of events: whatever was in flight is lost) and re-opened
// with Last-Event-ID replays every message the client did not see, while
// messages keep coming. Half of the cuts leave the old connection open
// until the new stream is up, as a connection whose peer vanished without
// a word does: the server notices it only when the new stream replaces it.
func TestSSECutAtRandomReplaysEverything(t *testing.T) {
	t.Run("default queue", func(t *testing.T) { sseCuts(t, nil) })
	// A queue of 16: every replay goes in pages, read while the stream
	// pulls, and a new stream's rewind meets pages being read.
	t.Run("paged replays", func(t *testing.T) {
		sseCuts(t, func(c *server.Config) { c.Queue = server.QueueConfig{MaxMessages: 16, MaxBytes: 256 << 10} })
	})
}

func sseCuts(t *testing.T, mutate func(*server.Config)) {
	n := startNode(t, mutate)
	tok := rawSession(t, n, "sse", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:cuts"}]`, token(t, "cuts", time.Hour, nil)))
	ticket := func() string { return sessionTicket(t, n, tok) }
	const total = 400
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			publishAPI(t, n, "chat:cuts", i)
			if i%8 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	defer wg.Wait()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	seen := map[uint64]bool{}
	last := int64(-1)
	deadline := time.Now().Add(30 * time.Second)
	cuts := 0
	var stale []func()
	defer func() {
		for _, f := range stale {
			f()
		}
	}()
	for len(seen) < total && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/v1/sse?ticket="+ticket(), nil)
		if last >= 0 {
			req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for _, f := range stale {
			f()
		}
		stale = stale[:0]
		cutAfter := 1 + rng.IntN(40)
		events := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var f map[string]any
			if err := json.Unmarshal([]byte(data), &f); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			if f["type"] == "disconnect" {
				t.Fatalf("disconnected: %v", f)
			}
			if f["type"] != "message" {
				continue
			}
			seen[uint64(num(f["offset"]))] = true
			last = int64(num(f["seq"]))
			if events++; events >= cutAfter {
				break // cut: what the server wrote after this is lost
			}
		}
		cuts++
		if rng.IntN(2) == 0 {
			stale = append(stale, func() { cancel(); resp.Body.Close() })
			continue
		}
		cancel()
		resp.Body.Close()
	}
	var missing []uint64
	for off := uint64(1); off <= total; off++ {
		if !seen[off] {
			missing = append(missing, off)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("after %d cuts, %d of %d messages never arrived: %v", cuts, len(missing), total, missing)
	}
}
