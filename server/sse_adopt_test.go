package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/server"
)

// An SSE client that reconnects on another node asks that node for a
// ticket (POST /v1/tickets, which carries no Last-Event-ID), then opens
// the stream with Last-Event-ID. The session must resume from what the
// client has, not from the positions its last node had seen confirmed when
// its stream began: here history (100 messages on "news") still holds
// everything after the client's position but no longer what followed the
// older one. Before issue 21's fix the ticket request adopted the session
// without the client's position and every later reconnection went back to
// the position the session subscribed at: "recovered": false once history
// had moved past it, though the client missed nothing.
func TestSSEReconnectElsewhereRecoversFromLastEventID(t *testing.T) {
	rs := redistest.Start(t)
	var nodes []*node
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startNode(t, func(c *server.Config) { c.Broker = rs.URL(); c.NodeID = id }))
	}
	const ch = "news:reconnect"
	tok := rawSession(t, nodes[0], "sse", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":%q}]`, token(t, "rc", time.Hour, nil), ch))
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			publishAPI(t, nodes[0], ch, i)
		}
	}
	// Node a: the first stream, offsets 1-5.
	publish(1, 5)
	st := sseReadUntil(t, nodes[0], sessionTicket(t, nodes[0], tok), -1, 5)
	// Node b: offsets 6-10.
	publish(6, 10)
	st = sseReadUntil(t, nodes[1], sessionTicket(t, nodes[1], tok), st.lastSeq, 10)
	// History moves past offset 5, not past 10.
	publish(11, 110)
	st = sseReadUntil(t, nodes[2], sessionTicket(t, nodes[2], tok), st.lastSeq, 110)
	for off := 11; off <= 110; off++ {
		if !st.offsets[uint64(off)] {
			t.Fatalf("node c: offset %d never came (subscribed frames: %v)", off, st.subscribed)
		}
	}
	for _, s := range st.subscribed {
		if !s.Recovered {
			t.Fatalf("node c: the client had offset 10, within history (11-110), but got %+v", s)
		}
	}
}

// sseStream is what one SSE stream delivered.
type sseStream struct {
	offsets    map[uint64]bool
	lastOffset uint64
	lastSeq    int64
	subscribed []sseSubscribed
}

type sseSubscribed struct {
	Channel   string `json:"channel"`
	Offset    uint64 `json:"offset"`
	Recovered bool   `json:"recovered"`
	Missed    uint64 `json:"missed"`
}

// sseReadUntil opens an SSE stream on n with ticket (and Last-Event-ID
// last when >= 0) and reads until the message with offset until came. The
// stream is closed when it returns, as a cut would.
func sseReadUntil(t *testing.T, n *node, ticket string, last int64, until uint64) sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := sseGet(ctx, t, n, ticket, last)
	defer resp.Body.Close()
	st := sseStream{offsets: map[uint64]bool{}}
	sc := bufio.NewScanner(resp.Body)
	for !st.offsets[until] && sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		var f struct {
			Type   string `json:"type"`
			Offset uint64 `json:"offset"`
			Seq    int64  `json:"seq"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		switch f.Type {
		case "message":
			st.offsets[f.Offset] = true
			st.lastOffset, st.lastSeq = f.Offset, f.Seq
		case "subscribed":
			var s sseSubscribed
			_ = json.Unmarshal(data, &s)
			st.subscribed = append(st.subscribed, s)
		case "disconnect":
			t.Fatalf("stream on %s: %s", n.base, data)
		}
	}
	if !st.offsets[until] {
		t.Fatalf("stream on %s ended before offset %d (got %d messages, last %d): %v", n.base, until, len(st.offsets), st.lastOffset, sc.Err())
	}
	return st
}

// sessionTicket asks n for a ticket for a new stream of the HTTP session
// tok.
func sessionTicket(t *testing.T, n *node, tok string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", n.base+"/v1/tickets", nil)
	req.Header.Set("Ferry-Session", tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.Ticket == "" {
		t.Fatalf("ticket on %s: HTTP %d", n.base, resp.StatusCode)
	}
	return out.Ticket
}

// sseGet opens an SSE stream on n with ticket, and Last-Event-ID last when
// last >= 0; it fails the test unless the answer is 200.
func sseGet(ctx context.Context, t *testing.T, n *node, ticket string, last int64) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.base+"/v1/sse?ticket="+ticket, nil)
	if last >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("stream on %s: HTTP %d", n.base, resp.StatusCode)
	}
	return resp
}
