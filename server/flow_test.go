package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// pingBarrier sends a ping and returns every frame that arrived before the
// pong. Replies are queued behind what is already queued for the
// connection, so a message the server wrongly let through shows up here.
func (cl *client) pingBarrier(id int) []map[string]any {
	cl.t.Helper()
	cl.send(map[string]any{"type": "ping", "id": id})
	var before []map[string]any
	for {
		f := cl.next()
		if f["type"] == "pong" && num(f["id"]) == float64(id) {
			return before
		}
		before = append(before, f)
	}
}

func TestCreditWindowLimitsUnackedMessages(t *testing.T) {
	n := startNode(t, nil)
	cl, _, err := dial(t, n, dialOpts{})
	if err != nil {
		t.Fatal(err)
	}
	cl.send(map[string]any{"type": "connect", "id": 1, "token": token(t, "w", time.Hour, nil), "window": 5})
	if c := cl.expect("connected"); num(c["limits"].(map[string]any)["window"]) != 5 {
		t.Fatalf("connected: %v", c)
	}
	cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:credit"})
	for i := 1; i <= 12; i++ {
		publishAPI(t, n, "chat:credit", i)
	}
	var got []float64
	for len(got) < 5 {
		m := cl.expect("message")
		got = append(got, num(m["offset"]))
	}
	for _, f := range cl.pingBarrier(100) {
		if f["type"] == "message" {
			t.Fatalf("message beyond the window of 5 before any ack: %v", f)
		}
	}
	cl.send(map[string]any{"type": "ack", "seq": 5})
	for len(got) < 10 {
		m := cl.expect("message")
		got = append(got, num(m["offset"]))
	}
	for _, f := range cl.pingBarrier(101) {
		if f["type"] == "message" {
			t.Fatalf("message beyond the window after ack 5: %v", f)
		}
	}
	cl.send(map[string]any{"type": "ack", "seq": 10})
	for len(got) < 12 {
		got = append(got, num(cl.expect("message")["offset"]))
	}
	for i, off := range got {
		if off != float64(i+1) {
			t.Fatalf("offsets %v", got)
		}
	}
}

func TestBatchDelayGathersMessages(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.Batch.Delay = 100 * time.Millisecond })
	sub := connectClient(t, n, "reader")
	sub.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:batch"})
	before := sub.wsMessages.Load()
	pub := connectClient(t, n, "writer")
	frames := make([]map[string]any, 50)
	for i := range frames {
		frames[i] = map[string]any{"type": "publish", "id": 10 + i, "channel": "chat:batch", "data": i}
	}
	b, _ := json.Marshal(frames) // one WebSocket message with 50 publishes
	pub.sendRaw(b)
	for i := 0; i < 50; i++ {
		if m := sub.expect("message"); num(m["data"]) != float64(i) {
			t.Fatalf("message %d: %v", i, m)
		}
	}
	msgs := sub.wsMessages.Load() - before
	t.Logf("50 messages arrived in %d WebSocket messages", msgs)
	if msgs > 5 {
		t.Fatalf("50 messages published within the batch delay came in %d WebSocket messages", msgs)
	}
}

func TestConflationUnderRateLimit(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.Namespaces["ticker"] = server.Namespace{Subscribe: true, Rate: 5}
	})
	cl := connectClient(t, n, "mobile")
	cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "ticker:prices"})
	last := map[string]float64{}
	var final float64
	for i := 1; i <= 1000; i++ {
		key := fmt.Sprint("k", i%10)
		body := fmt.Sprintf(`{"channel":"ticker:prices","data":{"key":%q,"v":%d},"conflate":%q}`, key, i, key)
		code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, body)
		if code != 200 {
			t.Fatalf("publish: %d %v", code, out)
		}
		last[key] = float64(i)
		final = num(out["offset"])
	}
	seen := map[string]float64{}
	prev, count := 0.0, 0
	for len(seen) < 10 || !sameValues(seen, last) {
		m := cl.expect("message")
		count++
		off := num(m["offset"])
		if off <= prev {
			t.Fatalf("offsets not increasing: %v after %v", off, prev)
		}
		prev = off
		d := m["data"].(map[string]any)
		seen[d["key"].(string)] = num(d["v"])
	}
	t.Logf("1000 updates to 10 keys arrived as %d messages (last offset %v of %v)", count, prev, final)
	if count > 100 {
		t.Fatalf("throttled client got %d messages: conflation did not work", count)
	}
}

func sameValues(a, b map[string]float64) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// A subscriber whose socket is full and who keeps getting critical messages
// is closed with 4010 while another subscriber on the same channel gets
// everything, and the slow one's queue stays within its bound.
func TestSlowConsumerClosedOnCriticalOverflow(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.Queue = server.QueueConfig{MaxMessages: 16, MaxBytes: 256 << 10}
		c.SlowConsumer.Grace = 200 * time.Millisecond
	})
	fast := connectClient(t, n, "fast")
	fast.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:flood"})

	// The slow subscriber: a raw connection with a tiny receive buffer that
	// stops reading after subscribing.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	raw, err := d.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	slow := upgradeRaw(t, raw)
	slow.sendText(fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "slow", time.Hour, nil)))
	slow.sendText(`{"type":"subscribe","id":2,"channel":"chat:flood"}`)
	payload := strings.Repeat("x", 16<<10)
	maxDepth := 0.0
	published := 0
	for i := 0; i < 2000; i++ {
		body := fmt.Sprintf(`{"channel":"chat:flood","data":%q,"priority":"critical"}`, payload)
		if code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, body); code != 200 {
			t.Fatalf("publish: %d %v", code, out)
		}
		published++
		if i%50 == 0 {
			_, st := apiCall(t, n, "GET", "/v1/api/stats", testAPIKey, "")
			maxDepth = max(maxDepth, num(st["queue_depth"]))
			if slowClosed(t, n) {
				break
			}
		}
	}
	eventually(t, "slow consumer closed", func() bool { return slowClosed(t, n) })
	t.Logf("slow consumer closed after %d critical messages of 16 KiB; largest queue depth seen %v", published, maxDepth)
	if maxDepth > 2*16+4 { // the bound, its hard overflow factor, and the fast client's in-flight frames
		t.Fatalf("queue depth reached %v, bound is 16 (hard limit 32)", maxDepth)
	}
	for i := 0; i < published; i++ {
		if m := fast.expect("message"); m["priority"] != "critical" {
			t.Fatalf("fast subscriber: %v", m)
		}
	}
	// The slow client, reading again, finds the disconnect advice and 4010.
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := io.ReadAll(raw)
	if !strings.Contains(string(rest), `"code":4010`) {
		t.Logf("the slow client's socket was closed before the close frame could be sent (%d bytes read)", len(rest))
	}
}

func slowClosed(t testing.TB, n *node) bool {
	resp, err := http.Get(n.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// The whole line: one close, not a count that merely starts with 1.
	return strings.Contains(string(b), "\nferry_slow_consumer_closes_total 1\n")
}

// upgradeRaw performs the WebSocket handshake on an open connection.
func upgradeRaw(t testing.TB, c net.Conn) *rawConn {
	t.Helper()
	req := "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Protocol: " + protocol.SubprotocolJSON + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	var head []byte
	for !strings.HasSuffix(string(head), "\r\n\r\n") {
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		head = append(head, buf[0])
	}
	if !strings.Contains(string(head), " 101 ") {
		t.Fatalf("upgrade: %s", head)
	}
	return &rawConn{t: t, c: c}
}
