package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

// tclient is a protocol client over any of the three transports.
type tclient interface {
	send(f any)
	next() map[string]any
	poll(d time.Duration) (map[string]any, bool)
}

// request sends f and returns the reply with the same id.
func treq(t testing.TB, c tclient, f map[string]any) map[string]any {
	t.Helper()
	c.send(f)
	for {
		r := c.next()
		if id, ok := r["id"]; ok && num(id) == num(f["id"]) {
			return r
		}
	}
}

func texpect(t testing.TB, c tclient, typ string) map[string]any {
	t.Helper()
	for {
		f := c.next()
		if f["type"] == typ {
			return f
		}
		if f["type"] == "error" {
			t.Fatalf("want %s, got %v", typ, f)
		}
	}
}

// httpClient speaks the HTTP fallbacks: frames go out by POST (/v1/send for
// SSE, /v1/poll bodies for long-poll), frames come in from an SSE stream or
// from poll replies.
type httpClient struct {
	t       testing.TB
	n       *node
	mode    string
	token   string // Ferry-Session
	frames  chan map[string]any
	mu      sync.Mutex
	out     []any // poll: frames to send with the next poll
	lastSeq uint64
	ctx     context.Context
	stop    context.CancelFunc
	done    chan struct{}
	conn    map[string]any // the connected frame
	paused  atomic.Bool    // poll: stop polling for a while
}

func openHTTP(t testing.TB, n *node, mode string, connect map[string]any, extra ...map[string]any) (*httpClient, int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(append([]map[string]any{connect}, extra...))
	resp, err := http.Post(n.base+"/v1/sessions?transport="+mode, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&reply)
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, reply
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &httpClient{t: t, n: n, mode: mode, token: reply["session_token"].(string),
		frames: make(chan map[string]any, 4096), ctx: ctx, stop: stop, done: make(chan struct{}), conn: reply}
	if mode == "sse" {
		go c.sseLoop(reply["stream_ticket"].(string), -1)
	} else {
		go c.pollLoop()
	}
	t.Cleanup(c.close)
	return c, 200, reply
}

func (c *httpClient) close() {
	c.stop()
	<-c.done
}

func (c *httpClient) send(f any) {
	c.t.Helper()
	if c.mode == "poll" {
		c.mu.Lock()
		c.out = append(c.out, f)
		c.mu.Unlock()
		return
	}
	if code, body := c.sendTo(c.n, f); code != 202 {
		c.t.Fatalf("send: HTTP %d %s", code, body)
	}
}

// sendTo POSTs f to /v1/send on node n (which need not hold the session)
// and returns the status and body of the reply.
func (c *httpClient) sendTo(n *node, f any) (int, string) {
	c.t.Helper()
	b, _ := json.Marshal(f)
	req, _ := http.NewRequest("POST", n.base+"/v1/send", bytes.NewReader(b))
	req.Header.Set("Ferry-Session", c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (c *httpClient) deliver(f map[string]any) {
	if seq, ok := f["seq"]; ok {
		c.mu.Lock()
		c.lastSeq = uint64(num(seq))
		c.mu.Unlock()
	}
	c.frames <- f
}

func (c *httpClient) pollLoop() {
	defer close(c.done)
	for c.ctx.Err() == nil {
		if c.paused.Load() {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.mu.Lock()
		out := c.out
		c.out = nil
		last := c.lastSeq
		c.mu.Unlock()
		var body []byte
		if len(out) > 0 {
			body, _ = json.Marshal(out)
		}
		// Short holds so that queued frames go out promptly.
		ctx, cancel := context.WithCancel(c.ctx)
		req, _ := http.NewRequestWithContext(ctx, "POST", c.n.base+"/v1/poll?wait=100", bytes.NewReader(body))
		req.Header.Set("Ferry-Session", c.token)
		req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			if len(out) > 0 { // not sent: try again
				c.mu.Lock()
				c.out = append(out, c.out...)
				c.mu.Unlock()
			}
			continue
		}
		var frames []map[string]any
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != 200 {
			c.frames <- map[string]any{"type": "http_error", "status": resp.StatusCode, "body": string(b)}
			return
		}
		if rerr != nil {
			continue // the reply was cut: Last-Event-ID makes the server send it again
		}
		if err := json.Unmarshal(b, &frames); err != nil {
			continue
		}
		for _, f := range frames {
			c.deliver(f)
		}
	}
}

func (c *httpClient) sseLoop(ticket string, last int64) {
	defer close(c.done)
	req, _ := http.NewRequestWithContext(c.ctx, "GET", c.n.base+"/v1/sse?ticket="+ticket, nil)
	if last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		c.frames <- map[string]any{"type": "http_error", "status": resp.StatusCode}
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var f map[string]any
			if err := json.Unmarshal([]byte(data), &f); err == nil {
				c.deliver(f)
			}
		}
	}
}

// reconnectSSE drops the stream and opens a new one with a fresh ticket
// and Last-Event-ID.
func (c *httpClient) reconnectSSE() {
	c.t.Helper()
	c.close()
	req, _ := http.NewRequest("POST", c.n.base+"/v1/tickets", nil)
	req.Header.Set("Ferry-Session", c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	var out struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Ticket == "" {
		c.t.Fatalf("no ticket: HTTP %d", resp.StatusCode)
	}
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.done = make(chan struct{})
	c.mu.Lock()
	last := int64(c.lastSeq)
	c.mu.Unlock()
	go c.sseLoop(out.Ticket, last)
}

func (c *httpClient) next() map[string]any {
	c.t.Helper()
	f, ok := c.poll(10 * time.Second)
	if !ok {
		c.t.Fatal("no frame from the server within 10s")
	}
	return f
}

func (c *httpClient) poll(d time.Duration) (map[string]any, bool) {
	select {
	case f := <-c.frames:
		return f, true
	case <-time.After(d):
		return nil, false
	}
}

// transportsUnderTest opens a connected client of each kind for user.
var transportsUnderTest = []string{"ws", "sse", "poll"}

func openAny(t testing.TB, n *node, kind, user string, connect map[string]any) tclient {
	t.Helper()
	if connect == nil {
		connect = map[string]any{"type": "connect", "id": 1, "token": token(t, user, time.Hour, nil)}
	}
	if kind == "ws" {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		cl.send(connect)
		cl.expect("connected")
		return cl
	}
	c, code, reply := openHTTP(t, n, kind, connect)
	if code != 200 {
		t.Fatalf("open %s session: HTTP %d %v", kind, code, reply)
	}
	return c
}

// The same scenarios over every transport.
func TestScenariosOverEveryTransport(t *testing.T) {
	for _, kind := range transportsUnderTest {
		t.Run(kind, func(t *testing.T) {
			n := startNode(t, func(c *server.Config) {
				c.Heartbeat = server.HeartbeatConfig{Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond}
				c.Queue = server.QueueConfig{MaxMessages: 8}
			})
			t.Run("subscribe and publish", func(t *testing.T) {
				c := openAny(t, n, kind, "alice", nil)
				if r := treq(t, c, map[string]any{"type": "subscribe", "id": 2, "channel": "chat:s"}); r["type"] != "subscribed" {
					t.Fatalf("subscribe: %v", r)
				}
				// The message and the publish reply may come in either order.
				c.send(map[string]any{"type": "publish", "id": 3, "channel": "chat:s", "data": "x"})
				var r, m map[string]any
				for r == nil || m == nil {
					switch f := c.next(); f["type"] {
					case "published":
						r = f
					case "message":
						m = f
					}
				}
				if num(r["id"]) != 3 || num(r["offset"]) != 1 || m["data"] != "x" || num(m["offset"]) != 1 {
					t.Fatalf("published %v, message %v", r, m)
				}
				if r := treq(t, c, map[string]any{"type": "history", "id": 4, "channel": "chat:s"}); len(r["messages"].([]any)) != 1 {
					t.Fatalf("history: %v", r)
				}
				if r := treq(t, c, map[string]any{"type": "presence", "id": 5, "channel": "chat:s"}); num(r["count"]) != 1 {
					t.Fatalf("presence: %v", r)
				}
			})
			t.Run("idempotent retry", func(t *testing.T) {
				c := openAny(t, n, kind, "bob", nil)
				a := treq(t, c, map[string]any{"type": "publish", "id": 2, "channel": "chat:idem-" + kind, "data": 1, "key": "k1"})
				b := treq(t, c, map[string]any{"type": "publish", "id": 3, "channel": "chat:idem-" + kind, "data": 1, "key": "k1"})
				if a["duplicate"] != false || b["duplicate"] != true || a["offset"] != b["offset"] {
					t.Fatalf("first %v, retry %v", a, b)
				}
			})
			t.Run("recovery after a dropped connection", func(t *testing.T) {
				ch := "chat:rec-" + kind
				c := openAny(t, n, kind, "carol", nil)
				treq(t, c, map[string]any{"type": "subscribe", "id": 2, "channel": ch})
				publishAPI(t, n, ch, 1)
				m := texpect(t, c, "message")
				if hc, ok := c.(*httpClient); ok {
					hc.close()
				} else {
					c.(*client).close()
				}
				for i := 2; i <= 20; i++ {
					publishAPI(t, n, ch, i)
				}
				c2 := openAny(t, n, kind, "carol", nil)
				r := treq(t, c2, map[string]any{"type": "subscribe", "id": 2, "channel": ch,
					"since": map[string]any{"offset": num(m["offset"]), "epoch": m["epoch"]}})
				if r["recovered"] != true {
					t.Fatalf("subscribed: %v", r)
				}
				for want := 2; want <= 20; want++ {
					if m := texpect(t, c2, "message"); num(m["offset"]) != float64(want) {
						t.Fatalf("got %v want %d", m, want)
					}
				}
			})
			t.Run("priority drop keeps critical messages", func(t *testing.T) {
				ch := "chat:prio-" + kind
				c := openAny(t, n, kind, "dave", map[string]any{"type": "connect", "id": 1, "token": token(t, "dave", time.Hour, nil), "window": 1})
				treq(t, c, map[string]any{"type": "subscribe", "id": 2, "channel": ch})
				// Window 1, no ack: the first message goes out, the rest
				// wait in a queue of 8 where droppable ones make room. (A
				// long-poll client's next poll acknowledges what it got, so
				// it stops polling meanwhile.)
				if hc, ok := c.(*httpClient); ok && hc.mode == "poll" {
					hc.paused.Store(true)
					defer hc.paused.Store(false)
				}
				for i := 1; i <= 30; i++ {
					prio := "droppable"
					if i%5 == 0 {
						prio = "critical"
					}
					body := fmt.Sprintf(`{"channel":%q,"data":%d,"priority":%q}`, ch, i, prio)
					if code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, body); code != 200 {
						t.Fatalf("publish: %d %v", code, out)
					}
				}
				if hc, ok := c.(*httpClient); ok {
					hc.paused.Store(false)
				}
				var got []float64
				for {
					m, ok := c.poll(1 * time.Second)
					if !ok {
						break
					}
					if m["type"] != "message" {
						continue
					}
					got = append(got, num(m["data"]))
					c.send(map[string]any{"type": "ack", "seq": num(m["seq"])})
				}
				crit := map[float64]bool{}
				for _, v := range got {
					if int(v)%5 == 0 {
						crit[v] = true
					}
				}
				if len(crit) != 6 || len(got) >= 30 {
					t.Fatalf("received %v: want all 6 critical and some droppable dropped", got)
				}
			})
			t.Run("heartbeat expiry", func(t *testing.T) {
				if kind == "ws" {
					t.Skip("covered by TestSilentClientClosedByHeartbeat (a WebSocket client answers pings by itself)")
				}
				n := startNode(t, func(c *server.Config) { // a node of its own: nothing else connected
					c.Heartbeat = server.HeartbeatConfig{Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond}
				})
				c, code, reply := openHTTP(t, n, kind, map[string]any{"type": "connect", "id": 1, "token": token(t, "eve", time.Hour, nil)})
				if code != 200 {
					t.Fatalf("open: %d %v", code, reply)
				}
				c.close() // stop polling / drop the stream
				// The session is expired and its resources freed (the node
				// holds no connection for eve any more)...
				eventually(t, "session expired", func() bool {
					_, st := apiCall(t, n, "GET", "/v1/api/stats", testAPIKey, "")
					return num(st["connections"]) == 0
				})
				// ...and, like a WebSocket session, it can be resumed within
				// session.ttl: the next request with its token brings it back.
				req, _ := http.NewRequest("POST", n.base+"/v1/poll?wait=0", strings.NewReader("[]"))
				req.Header.Set("Ferry-Session", c.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("poll after expiry within session.ttl: HTTP %d", resp.StatusCode)
				}
			})
		})
	}
}

func TestSSEReconnectWithLastEventIDLosesNothing(t *testing.T) {
	n := startNode(t, nil)
	c, code, _ := openHTTP(t, n, "sse", map[string]any{"type": "connect", "id": 1, "token": token(t, "sse", time.Hour, nil)},
		map[string]any{"type": "subscribe", "id": 2, "channel": "chat:sse"})
	if code != 200 {
		t.Fatal(code)
	}
	texpect(t, c, "subscribed")
	for i := 1; i <= 5; i++ {
		publishAPI(t, n, "chat:sse", i)
	}
	for i := 1; i <= 5; i++ {
		texpect(t, c, "message")
	}
	c.reconnectSSE()
	for i := 6; i <= 10; i++ {
		publishAPI(t, n, "chat:sse", i)
	}
	for want := 6; want <= 10; want++ {
		if m := texpect(t, c, "message"); num(m["data"]) != float64(want) {
			t.Fatalf("got %v want %d", m, want)
		}
	}
	// Pretend the last three never arrived: the stream replays them.
	c.mu.Lock()
	c.lastSeq -= 3
	c.mu.Unlock()
	c.reconnectSSE()
	for want := 8; want <= 10; want++ {
		if m := texpect(t, c, "message"); num(m["data"]) != float64(want) {
			t.Fatalf("replay: got %v want %d", m, want)
		}
	}
}

func TestHTTPFallbackBadInput(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxFrameBytes = 1024 })
	post := func(path, session, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", n.base+path, strings.NewReader(body))
		if session != "" {
			req.Header.Set("Ferry-Session", session)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	connect := fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "x", time.Hour, nil))
	tests := []struct {
		name, path, session, body string
		want                      int
	}{
		{"no connect first", "/v1/sessions", "", `{"type":"ping","id":1}`, 400},
		{"malformed body", "/v1/sessions", "", `{"type":`, 400},
		{"bad token", "/v1/sessions", "", `{"type":"connect","id":1,"token":"bad"}`, 401},
		{"expired token", "/v1/sessions", "", fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, expiredToken(t, "x")), 401},
		{"oversized body", "/v1/sessions", "", `{"type":"connect","id":1,"token":"` + strings.Repeat("x", 2000) + `"}`, 413},
		{"poll without session", "/v1/poll", "", `[]`, 401},
		{"poll with unknown session", "/v1/poll", "nope", `[]`, 404},
		{"send with unknown session", "/v1/send", "nope", `[]`, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := post(tc.path, tc.session, tc.body); code != tc.want {
				t.Fatalf("HTTP %d %s, want %d", code, body, tc.want)
			}
		})
	}
	code, body := post("/v1/sessions", "", connect)
	if code != 200 {
		t.Fatalf("open: %d %s", code, body)
	}
	var conn map[string]any
	_ = json.Unmarshal([]byte(body), &conn)
	sess, ticket := conn["session_token"].(string), conn["stream_ticket"].(string)
	if code, _ := post("/v1/poll", sess, `{"type":`); code != 400 {
		t.Fatalf("malformed poll body: %d", code)
	}
	if code, b := post("/v1/poll", sess, `{"type":"dance","id":4}`); code != 200 || !strings.Contains(b, `"code":400`) {
		t.Fatalf("unknown frame type: %d %s", code, b)
	}
	// A ticket is single-use; a reused or made-up one gets 401.
	get := func(url string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(n.base + "/v1/sse?ticket=" + ticket); code != 200 {
		t.Fatalf("first use of the ticket: %d", code)
	}
	if code := get(n.base + "/v1/sse?ticket=" + ticket); code != 401 {
		t.Fatalf("reused ticket: %d", code)
	}
	if code := get(n.base + "/v1/sse?ticket=AAAAAAAAAAAAAAAAAAAAAA"); code != 401 {
		t.Fatalf("unknown ticket: %d", code)
	}
	// A stream ticket does not open a WebSocket.
	if _, resp, err := dialPath(t, n, "/v1/ws?ticket="+ticket); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("stream ticket on /v1/ws: %v", resp)
	}
}

// An open SSE stream is kept alive by heartbeat comments (and a stream that
// takes them is never expired).
func TestSSEStreamGetsHeartbeats(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.Heartbeat = server.HeartbeatConfig{Interval: 300 * time.Millisecond, Timeout: 300 * time.Millisecond}
	})
	body := fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "hb", time.Hour, nil))
	open, err := http.Post(n.base+"/v1/sessions?transport=sse", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]any
	_ = json.NewDecoder(open.Body).Decode(&reply)
	open.Body.Close()
	if open.StatusCode != 200 {
		t.Fatalf("open: %d %v", open.StatusCode, reply)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/v1/sse?ticket="+reply["stream_ticket"].(string), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	beats := 0
	for beats < 3 && sc.Scan() {
		if sc.Text() == ": hb" {
			beats++
		}
	}
	if beats < 3 {
		t.Fatalf("stream ended after %d heartbeats: %v", beats, sc.Err())
	}
}
