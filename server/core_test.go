package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

func decodeMsgpackFrames(t testing.TB, b []byte) []map[string]any {
	var v any
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeMap() })
	if err := dec.Decode(&v); err != nil {
		t.Errorf("bad msgpack from server: %v", err)
		return nil
	}
	var out []map[string]any
	switch x := v.(type) {
	case map[string]any:
		out = append(out, x)
	case []any:
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// The newcomer's path: subscribe over WebSocket, publish through the API,
// see offsets 1 then 2.
func TestSubscribeThenAPIPublish(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "alice")
	r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:lobby"})
	if r["type"] != "subscribed" || num(r["offset"]) != 0 {
		t.Fatalf("subscribe reply: %v", r)
	}
	for want := 1; want <= 2; want++ {
		rep := publishAPI(t, n, "chat:lobby", map[string]any{"text": fmt.Sprint("hello ", want)})
		if num(rep["offset"]) != float64(want) {
			t.Fatalf("publish reply %v, want offset %d", rep, want)
		}
		m := cl.expect("message")
		if m["channel"] != "chat:lobby" || num(m["offset"]) != float64(want) || num(m["seq"]) != float64(want) {
			t.Fatalf("message %d: %v", want, m)
		}
		if data, _ := m["data"].(map[string]any); data["text"] != fmt.Sprint("hello ", want) {
			t.Fatalf("message data: %v", m["data"])
		}
	}
}

func TestClientPublishReachesOtherSubscribers(t *testing.T) {
	n := startNode(t, nil)
	subs := make([]*client, 3)
	for i := range subs {
		subs[i] = connectClient(t, n, fmt.Sprint("sub", i))
		subs[i].request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:room"})
	}
	pub := connectClient(t, n, "bob")
	r := pub.request(map[string]any{"type": "publish", "id": 7, "channel": "chat:room", "data": []int{1, 2, 3}, "priority": "critical"})
	if r["type"] != "published" || num(r["offset"]) != 1 || r["duplicate"] != false {
		t.Fatalf("published: %v", r)
	}
	for _, s := range subs {
		m := s.expect("message")
		if m["from"] != "bob" || m["priority"] != "critical" || num(m["offset"]) != 1 {
			t.Fatalf("message: %v", m)
		}
	}
}

func TestMsgpackSubprotocol(t *testing.T) {
	n := startNode(t, nil)
	cl, resp, err := dial(t, n, dialOpts{subprotocol: protocol.SubprotocolMsgpack})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != protocol.SubprotocolMsgpack {
		t.Fatalf("subprotocol %q", got)
	}
	send := func(v map[string]any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.c.Write(t.Context(), websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "connect", "id": 1, "token": token(t, "mp", time.Hour, nil)})
	cl.expect("connected")
	send(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:mp"})
	cl.expect("subscribed")
	send(map[string]any{"type": "publish", "id": 3, "channel": "chat:mp", "data": map[string]any{"n": 42, "s": "x"}})
	m := cl.expect("message")
	data, _ := m["data"].(map[string]any)
	if num(data["n"]) != 42 || data["s"] != "x" {
		t.Fatalf("msgpack message data: %#v", m)
	}
	// A JSON subscriber sees the same publication as JSON.
	js := connectClient(t, n, "js")
	js.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:mp"})
	send(map[string]any{"type": "publish", "id": 4, "channel": "chat:mp", "data": "both"})
	if m := js.expect("message"); m["data"] != "both" {
		t.Fatalf("json subscriber got %v", m)
	}
}

func TestHistoryAndPresenceFrames(t *testing.T) {
	n := startNode(t, nil)
	a := connectClient(t, n, "alice")
	a.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:h"})
	var epoch any
	for i := 0; i < 5; i++ {
		epoch = publishAPI(t, n, "chat:h", i)["epoch"]
	}
	h := a.request(map[string]any{"type": "history", "id": 3, "channel": "chat:h", "since": map[string]any{"offset": 2, "epoch": epoch}, "limit": 2})
	msgs, _ := h["messages"].([]any)
	if h["type"] != "history" || len(msgs) != 2 || num(msgs[0].(map[string]any)["offset"]) != 3 || num(h["offset"]) != 5 {
		t.Fatalf("history: %v", h)
	}
	b := connectClient(t, n, "bob")
	b.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:h", "presence": true})
	p := a.request(map[string]any{"type": "presence", "id": 4, "channel": "chat:h"})
	if p["type"] != "presence" || num(p["count"]) != 2 {
		t.Fatalf("presence: %v", p)
	}
	// bob asked for presence events: alice leaving shows up.
	a.close()
	for {
		f := b.next()
		if f["type"] == "leave" && f["user"] == "alice" {
			break
		}
	}
	code, out := apiCall(t, n, "GET", "/v1/api/presence?channel=chat:h", testAPIKey, "")
	if code != 200 || num(out["count"]) != 1 {
		t.Fatalf("API presence: %d %v", code, out)
	}
}

func TestBadInput(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxFrameBytes = 1024 })
	t.Run("malformed JSON closes 4014", func(t *testing.T) {
		cl := connectClient(t, n, "u1")
		cl.sendRaw([]byte(`{"type": "ping", "id": `))
		if code, reason := cl.closed(); code != protocol.CloseProtocolError {
			t.Fatalf("close %d %q", code, reason)
		}
	})
	t.Run("unknown frame type gets 400 and the connection stays", func(t *testing.T) {
		cl := connectClient(t, n, "u2")
		r := cl.request(map[string]any{"type": "dance", "id": 9})
		if r["type"] != "error" || num(r["code"]) != 400 || !strings.Contains(fmt.Sprint(r["reason"]), "dance") {
			t.Fatalf("reply: %v", r)
		}
		if r := cl.request(map[string]any{"type": "ping", "id": 10}); r["type"] != "pong" {
			t.Fatalf("after error: %v", r)
		}
	})
	t.Run("missing id", func(t *testing.T) {
		cl := connectClient(t, n, "u3")
		cl.send(map[string]any{"type": "subscribe", "channel": "chat:x"})
		f := cl.next()
		if f["type"] != "error" || num(f["code"]) != 400 || !strings.Contains(fmt.Sprint(f["reason"]), "id") {
			t.Fatalf("reply: %v", f)
		}
	})
	t.Run("frames before connect", func(t *testing.T) {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		r := cl.request(map[string]any{"type": "subscribe", "id": 3, "channel": "chat:x"})
		if r["type"] != "error" || num(r["code"]) != 401 {
			t.Fatalf("reply: %v", r)
		}
	})
	t.Run("subscribe not allowed", func(t *testing.T) {
		cl := connectClient(t, n, "u4")
		r := cl.request(map[string]any{"type": "subscribe", "id": 3, "channel": "private:x"})
		if r["type"] != "error" || num(r["code"]) != 403 {
			t.Fatalf("reply: %v", r)
		}
		if r := cl.request(map[string]any{"type": "subscribe", "id": 4, "channel": "chat:ok"}); r["type"] != "subscribed" {
			t.Fatalf("connection disturbed: %v", r)
		}
	})
	t.Run("publish where the namespace forbids it", func(t *testing.T) {
		cl := connectClient(t, n, "u5")
		r := cl.request(map[string]any{"type": "publish", "id": 3, "channel": "news:x", "data": 1})
		if r["type"] != "error" || num(r["code"]) != 403 {
			t.Fatalf("reply: %v", r)
		}
	})
	t.Run("unknown namespace", func(t *testing.T) {
		cl := connectClient(t, n, "u6")
		r := cl.request(map[string]any{"type": "subscribe", "id": 3, "channel": "nope:x"})
		if r["type"] != "error" || num(r["code"]) != 404 {
			t.Fatalf("reply: %v", r)
		}
	})
	t.Run("oversized frame closes 4009", func(t *testing.T) {
		cl := connectClient(t, n, "u7")
		cl.sendRaw([]byte(`{"type":"publish","id":3,"channel":"chat:x","data":"` + strings.Repeat("x", 2000) + `"}`))
		if code, reason := cl.closed(); code != protocol.CloseTooBig {
			t.Fatalf("close %d %q", code, reason)
		}
	})
	t.Run("bad token closes 4001", func(t *testing.T) {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		cl.send(map[string]any{"type": "connect", "id": 1, "token": "not.a.jwt"})
		if code, _ := cl.closed(); code != protocol.CloseUnauthorized {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("expired token closes 4015", func(t *testing.T) {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		cl.send(map[string]any{"type": "connect", "id": 1, "token": expiredToken(t, "old")})
		if code, _ := cl.closed(); code != protocol.CloseTokenExpired {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("bad token in the header gets 401 before the upgrade", func(t *testing.T) {
		_, resp, err := dial(t, n, dialOpts{header: http.Header{"Authorization": {"Bearer garbage"}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("err %v resp %v", err, resp)
		}
	})
	t.Run("API without key, wrong key, bad JSON", func(t *testing.T) {
		if code, _ := apiCall(t, n, "POST", "/v1/api/publish", "", `{"channel":"chat:x","data":1}`); code != 401 {
			t.Fatalf("no key: %d", code)
		}
		if code, _ := apiCall(t, n, "POST", "/v1/api/publish", "wrong", `{"channel":"chat:x","data":1}`); code != 401 {
			t.Fatalf("wrong key: %d", code)
		}
		code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, `{"channel":`)
		errObj, _ := out["error"].(map[string]any)
		if code != 400 || errObj == nil || !strings.Contains(fmt.Sprint(errObj["reason"]), "JSON") {
			t.Fatalf("bad JSON: %d %v", code, out)
		}
		code, out = apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, `{"channel":"chat:x"}`)
		if code != 400 {
			t.Fatalf("no data: %d %v", code, out)
		}
	})
	t.Run("a refused request loses nothing already accepted", func(t *testing.T) {
		sub := connectClient(t, n, "watcher")
		sub.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:keep"})
		publishAPI(t, n, "chat:keep", "one")
		bad := connectClient(t, n, "u8")
		bad.sendRaw([]byte(`nonsense`))
		bad.closed()
		publishAPI(t, n, "chat:keep", "two")
		for _, want := range []string{"one", "two"} {
			if m := sub.expect("message"); m["data"] != want {
				t.Fatalf("got %v want %s", m, want)
			}
		}
	})
}

func TestPerUserConnectionLimit(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxConnectionsPerUser = 5 })
	var conns []*client
	for i := 0; i < 5; i++ {
		conns = append(conns, connectClient(t, n, "tabby"))
	}
	conns = append(conns, connectClient(t, n, "tabby"))
	if code, reason := conns[0].closed(); code != protocol.CloseEvicted {
		t.Fatalf("oldest: close %d %q", code, reason)
	}
	for _, c := range conns[1:] {
		if r := c.request(map[string]any{"type": "ping", "id": 5}); r["type"] != "pong" {
			t.Fatalf("others disturbed: %v", r)
		}
	}
}

func TestIdempotentPublish(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "alice")
	var wg sync.WaitGroup
	results := make([]map[string]any, 10)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			b := `{"channel":"chat:idem","data":{"pay":1},"key":"order-17"}`
			_, results[i] = apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, b)
		}(i)
	}
	wg.Wait()
	dups := 0
	for _, r := range results {
		if num(r["offset"]) != 1 {
			t.Fatalf("reply %v: want offset 1", r)
		}
		if r["duplicate"] == true {
			dups++
		}
	}
	if dups != 9 {
		t.Fatalf("%d duplicates, want 9", dups)
	}
	r := cl.request(map[string]any{"type": "publish", "id": 3, "channel": "chat:idem", "data": 2, "key": "order-17"})
	if r["duplicate"] != true || num(r["offset"]) != 1 {
		t.Fatalf("client retry: %v", r)
	}
}

func TestGracefulShutdownSends4013(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "alice")
	go func() { _ = n.srv.Shutdown(t.Context()) }()
	d := cl.expect("disconnect")
	if num(d["code"]) != protocol.CloseDraining || d["reconnect"] != true {
		t.Fatalf("disconnect: %v", d)
	}
	if code, _ := cl.closed(); code != protocol.CloseDraining {
		t.Fatalf("close %d", code)
	}
	resp, err := http.Get(n.base + "/readyz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("readyz while draining: %d", resp.StatusCode)
		}
	}
}

func TestRecoveryAfterReconnect(t *testing.T) {
	n := startNode(t, nil)
	cl := connectClient(t, n, "alice")
	r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:rec"})
	publishAPI(t, n, "chat:rec", 0)
	m := cl.expect("message")
	epoch := m["epoch"]
	cl.close()
	for i := 1; i <= 1000; i++ {
		publishAPI(t, n, "chat:rec", i)
	}
	_ = r
	cl2 := connectClient(t, n, "alice")
	rep := cl2.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:rec", "since": map[string]any{"offset": num(m["offset"]), "epoch": epoch}})
	if rep["recovered"] != true || num(rep["missed"]) != 0 || num(rep["offset"]) != 1001 {
		t.Fatalf("subscribed: %v", rep)
	}
	for want := 2; want <= 1001; want++ {
		m := cl2.expect("message")
		if num(m["offset"]) != float64(want) || num(m["data"]) != float64(want-1) {
			t.Fatalf("message %v, want offset %d", m, want)
		}
	}
}

func TestResumeSession(t *testing.T) {
	n := startNode(t, nil)
	cl, _, err := dial(t, n, dialOpts{})
	if err != nil {
		t.Fatal(err)
	}
	cl.send(map[string]any{"type": "connect", "id": 1, "token": token(t, "alice", time.Hour, nil)})
	c := cl.expect("connected")
	cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:res"})
	publishAPI(t, n, "chat:res", "a")
	cl.expect("message")
	cl.close()
	eventually(t, "old connection gone", func() bool {
		code, st := apiCall(t, n, "GET", "/v1/api/stats", testAPIKey, "")
		return code == 200 && num(st["connections"]) == 0
	})
	publishAPI(t, n, "chat:res", "b")
	publishAPI(t, n, "chat:res", "c")

	// Another user cannot use alice's resume token.
	thief, _, _ := dial(t, n, dialOpts{})
	thief.send(map[string]any{"type": "connect", "id": 1, "token": token(t, "mallory", time.Hour, nil),
		"resume": map[string]any{"session": c["session"], "token": c["resume_token"]}})
	if f := thief.expect("connected"); f["resumed"] != false {
		t.Fatalf("thief resumed: %v", f)
	}

	back, _, _ := dial(t, n, dialOpts{})
	back.send(map[string]any{"type": "connect", "id": 1, "token": token(t, "alice", time.Hour, nil),
		"resume": map[string]any{"session": c["session"], "token": c["resume_token"]}})
	f := back.expect("connected")
	if f["resumed"] != true || f["session"] != c["session"] {
		t.Fatalf("not resumed: %v", f)
	}
	s := back.expect("subscribed")
	if s["channel"] != "chat:res" || s["recovered"] != true {
		t.Fatalf("restored subscription: %v", s)
	}
	for _, want := range []string{"b", "c"} {
		if m := back.expect("message"); m["data"] != want {
			t.Fatalf("replayed %v, want %s", m, want)
		}
	}
}

// Acks decide where a resume replays from, also when the client acked on an
// earlier connection of the same session and not on the last one.
func TestResumeUsesAcksAcrossConnections(t *testing.T) {
	n := startNode(t, nil)
	conn := func(resume map[string]any) (*client, map[string]any) {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		f := map[string]any{"type": "connect", "id": 1, "token": token(t, "acker", time.Hour, nil)}
		if resume != nil {
			f["resume"] = resume
		}
		cl.send(f)
		return cl, cl.expect("connected")
	}
	c1, info := conn(nil)
	c1.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:ack"})
	publishAPI(t, n, "chat:ack", "m1")
	m := c1.expect("message")
	c1.send(map[string]any{"type": "ack", "seq": m["seq"]})
	c1.request(map[string]any{"type": "ping", "id": 3}) // the ack is processed
	c1.close()
	eventually(t, "c1 gone", func() bool { return n.srv.Stats().Connections == 0 })

	c2, info2 := conn(map[string]any{"session": info["session"], "token": info["resume_token"]})
	if info2["resumed"] != true {
		t.Fatalf("not resumed: %v", info2)
	}
	c2.expect("subscribed")
	publishAPI(t, n, "chat:ack", "m2")
	if m := c2.expect("message"); m["data"] != "m2" { // m1 was acked: not replayed
		t.Fatalf("after resume 1: %v", m)
	}
	c2.close() // m2 written but never acked
	eventually(t, "c2 gone", func() bool { return n.srv.Stats().Connections == 0 })

	c3, info3 := conn(map[string]any{"session": info2["session"], "token": info2["resume_token"]})
	if info3["resumed"] != true {
		t.Fatalf("not resumed: %v", info3)
	}
	if m := c3.expect("message"); m["data"] != "m2" {
		t.Fatalf("after resume 2 the unacked m2 must come again: %v", m)
	}
}

// TestPerUserConnectionLimitOff: max_connections_per_user 0 is no cap: a
// user's connections beyond the default 5 all stay open.
func TestPerUserConnectionLimitOff(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxConnectionsPerUser = 0 })
	var conns []*client
	for i := 0; i < 8; i++ {
		conns = append(conns, connectClient(t, n, "tabby"))
	}
	for i, c := range conns {
		if r := c.request(map[string]any{"type": "ping", "id": 5}); r["type"] != "pong" {
			t.Fatalf("connection %d: %v, want pong (nothing evicted)", i, r)
		}
	}
}
