package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
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
	rs := redistest.Start(t)
	ba, err := open.Open(context.Background(), rs.URL(), open.Config{NodeID: "a", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a := startNodeWith(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "a" }, server.Options{Broker: ba})
	b := startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = "b" })
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
		req, _ := http.NewRequest("POST", n.base+"/v1/poll?wait=200", nil)
		req.Header.Set("Ferry-Session", tok)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("poll: HTTP %d %s", resp.StatusCode, b)
		}
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
