package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker/open"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/server"
)

// A long-poll client whose every request lands on another node (as behind
// a round-robin balancer) loses nothing: each node adopts the session from
// the broker and replays what the client has not confirmed.
func TestLongPollAcrossNodesLosesNothing(t *testing.T) {
	rs := redistest.Start(t)
	shared := func(id string) func(*server.Config) {
		return func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = id }
	}
	nodes := []*node{startNode(t, shared("a")), startNode(t, shared("b")), startNode(t, shared("c"))}
	body := fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:rr"}]`, token(t, "rr", time.Hour, nil))
	resp, err := http.Post(nodes[0].base+"/v1/sessions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	var conn map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&conn)
	resp.Body.Close()
	tok, _ := conn["session_token"].(string)
	if tok == "" {
		t.Fatalf("open: %v", conn)
	}
	const total = 60
	seen := map[float64]bool{}
	var last uint64
	published := 0
	for round := 0; len(seen) < total && round < 400; round++ {
		if published < total {
			for i := 0; i < 3 && published < total; i++ {
				published++
				publishAPI(t, nodes[published%3], "chat:rr", published)
			}
		}
		n := nodes[round%3]
		req, _ := http.NewRequest("POST", n.base+"/v1/poll?wait=50", nil)
		req.Header.Set("Ferry-Session", tok)
		req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("poll on node %d: HTTP %d %s", round%3, resp.StatusCode, b)
		}
		var frames []map[string]any
		if err := json.Unmarshal(b, &frames); err != nil {
			t.Fatalf("poll reply: %v: %s", err, b)
		}
		for _, f := range frames {
			if f["type"] == "disconnect" {
				t.Fatalf("disconnected: %v", f)
			}
			if f["type"] != "message" {
				continue
			}
			last = uint64(num(f["seq"]))
			seen[num(f["offset"])] = true
		}
	}
	for off := 1; off <= total; off++ {
		if !seen[float64(off)] {
			t.Fatalf("offset %d never arrived (got %d of %d)", off, len(seen), total)
		}
	}
}

// A long-poll session whose node dies without a word (SIGKILL: no
// takeover answer, no final state saved) is adopted by another node with
// its subscriptions: the polls there deliver what is published after the
// subscribe. Node a "dies" by losing its broker, which is what the other
// nodes see of a killed process.
func TestLongPollAdoptedFromDeadNodeDelivers(t *testing.T) {
	a, b, ba := nodesOneMortal(t)
	body := fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:dead"}]`, token(t, "dd", time.Hour, nil))
	resp, err := http.Post(a.base+"/v1/sessions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	var conn map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&conn)
	resp.Body.Close()
	tok, _ := conn["session_token"].(string)
	if tok == "" {
		t.Fatalf("open: %v", conn)
	}
	poll := func(n *node, last string) []map[string]any {
		t.Helper()
		b := postSession(t, n.base+"/v1/poll?wait=200", tok, last, "")
		var frames []map[string]any
		if err := json.Unmarshal(b, &frames); err != nil {
			t.Fatalf("poll reply: %v: %s", err, b)
		}
		return frames
	}
	poll(a, "0") // the subscribed reply
	publishAPI(t, b, "chat:dead", 1)
	got := map[float64]bool{}
	for _, f := range poll(a, "0") {
		if f["type"] == "message" {
			got[num(f["offset"])] = true
		}
	}
	if !got[1] {
		t.Fatalf("node a did not deliver offset 1")
	}
	_ = ba.Close() // node a is gone for the cluster
	publishAPI(t, b, "chat:dead", 2)
	publishAPI(t, b, "chat:dead", 3)
	for i := 0; i < 20 && !(got[2] && got[3]); i++ {
		for _, f := range poll(b, "") {
			if f["type"] == "message" {
				got[num(f["offset"])] = true
			}
		}
	}
	if !got[2] || !got[3] {
		t.Fatalf("after adoption from a dead node: offsets %v, want 2 and 3", got)
	}
}

// An SSE stream cut before the client ever sent Last-Event-ID, re-opened
// on another node with the seq of the last event it got: the new node
// adopts the session and replays what the cut stream wrote after that
// event (the client never got it). The SSE session keeps no per-seq
// record before its first Last-Event-ID, so the replay may start earlier
// (duplicates, dropped by offset), never later.
func TestSSEFirstCutAdoptedElsewhereReplays(t *testing.T) {
	rs := redistest.Start(t)
	a := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "a" })
	b := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "b" })
	body := fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:first"}]`, token(t, "fc", time.Hour, nil))
	resp, err := http.Post(a.base+"/v1/sessions?transport=sse", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	var conn map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&conn)
	resp.Body.Close()
	tok, _ := conn["session_token"].(string)
	ticket, _ := conn["stream_ticket"].(string)
	if tok == "" || ticket == "" {
		t.Fatalf("open: %v", conn)
	}
	for i := 1; i <= 5; i++ {
		publishAPI(t, a, "chat:first", i)
	}
	// read opens a stream and returns the messages' offsets and the last
	// seq once the message at offset want came.
	read := func(n *node, ticket string, last int64, want int) (offs []float64, seq int64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp := sseGet(ctx, t, n, ticket, last)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for (len(offs) == 0 || offs[len(offs)-1] < float64(want)) && sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var f map[string]any
			_ = json.Unmarshal([]byte(data), &f)
			if f["type"] == "message" {
				offs = append(offs, num(f["offset"]))
				seq = int64(num(f["seq"]))
			}
		}
		return offs, seq
	}
	offs, seq := read(a, ticket, -1, 2) // the stream is cut after 2 of 5
	if len(offs) != 2 {
		t.Fatalf("first stream: %v", offs)
	}
	// Offsets already seen may come again (the client drops them); the
	// three it never got must come.
	got, _ := read(b, sessionTicket(t, b, tok), seq, 5)
	has := map[float64]bool{}
	for _, o := range got {
		has[o] = true
	}
	if !has[3] || !has[4] || !has[5] {
		t.Fatalf("after the cut at offset %v (seq %d), node b replayed %v, want 3, 4 and 5", offs[1], seq, got)
	}
}

// An HTTP session adopted by another node (a round-robin balancer sent a
// poll there) can still be resumed with the resume token its client got
// when it opened: the client never sees the adopting node's connected
// frame, so that token is the only one it has. The resumed session keeps
// its subscription. (Before, the adopting node gave the session a new
// token and the client's resume was refused: the editor example's
// fallback run lost its sessions behind nginx, over and over.)
func TestHTTPSessionAdoptedElsewhereResumesWithFirstToken(t *testing.T) {
	rs := redistest.Start(t)
	a := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "a" })
	b := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "b" })
	jwt := token(t, "adoptee", time.Hour, nil)
	post := func(n *node, path, sessTok, body string) map[string]any {
		t.Helper()
		b := postSession(t, n.base+path, sessTok, "", body)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("POST %s: %v: %s", path, err, b)
		}
		if frames, ok := v.([]any); ok {
			return map[string]any{"frames": frames}
		}
		return v.(map[string]any)
	}
	first := post(a, "/v1/sessions", "", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:adopted"}]`, jwt))
	sessTok, _ := first["session_token"].(string)
	id, _ := first["session"].(string)
	resumeTok, _ := first["resume_token"].(string)
	if sessTok == "" || id == "" || resumeTok == "" {
		t.Fatalf("open: %v", first)
	}
	// The subscribe's reply, on a; then a poll on b adopts the session.
	post(a, "/v1/poll?wait=0", sessTok, "")
	post(b, "/v1/poll?wait=0", sessTok, "")

	// The client's connection is cut; it resumes with what it has.
	again := post(a, "/v1/sessions", "", fmt.Sprintf(`{"type":"connect","id":1,"token":%q,"resume":{"session":%q,"token":%q}}`, jwt, id, resumeTok))
	if again["resumed"] != true || again["session"] != id {
		t.Fatalf("resume after adoption: %v, want resumed session %s", again, id)
	}
	tok2, _ := again["session_token"].(string)
	publishAPI(t, a, "chat:adopted", "after")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range post(b, "/v1/poll?wait=1000", tok2, "")["frames"].([]any) {
			if m, _ := f.(map[string]any); m["type"] == "message" && m["channel"] == "chat:adopted" {
				return
			}
		}
	}
	t.Fatal("the resumed session got no message of its subscription")
}

// A WebSocket session whose node dies without a word (SIGKILL) resumes on
// another node with the channels it subscribed to after connecting: the
// resumed session delivers what is published there. (Its live snapshot was
// written at connect, before any subscribe, so the resume came back
// "resumed": true with no channel, and clients that trust a resume, as the
// TypeScript SDK does, heard nothing more: the editor example subscribed
// again after every resume to get around it.)
func TestWebSocketResumedFromDeadNodeKeepsChannels(t *testing.T) {
	a, b, ba := nodesOneMortal(t)
	jwt := token(t, "wsdead", time.Hour, nil)
	first, _, err := dial(t, a, dialOpts{})
	if err != nil {
		t.Fatal(err)
	}
	first.send(map[string]any{"type": "connect", "id": 1, "token": jwt})
	conn := first.expect("connected")
	if r := first.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:wsdead"}); r["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", r)
	}
	// A session handles its frames in order: this reply comes after the
	// first subscribe's state was written (its reply goes out before).
	if r := first.request(map[string]any{"type": "subscribe", "id": 3, "channel": "chat:wsdead-next"}); r["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", r)
	}
	_ = ba.Close() // node a is gone for the cluster: no takeover answer, no final state

	again, _, err := dial(t, b, dialOpts{})
	if err != nil {
		t.Fatal(err)
	}
	again.send(map[string]any{"type": "connect", "id": 1, "token": jwt, "resume": map[string]any{"session": conn["session"], "token": conn["resume_token"]}})
	if c := again.expect("connected"); c["resumed"] != true {
		t.Fatalf("resume on b: %v", c)
	}
	publishAPI(t, b, "chat:wsdead", "after")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, ok := again.poll(200 * time.Millisecond)
		if ok && f["type"] == "message" && f["channel"] == "chat:wsdead" {
			return
		}
	}
	t.Fatal("the resumed session got no message of the channel it had subscribed to")
}

// postSession POSTs body to url with the HTTP session's headers (sessTok
// and lastEventID when not empty) and returns the reply's body; any status
// but 200 fails the test.
func postSession(t testing.TB, url, sessTok, lastEventID, body string) []byte {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if sessTok != "" {
		req.Header.Set("Ferry-Session", sessTok)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: HTTP %d %s", url, resp.StatusCode, b)
	}
	return b
}

// nodesOneMortal starts nodes a and b on one redis-server; closing the
// returned broker of a makes a vanish from the cluster as a killed process
// would (no takeover answer, no final state saved).
func nodesOneMortal(t testing.TB) (a, b *node, brokerA io.Closer) {
	t.Helper()
	rs := redistest.Start(t)
	ba, err := open.Open(context.Background(), rs.URL(), open.Config{NodeID: "a", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a = startNodeWith(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "a" }, server.Options{Broker: ba})
	b = startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "b" })
	return a, b, ba
}
