package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/server"
)

// streamLog reads an HTTP client's frames until cond holds (or the hang
// guard): the messages' data by count, the ids of the published replies
// in order, and the first disconnect frame.
type streamLog struct {
	got        map[int]int // message data -> how many times
	offsetOf   map[int]int // message data -> its channel offset
	published  []int       // ids of the published replies, in arrival order
	disconnect map[string]any
}

func readStream(t testing.TB, c *httpClient, cond func(*streamLog) bool) *streamLog {
	t.Helper()
	l := &streamLog{got: map[int]int{}, offsetOf: map[int]int{}}
	deadline := time.Now().Add(wait.Timeout)
	for !cond(l) && time.Now().Before(deadline) {
		f, ok := c.poll(100 * time.Millisecond)
		if !ok {
			continue
		}
		switch f["type"] {
		case "message":
			d := int(num(f["data"]))
			l.got[d]++
			l.offsetOf[d] = int(num(f["offset"]))
		case "published":
			l.published = append(l.published, int(num(f["id"])))
		case "disconnect":
			if l.disconnect == nil {
				l.disconnect = f
			}
		case "error", "http_error":
			t.Fatalf("frame on the stream: %v", f)
		}
	}
	return l
}

// streamOpen reports whether c's SSE stream is still open.
func streamOpen(c *httpClient) bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// An SSE session whose POST /v1/send requests land on both nodes in turn
// (a round-robin balancer) keeps its one stream: the node that does not
// hold the session routes the frames to the one that does. (It adopted the
// session instead: the stream's node closed it with 4016, and the client
// reconnected again and again; the editor example's run with WebSocket
// blocked churned so.) Every publish is processed once and in the order
// sent, and every reply comes on the stream.
func TestSSESendsAcrossNodesKeepOneStream(t *testing.T) {
	rs := redistest.Start(t)
	a := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "a" })
	b := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "b" })
	open := func(n *node, user string) *httpClient {
		t.Helper()
		c, code, reply := openHTTP(t, n, "sse",
			map[string]any{"type": "connect", "id": 1, "token": token(t, user, time.Hour, nil)},
			map[string]any{"type": "subscribe", "id": 2, "channel": "chat:route"})
		if code != 200 {
			t.Fatalf("open on %s: HTTP %d %v", n.base, code, reply)
		}
		texpect(t, c, "subscribed")
		return c
	}
	writer := open(a, "writer") // its stream is on a
	reader := open(b, "reader")

	const total = 30
	nodes := []*node{a, b}
	for i := 1; i <= total; i++ {
		n := nodes[i%2]
		if code, body := writer.sendTo(n, map[string]any{"type": "publish", "id": 100 + i, "channel": "chat:route", "data": i}); code != 202 {
			t.Fatalf("send %d to node %s: HTTP %d %s", i, n.base, code, body)
		}
	}
	all := func(l *streamLog) bool { return len(l.got) == total }
	w := readStream(t, writer, func(l *streamLog) bool { return all(l) && len(l.published) == total || l.disconnect != nil })
	if w.disconnect != nil {
		t.Fatalf("the writer's stream was closed: %v", w.disconnect)
	}
	if !streamOpen(writer) {
		t.Fatal("the writer's stream ended")
	}
	r := readStream(t, reader, func(l *streamLog) bool { return all(l) || l.disconnect != nil })
	for name, l := range map[string]*streamLog{"writer": w, "reader": r} {
		for i := 1; i <= total; i++ {
			if l.got[i] != 1 {
				t.Fatalf("%s: message %d arrived %d times, want once (%d of %d arrived)", name, i, l.got[i], len(l.got), total)
			}
			// Offsets follow the order of processing: sent in order,
			// routed or not, the publishes were processed in order.
			if l.offsetOf[i] != i {
				t.Fatalf("%s: message %d at offset %d: the publishes were processed out of order", name, i, l.offsetOf[i])
			}
		}
	}
	if len(w.published) != total {
		t.Fatalf("the writer's stream carried %d published replies, want %d", len(w.published), total)
	}
	for i, id := range w.published {
		if id != 101+i {
			t.Fatalf("published replies in the order %v, want 101..%d", w.published, 100+total)
		}
	}
	if !streamOpen(writer) || !streamOpen(reader) {
		t.Fatal("a stream ended")
	}
}

// A send whose session's stream node is gone (killed: no liveness answer,
// no control subscriber) is not routed into the void: the receiving node
// adopts the session, processes the frames, and a new stream on it
// carries their replies.
func TestSSESendAdoptsWhenStreamNodeIsGone(t *testing.T) {
	a, b, ba := nodesOneMortal(t)
	writer, code, reply := openHTTP(t, a, "sse",
		map[string]any{"type": "connect", "id": 1, "token": token(t, "orphan", time.Hour, nil)},
		map[string]any{"type": "subscribe", "id": 2, "channel": "chat:orphan"})
	if code != 200 {
		t.Fatalf("open: HTTP %d %v", code, reply)
	}
	texpect(t, writer, "subscribed")
	writer.close()
	_ = ba.Close() // node a is gone for the cluster
	if code, body := writer.sendTo(b, map[string]any{"type": "publish", "id": 7, "channel": "chat:orphan", "data": 1}); code != 202 {
		t.Fatalf("send to b after a died: HTTP %d %s", code, body)
	}
	writer.n = b
	writer.reconnectSSE()
	l := readStream(t, writer, func(l *streamLog) bool { return l.got[1] > 0 && len(l.published) > 0 })
	if l.got[1] == 0 || len(l.published) == 0 || l.published[0] != 7 {
		t.Fatalf("on b's stream: messages %v, published replies %v; want message 1 and the reply to 7", l.got, l.published)
	}
}

// Two SSE sessions on one node, each publishing by POST /v1/send while the
// other listens: each receives every message of both, exactly once, with
// no reconnect (the editor example's pages, pinned to one node, now and
// then missed one of the other's updates).
func TestSSEEverySendDelivered(t *testing.T) {
	n := startNode(t, nil)
	const each = 150
	clients := make([]*httpClient, 2)
	for i := range clients {
		c, code, reply := openHTTP(t, n, "sse",
			map[string]any{"type": "connect", "id": 1, "token": token(t, fmt.Sprintf("pen%d", i), time.Hour, nil)},
			map[string]any{"type": "subscribe", "id": 2, "channel": "chat:pens"})
		if code != 200 {
			t.Fatalf("open: HTTP %d %v", code, reply)
		}
		texpect(t, c, "subscribed")
		clients[i] = c
	}
	errs := make(chan string, 2)
	for i, c := range clients {
		go func() {
			for k := 0; k < each; k++ {
				d := i*each + k + 1
				if code, body := c.sendTo(n, map[string]any{"type": "publish", "id": d, "channel": "chat:pens", "data": d}); code != 202 {
					errs <- fmt.Sprintf("send %d: HTTP %d %s", d, code, body)
					return
				}
			}
			errs <- ""
		}()
	}
	for range clients {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
	for i, c := range clients {
		l := readStream(t, c, func(l *streamLog) bool {
			return len(l.got) == 2*each && len(l.published) == each || l.disconnect != nil
		})
		var missing []string
		for d := 1; d <= 2*each; d++ {
			if l.got[d] != 1 {
				missing = append(missing, fmt.Sprintf("%d (x%d)", d, l.got[d]))
			}
		}
		if len(missing) > 0 || l.disconnect != nil {
			t.Fatalf("client %d: messages not received exactly once: %s; disconnect %v", i, strings.Join(missing, ", "), l.disconnect)
		}
		if len(l.published) != each {
			t.Fatalf("client %d: %d published replies, want %d", i, len(l.published), each)
		}
	}
}

// The sends routed to a session's node wait there in a bounded queue: while
// the node is busy with one (its publish hook has not answered), 16 more
// wait and the rest are refused at once with 429 and a reason, not queued
// without end. Once the node goes on, every queued send is processed and
// answered 202.
func TestSSERoutedSendsBounded(t *testing.T) {
	rs := redistest.Start(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(func() { free(); hook.Close() })
	cfg := func(id string) func(*server.Config) {
		return func(c *server.Config) {
			c.Broker, c.NodeID = rs.URL(), id
			c.Namespaces["slow"] = server.Namespace{Subscribe: true, Publish: true, PublishHook: hook.URL + "/publish"}
			c.Hooks = server.HooksConfig{Timeout: time.Minute, Secret: "hook-secret-0123456789abcdef0123", BreakerFailures: 1000}
		}
	}
	a, b := startNode(t, cfg("a")), startNode(t, cfg("b"))
	writer, code, reply := openHTTP(t, a, "sse", map[string]any{"type": "connect", "id": 1, "token": token(t, "busy", time.Hour, nil)})
	if code != 200 {
		t.Fatalf("open: HTTP %d %v", code, reply)
	}
	defer free() // before the writer's cleanup waits for its stream
	first := make(chan int, 1)
	go func() {
		code, _ := writer.sendTo(b, map[string]any{"type": "publish", "id": 1, "channel": "slow:x", "data": 1})
		first <- code
	}()
	select {
	case <-entered: // node a is busy with the first routed send
	case <-time.After(wait.Timeout):
		t.Fatal("the routed publish never reached the publish hook")
	}
	const more = 20
	codes := make(chan string, more)
	for i := 0; i < more; i++ {
		go func() {
			code, body := writer.sendTo(b, map[string]any{"type": "ping", "id": 100 + i})
			codes <- fmt.Sprintf("%d %s", code, body)
		}()
	}
	var refused []string
	for len(refused) < more-16 {
		select {
		case c := <-codes:
			if !strings.HasPrefix(c, "429 ") || !strings.Contains(c, "too many sends") {
				t.Fatalf("a send beyond the queue got %s, want 429 too many sends", c)
			}
			refused = append(refused, c)
		case <-time.After(wait.Timeout):
			t.Fatalf("%d sends refused, want %d", len(refused), more-16)
		}
	}
	free()
	if c := <-first; c != 202 {
		t.Fatalf("the first send: HTTP %d", c)
	}
	for i := 0; i < 16; i++ {
		select {
		case c := <-codes:
			if !strings.HasPrefix(c, "202 ") {
				t.Fatalf("a queued send got %s, want 202", c)
			}
		case <-time.After(wait.Timeout):
			t.Fatalf("only %d of the 16 queued sends were answered", i)
		}
	}
	pongs := 0
	deadline := time.Now().Add(wait.Timeout)
	for pongs < 16 && time.Now().Before(deadline) {
		if f, ok := writer.poll(100 * time.Millisecond); ok && f["type"] == "pong" {
			pongs++
		}
	}
	if pongs != 16 {
		t.Fatalf("%d pongs on the stream, want 16", pongs)
	}
}
