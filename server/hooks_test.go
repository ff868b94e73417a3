package server_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/server"
)

const hookSecret = "hook-test-secret"

// hookBackend is a real HTTP back end in the test process that implements
// every hook; what it answers depends on the request (a client name, a
// channel, a method), so that one node meets every kind of answer.
type hookBackend struct {
	t   testing.TB
	srv *httptest.Server

	mu          sync.Mutex
	publishKeys map[string]int // publish hook calls by idempotency key
	events      []hooks.Event  // webhooks received, signatures verified
	badSigs     int
	refreshes   int
	release     chan struct{} // ends the slow answers
}

func newHookBackend(t testing.TB) *hookBackend {
	b := &hookBackend{t: t, publishKeys: map[string]int{}, release: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(func() {
		close(b.release) // before Close waits for the handlers
		b.srv.Close()
	})
	return b
}

func (b *hookBackend) url(path string) string { return b.srv.URL + path }

func (b *hookBackend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := hooks.Verify(hookSecret, r.Header.Get(hooks.HeaderSignature), body, time.Now(), time.Minute); err != nil {
		b.mu.Lock()
		b.badSigs++
		b.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var answer any
	var ask string // what the request asks for: "slow", "500", "bad", "huge", "deny" or other
	switch r.URL.Path {
	case "/connect":
		var req hooks.ConnectRequest
		_ = json.Unmarshal(body, &req)
		ask = req.Client
		answer = hooks.ConnectAnswer{User: "hooked-" + req.Client, Channels: []string{"hooked:auto"}, Info: json.RawMessage(`{"plan":"pro"}`)}
		switch ask {
		case "deny":
			answer = hooks.ConnectAnswer{Error: &hooks.Refusal{Code: 4003, Reason: "banned"}}
		case "short": // expires within seconds: the refresh hook decides
			answer = hooks.ConnectAnswer{User: "short", ExpiresAt: time.Now().Add(2 * time.Second).Unix(), Info: json.RawMessage(`{"n":1}`)}
		}
	case "/refresh":
		var req hooks.RefreshRequest
		_ = json.Unmarshal(body, &req)
		b.mu.Lock()
		b.refreshes++
		first := b.refreshes == 1
		b.mu.Unlock()
		// The first refresh extends by a few seconds, the next ends it.
		answer = hooks.RefreshAnswer{ExpiresAt: time.Now().Add(2 * time.Second).Unix()}
		if !first || string(req.Info) != `{"n":1}` || req.User != "short" {
			answer = hooks.RefreshAnswer{Error: &hooks.Refusal{Reason: "session over"}}
		}
	case "/subscribe":
		var req hooks.SubscribeRequest
		_ = json.Unmarshal(body, &req)
		ask = strings.TrimPrefix(req.Channel, "hooked:")
		answer = hooks.SubscribeAnswer{Info: json.RawMessage(`{"role":"bidder"}`)}
		if ask == "deny" {
			answer = hooks.SubscribeAnswer{Error: &hooks.Refusal{Code: 403, Reason: "not a bidder"}}
		}
	case "/publish":
		var req hooks.PublishRequest
		_ = json.Unmarshal(body, &req)
		b.mu.Lock()
		b.publishKeys[req.Key]++
		b.mu.Unlock()
		var bid struct {
			Amount int    `json:"amount"`
			Ask    string `json:"ask"`
		}
		_ = json.Unmarshal(req.Data, &bid)
		ask = bid.Ask
		switch {
		case bid.Amount < 10:
			answer = hooks.PublishAnswer{Error: &hooks.Refusal{Code: 409, Reason: "bid too low"}}
		case ask == "rewrite":
			answer = hooks.PublishAnswer{Data: json.RawMessage(`{"amount":` + itoa(bid.Amount) + `,"by":"` + req.User + `"}`)}
		default:
			answer = hooks.PublishAnswer{}
		}
	case "/rpc":
		var req hooks.RPCRequest
		_ = json.Unmarshal(body, &req)
		ask = strings.TrimPrefix(req.Method, "app.")
		data := string(req.Data)
		if data == "" {
			data = "null"
		}
		answer = hooks.RPCAnswer{Data: json.RawMessage(`{"echo":` + data + `,"user":"` + req.User + `"}`)}
		if ask == "deny" {
			answer = hooks.RPCAnswer{Error: &hooks.Refusal{Code: 403, Reason: "not yours"}}
		}
	case "/webhook":
		var ev hooks.Event
		if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get(hooks.HeaderEvent) != ev.Kind {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.events = append(b.events, ev)
		b.mu.Unlock()
		return
	}
	switch ask {
	case "slow":
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
		return
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case "bad":
		_, _ = w.Write([]byte(`{"user":`))
		return
	case "huge":
		_, _ = w.Write([]byte(`{"data":"` + strings.Repeat("x", 100_000) + `"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(answer)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// refusedURL is a loopback URL where nothing listens.
func refusedURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/down"
}

// startHookedNode starts a node whose every hook goes to b; "hooked" is a
// namespace with subscribe and publish hooks, rpc methods "app.*" go to
// b and "down.*" to an address where nothing listens.
func startHookedNode(t testing.TB, b *hookBackend, mutate func(*server.Config)) *node {
	t.Helper()
	down := refusedURL(t)
	return startNode(t, func(c *server.Config) {
		c.Namespaces["hooked"] = server.Namespace{
			HistorySize: 10, Subscribe: true, Publish: true,
			SubscribeHook: b.url("/subscribe"), PublishHook: b.url("/publish"),
		}
		c.Hooks = server.HooksConfig{
			Connect: b.url("/connect"),
			Refresh: b.url("/refresh"),
			RPC:     map[string]string{"app.": b.url("/rpc"), "down.": down},
			// Long enough that a loaded machine answers every other
			// case in time; the slow cases wait it out.
			Timeout: 2 * time.Second,
			Secret:  hookSecret,
			Webhook: b.url("/webhook"),
			// A breaker that never opens here: each case must reach the
			// back end.
			BreakerFailures: 1000,
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// hookConnect dials without a token and sends connect with client name
// (which the back end reads as what to answer).
func hookConnect(t *testing.T, n *node, name string) *client {
	t.Helper()
	cl, _, err := dial(t, n, dialOpts{})
	if err != nil {
		t.Fatal(err)
	}
	cl.send(map[string]any{"type": "connect", "id": 1, "client": name})
	return cl
}

func TestConnectHook(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)

	t.Run("allow", func(t *testing.T) {
		cl := hookConnect(t, n, "alice")
		if f := cl.expect("connected"); f["user"] != "hooked-alice" {
			t.Fatalf("connected %v", f)
		}
		// The channel the back end named is subscribed server-side.
		if f := cl.expect("subscribed"); f["channel"] != "hooked:auto" || f["id"] != nil {
			t.Fatalf("server-side subscription: %v", f)
		}
	})
	for _, tc := range []struct {
		name     string
		code     int
		reconnec bool
	}{
		{"deny", 4003, false},
		{"slow", 4017, true},
		{"500", 4017, true},
		{"bad", 4017, true},
		{"huge", 4017, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := hookConnect(t, n, tc.name)
			f := cl.expect("disconnect")
			if int(num(f["code"])) != tc.code || f["reconnect"] != tc.reconnec {
				t.Fatalf("disconnect %v, want code %d", f, tc.code)
			}
			if tc.code == 4017 && num(f["retry_after_ms"]) != 5000 {
				t.Errorf("retry_after_ms %v, want 5000", f["retry_after_ms"])
			}
			if code, _ := cl.closed(); int(code) != tc.code {
				t.Errorf("closed with %d, want %d", code, tc.code)
			}
		})
	}
	t.Run("a token skips the hook", func(t *testing.T) {
		connectClient(t, n, "bob") // connected as the token's user
	})
	t.Run("still serving", func(t *testing.T) {
		hookConnect(t, n, "carol").expect("connected")
	})
}

func TestConnectHookDown(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, func(c *server.Config) { c.Hooks.Connect = refusedURL(t) })
	cl := hookConnect(t, n, "alice")
	f := cl.expect("disconnect")
	if num(f["code"]) != 4017 || f["reconnect"] != true || num(f["retry_after_ms"]) != 5000 {
		t.Fatalf("disconnect %v, want 4017 with retry_after_ms", f)
	}
	// Token clients are not affected.
	connectClient(t, n, "bob")
}

func TestSubscribeHook(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	cl := connectClient(t, n, "alice")
	for i, tc := range []struct {
		channel string
		want    string // reply type
		code    int
	}{
		{"hooked:ok", "subscribed", 0},
		{"hooked:deny", "error", 403},
		{"hooked:slow", "error", 504},
		{"hooked:500", "error", 503},
		{"hooked:bad", "error", 502},
		{"hooked:huge", "error", 502},
		{"chat:nohook", "subscribed", 0},
	} {
		r := cl.request(map[string]any{"type": "subscribe", "id": 10 + i, "channel": tc.channel})
		if r["type"] != tc.want || (tc.code != 0 && int(num(r["code"])) != tc.code) {
			t.Errorf("%s: %v, want %s %d", tc.channel, r, tc.want, tc.code)
		}
	}
}

func TestPublishHook(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	alice := connectClient(t, n, "alice")
	bob := connectClient(t, n, "bob") // a subscriber
	if r := bob.request(map[string]any{"type": "subscribe", "id": 2, "channel": "hooked:lot"}); r["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", r)
	}
	pub := func(id int, data any, key string) map[string]any {
		f := map[string]any{"type": "publish", "id": id, "channel": "hooked:lot", "data": data}
		if key != "" {
			f["key"] = key
		}
		return alice.request(f)
	}
	t.Run("refuse", func(t *testing.T) {
		if r := pub(3, map[string]any{"amount": 5}, ""); r["type"] != "error" || num(r["code"]) != 409 || !strings.Contains(r["reason"].(string), "bid too low") {
			t.Fatalf("low bid: %v", r)
		}
	})
	t.Run("rewrite", func(t *testing.T) {
		if r := pub(4, map[string]any{"amount": 20, "ask": "rewrite"}, ""); r["type"] != "published" {
			t.Fatalf("publish: %v", r)
		}
		m := bob.expect("message")
		if d, _ := json.Marshal(m["data"]); string(d) != `{"amount":20,"by":"alice"}` {
			t.Fatalf("subscriber got %s, want the back end's rewrite", d)
		}
	})
	t.Run("retried idempotent publish is judged once", func(t *testing.T) {
		r1 := pub(5, map[string]any{"amount": 30}, "bid-1")
		r2 := pub(6, map[string]any{"amount": 30}, "bid-1")
		if r1["type"] != "published" || r2["type"] != "published" || r2["duplicate"] != true {
			t.Fatalf("first %v, retry %v", r1, r2)
		}
		b.mu.Lock()
		calls := b.publishKeys["bid-1"]
		b.mu.Unlock()
		if calls != 1 {
			t.Fatalf("publish hook called %d times for one key, want 1", calls)
		}
		// A refused one is refused again without a second call.
		pub(7, map[string]any{"amount": 1}, "bid-2")
		if r := pub(8, map[string]any{"amount": 1}, "bid-2"); num(r["code"]) != 409 {
			t.Fatalf("retry of a refused publish: %v", r)
		}
		b.mu.Lock()
		calls = b.publishKeys["bid-2"]
		b.mu.Unlock()
		if calls != 1 {
			t.Fatalf("publish hook called %d times for a refused key, want 1", calls)
		}
	})
	t.Run("failures", func(t *testing.T) {
		for i, tc := range []struct {
			ask  string
			code int
		}{{"slow", 504}, {"500", 503}, {"bad", 502}, {"huge", 502}} {
			if r := pub(20+i, map[string]any{"amount": 50, "ask": tc.ask}, ""); r["type"] != "error" || int(num(r["code"])) != tc.code {
				t.Errorf("%s: %v, want error %d", tc.ask, r, tc.code)
			}
		}
		if r := pub(30, map[string]any{"amount": 50}, ""); r["type"] != "published" {
			t.Fatalf("after the failures: %v", r)
		}
	})
}

func TestPublishHookDown(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, func(c *server.Config) {
		ns := c.Namespaces["hooked"]
		ns.PublishHook = refusedURL(t)
		c.Namespaces["hooked"] = ns
	})
	cl := connectClient(t, n, "alice")
	r := cl.request(map[string]any{"type": "publish", "id": 2, "channel": "hooked:lot", "data": map[string]any{"amount": 50}})
	if r["type"] != "error" || num(r["code"]) != 503 || r["retry"] != true {
		t.Fatalf("publish with the back end down: %v, want error 503", r)
	}
}

// TestRPCOverEveryTransport: rpc answered by the back end, and each
// failure with its documented code, over WebSocket, SSE + send and
// long-poll.
func TestRPCOverEveryTransport(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	for _, kind := range transportsUnderTest {
		t.Run(kind, func(t *testing.T) {
			c := openAny(t, n, kind, "alice", nil)
			r := treq(t, c, map[string]any{"type": "rpc", "id": 2, "method": "app.echo", "data": map[string]any{"q": 1}})
			if r["type"] != "rpc.result" {
				t.Fatalf("rpc: %v", r)
			}
			if d, _ := json.Marshal(r["data"]); string(d) != `{"echo":{"q":1},"user":"alice"}` {
				t.Fatalf("rpc.result data %s", d)
			}
			for i, tc := range []struct {
				method string
				code   int
			}{
				{"app.deny", 403}, {"app.slow", 504}, {"app.500", 503}, {"app.bad", 502},
				{"app.huge", 502}, {"down.x", 503}, {"nowhere", 404},
			} {
				r := treq(t, c, map[string]any{"type": "rpc", "id": 10 + i, "method": tc.method, "data": 1})
				if r["type"] != "error" || int(num(r["code"])) != tc.code {
					t.Errorf("%s: %v, want error %d", tc.method, r, tc.code)
				}
			}
			if r := treq(t, c, map[string]any{"type": "rpc", "id": 30, "method": "app.again"}); r["type"] != "rpc.result" {
				t.Fatalf("rpc after the failures: %v", r)
			}
		})
	}
}

func TestWebhooksSigned(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	cl := connectClient(t, n, "alice")
	cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "hooked:w"})
	cl.request(map[string]any{"type": "unsubscribe", "id": 3, "channel": "hooked:w"})
	cl.close()
	want := []string{hooks.EventConnectionOpened, hooks.EventSubscribed, hooks.EventUnsubscribed, hooks.EventConnectionClosed}
	eventually(t, "the webhooks", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		seen := map[string]bool{}
		for _, ev := range b.events {
			if ev.User == "alice" {
				seen[ev.Kind] = true
			}
		}
		for _, k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.badSigs != 0 {
		t.Errorf("%d requests with a bad signature", b.badSigs)
	}
	for _, ev := range b.events {
		if ev.Kind == hooks.EventSubscribed && string(ev.Info) != `{"role":"bidder"}` {
			t.Errorf("subscribed event info %s, want the subscribe hook's", ev.Info)
		}
		if ev.Node != "n1" || ev.Conn == "" || ev.Time == 0 {
			t.Errorf("event %+v lacks node, conn or time", ev)
		}
	}
}

// TestRefreshHook: a connection the connect hook gave an expiry is
// extended by the refresh hook once, then ended by it with 4015.
func TestRefreshHook(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	cl := hookConnect(t, n, "short")
	cl.expect("connected")
	f := cl.expect("disconnect")
	if num(f["code"]) != 4015 || !strings.Contains(f["reason"].(string), "session over") {
		t.Fatalf("disconnect %v, want 4015 from the refresh hook", f)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refreshes != 2 {
		t.Errorf("refresh hook called %d times, want 2 (extend, then end)", b.refreshes)
	}
}

// TestConnectHookOverHTTP: the connect hook decides HTTP-fallback
// sessions too.
func TestConnectHookOverHTTP(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, nil)
	for _, mode := range []string{"sse", "poll"} {
		t.Run(mode, func(t *testing.T) {
			c, code, reply := openHTTP(t, n, mode, map[string]any{"type": "connect", "id": 1, "client": "dave"})
			if code != 200 || reply["user"] != "hooked-dave" {
				t.Fatalf("open: HTTP %d %v", code, reply)
			}
			if f := texpect(t, c, "subscribed"); f["channel"] != "hooked:auto" {
				t.Fatalf("server-side subscription: %v", f)
			}
			_, code, reply = openHTTP(t, n, mode, map[string]any{"type": "connect", "id": 1, "client": "deny"})
			if code == 200 {
				t.Fatalf("a refused connect opened a session: %v", reply)
			}
			if code != http.StatusForbidden {
				t.Fatalf("refused connect: HTTP %d %v, want 403", code, reply)
			}
		})
	}
}

// TestConnectHookDownOverHTTP: with the back end down, opening an HTTP
// session is answered 503 with Retry-After.
func TestConnectHookDownOverHTTP(t *testing.T) {
	b := newHookBackend(t)
	n := startHookedNode(t, b, func(c *server.Config) { c.Hooks.Connect = refusedURL(t) })
	body := strings.NewReader(`{"type":"connect","id":1}`)
	resp, err := http.Post(n.base+"/v1/sessions?transport=poll", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Fatalf("HTTP %d, Retry-After %q; want 503 with Retry-After 5", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestWebhookUploadDone: a verified upload is told to the back end as a
// signed upload.done event carrying the upload's id, size and hash.
func TestWebhookUploadDone(t *testing.T) {
	b := newHookBackend(t)
	dir := t.TempDir()
	n := startHookedNode(t, b, func(c *server.Config) { c.Uploads.Dir = dir })
	f := newUploadFile(t, 10_000)
	cl := connectClient(t, n, "ann")
	ready := cl.request(map[string]any{"type": "upload.begin", "id": 2, "name": "a.bin", "size": len(f.data), "sha256": f.sum})
	id, _ := ready["upload"].(string)
	if ready["type"] != "upload.ready" || id == "" {
		t.Fatalf("begin: %v", ready)
	}
	if p := cl.request(map[string]any{"type": "upload.chunk", "id": 3, "upload": id, "offset": 0, "data": b64(f.data)}); p["type"] != "upload.progress" {
		t.Fatalf("chunk: %v", p)
	}
	if d := cl.request(map[string]any{"type": "upload.commit", "id": 4, "upload": id}); d["type"] != "upload.done" {
		t.Fatalf("commit: %v", d)
	}
	var got *hooks.Event
	eventually(t, "the upload.done webhook", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for i := range b.events {
			if b.events[i].Kind == hooks.EventUploadDone {
				got = &b.events[i]
				return true
			}
		}
		return false
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if got.User != "ann" || got.Upload == nil || got.Upload.ID != id || got.Upload.Size != int64(len(f.data)) || got.Upload.SHA256 != f.sum || got.Upload.Name != "a.bin" {
		t.Errorf("upload.done event %+v (upload %+v), want ann's %s of %d bytes", got, got.Upload, id, len(f.data))
	}
	if b.badSigs != 0 {
		t.Errorf("%d requests with a bad signature", b.badSigs)
	}
}
