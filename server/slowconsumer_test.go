package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/ferry-io/ferry/server"
)

// A subscriber that stops reading does not hold up 1,000 others on the same
// channel: every fast subscriber still gets every message. The latency
// figures with and without the slow client are logged for the record (no
// timing assertion: speed goals live in benchmarks). FERRY_SLOW_SUBS sets
// the number of fast subscribers (default 300, 100 with -short; the
// figures in the flow-control notes used 1000).
func TestSlowConsumerDoesNotHoldUpOthers(t *testing.T) {
	subs := 300
	if testing.Short() {
		subs = 100
	}
	if v, err := strconv.Atoi(os.Getenv("FERRY_SLOW_SUBS")); err == nil && v > 0 {
		subs = v
	}
	n := startNode(t, func(c *server.Config) {
		c.MaxConnectionsPerUser = subs + 10
		c.Queue = server.QueueConfig{MaxMessages: 64, MaxBytes: 256 << 10}
	})
	for _, withSlow := range []bool{false, true} {
		ch := fmt.Sprintf("chat:fan-%v", withSlow)
		lat := fanoutRound(t, n, ch, subs, withSlow)
		slices.Sort(lat)
		p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
		t.Logf("%d subscribers, slow client %v: %d deliveries, p50 %v, p99 %v, max %v",
			subs, withSlow, len(lat), p(0.5).Round(time.Microsecond), p(0.99).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	}
}

// fanoutRound subscribes subs fast readers (and a stalled one when slow)
// to ch, publishes 50 messages of 2 KiB at 50/s and returns every
// publish-to-deliver latency seen by the fast readers.
func fanoutRound(t *testing.T, n *node, ch string, subs int, slow bool) []time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const msgs = 50
	var mu sync.Mutex
	var lat []time.Duration
	var ready, done sync.WaitGroup
	for i := 0; i < subs; i++ {
		ready.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			c, _, err := websocket.Dial(ctx, n.url+"/v1/ws", &websocket.DialOptions{Subprotocols: []string{"ferry.v1.json"}})
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				ready.Done()
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			w := func(v any) { b, _ := json.Marshal(v); _ = c.Write(ctx, websocket.MessageText, b) }
			w(map[string]any{"type": "connect", "id": 1, "token": token(t, "fan", time.Hour, nil)})
			w(map[string]any{"type": "subscribe", "id": 2, "channel": ch})
			got, subscribed := 0, false
			for got < msgs {
				_, b, err := c.Read(ctx)
				if err != nil {
					if !subscribed {
						ready.Done()
					}
					if ctx.Err() == nil {
						t.Errorf("subscriber %d after %d messages: %v", i, got, err)
					}
					return
				}
				now := time.Now()
				var frames []map[string]any
				if b[0] == '[' {
					_ = json.Unmarshal(b, &frames)
				} else {
					var f map[string]any
					_ = json.Unmarshal(b, &f)
					frames = append(frames, f)
				}
				for _, f := range frames {
					switch f["type"] {
					case "subscribed":
						subscribed = true
						ready.Done()
					case "message":
						d := f["data"].(map[string]any)
						sent, _ := strconv.ParseInt(d["t"].(string), 10, 64)
						mu.Lock()
						lat = append(lat, now.Sub(time.Unix(0, sent)))
						mu.Unlock()
						got++
					}
				}
			}
		}(i)
	}
	ready.Wait()
	if slow {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		raw, err := d.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		rc := upgradeRaw(t, raw)
		rc.sendText(fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "stalled", time.Hour, nil)))
		rc.sendText(fmt.Sprintf(`{"type":"subscribe","id":2,"channel":%q}`, ch))
		time.Sleep(100 * time.Millisecond) // let it subscribe; it never reads again
	}
	pad := strings.Repeat("x", 2048)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < msgs; i++ {
		<-tick.C
		body := fmt.Sprintf(`{"channel":%q,"data":{"t":"%d","pad":%q}}`, ch, time.Now().UnixNano(), pad)
		if code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, body); code != 200 {
			t.Fatalf("publish: %d %v", code, out)
		}
	}
	waited := make(chan struct{})
	go func() { done.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second):
		cancel()
		<-waited
		t.Fatalf("fast subscribers did not get all %d messages", msgs)
	}
	if want := subs * msgs; len(lat) != want {
		t.Fatalf("%d deliveries, want %d", len(lat), want)
	}
	return lat
}
