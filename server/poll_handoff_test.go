package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// A held long-poll waits off net/http and gives its connection back once
// it answered (fallback.Handoff, ADR 012): the client's next polls go on
// the same kept-alive connection, whether the hold ran out or a frame
// ended it, and the answers are what they were.
func TestHeldPollsKeepTheirConnection(t *testing.T) {
	n := startNode(t, nil)
	tok := rawSession(t, n, "poll", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:handoff"}]`, token(t, "ho", time.Hour, nil)))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()

	// poll sends one poll on client and returns its frames and whether it
	// went on a connection an earlier request used.
	poll := func(wait time.Duration) ([]map[string]any, bool) {
		t.Helper()
		var reused bool
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
		})
		req, err := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/v1/poll?wait=%d", n.base, wait.Milliseconds()), bytes.NewReader(nil))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Ferry-Session", tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("poll: HTTP %d %s %v", resp.StatusCode, b, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || resp.ContentLength != int64(len(b)) || resp.Close {
			t.Fatalf("poll answer: Content-Type %q, length %d of %d, close %v", ct, resp.ContentLength, len(b), resp.Close)
		}
		var frames []map[string]any
		if err := json.Unmarshal(b, &frames); err != nil {
			t.Fatalf("poll answer %q: %v", b, err)
		}
		return frames, reused
	}

	// The subscribed reply is ready: answered at once, in net/http.
	if frames, _ := poll(time.Second); len(frames) != 1 || frames[0]["type"] != "subscribed" {
		t.Fatalf("first poll: %v, want the subscribed reply", frames)
	}
	// Nothing ready: held off net/http until the hold runs out, then [].
	for i := range 3 {
		frames, reused := poll(50 * time.Millisecond)
		if len(frames) != 0 || !reused {
			t.Fatalf("held poll %d: %v on a reused connection %v, want [] on the kept-alive one", i, frames, reused)
		}
	}
	// A message ends a held poll.
	got := make(chan []map[string]any, 1)
	go func() {
		frames, reused := poll(10 * time.Second)
		if !reused {
			t.Error("the poll after a held one opened a new connection")
		}
		got <- frames
	}()
	publishAndAwait(t, n, "chat:handoff", got)
	if frames, reused := poll(50 * time.Millisecond); len(frames) != 0 || !reused {
		t.Fatalf("poll after the message: %v (reused %v)", frames, reused)
	}
}

// publishAndAwait publishes on ch and waits for the poll held in the
// background to answer with the message (a poll not held yet when the
// publish goes takes it from the queue at once).
func publishAndAwait(t *testing.T, n *node, ch string, got chan []map[string]any) {
	t.Helper()
	publishAPI(t, n, ch, "hello")
	select {
	case frames := <-got:
		if len(frames) == 0 || frames[0]["type"] != "message" {
			t.Fatalf("held poll: %v, want the message", frames)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held poll did not answer with the message")
	}
}
