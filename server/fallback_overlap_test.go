package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawSession opens an HTTP session on n with body (a connect frame, or an
// array that starts with one) and returns its session token.
func rawSession(t *testing.T, n *node, mode, body string) string {
	t.Helper()
	resp, err := http.Post(n.base+"/v1/sessions?transport="+mode, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var conn map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&conn)
	tok, _ := conn["session_token"].(string)
	if tok == "" {
		t.Fatalf("open: HTTP %d %v", resp.StatusCode, conn)
	}
	return tok
}

// rawPoll sends one long-poll (body may be empty; last "" sends no
// Last-Event-ID) and returns its frames.
func rawPoll(t *testing.T, n *node, tok, last, body string, wait time.Duration) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/poll?wait=%d", n.base, wait.Milliseconds()), bytes.NewReader([]byte(body)))
	req.Header.Set("Ferry-Session", tok)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("poll: HTTP %d %s", resp.StatusCode, b)
		return nil
	}
	var frames []map[string]any
	if err := json.Unmarshal(b, &frames); err != nil {
		t.Errorf("poll reply: %v: %s", err, b)
	}
	return frames
}

// Two overlapping long-polls: the first is held when a message comes and
// takes it; the second, sent before the client saw that answer (its
// Last-Event-ID is older), carries a publish. The second poll rewinds the
// session (the message is replayed from history), and the publish's reply
// must survive the rewind: a reply is never replayed, so dropping it
// loses it for good.
func TestOverlappingPollsKeepReplies(t *testing.T) {
	n := startNode(t, nil)
	tok := rawSession(t, n, "poll", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:overlap"}]`, token(t, "ov", time.Hour, nil)))
	rawPoll(t, n, tok, "0", "", 200*time.Millisecond) // the subscribed reply

	first := make(chan []map[string]any, 1)
	go func() { first <- rawPoll(t, n, tok, "0", "", 5*time.Second) }()
	time.Sleep(100 * time.Millisecond) // the first poll is held
	publishAPI(t, n, "chat:overlap", "one")
	got := <-first
	if len(got) == 0 || got[0]["type"] != "message" {
		t.Fatalf("first poll: %v, want the message", got)
	}
	// The second poll was sent before the first one's answer arrived.
	var replies []map[string]any
	frames := rawPoll(t, n, tok, "0", `{"type":"publish","id":9,"channel":"chat:overlap","data":"two"}`, 200*time.Millisecond)
	for i := 0; i < 5; i++ {
		for _, f := range frames {
			if f["type"] == "published" {
				replies = append(replies, f)
			}
		}
		if len(replies) > 0 {
			break
		}
		frames = rawPoll(t, n, tok, "", "", 200*time.Millisecond)
	}
	if len(replies) != 1 || num(replies[0]["id"]) != 9 {
		t.Fatalf("published replies %v, want the one for id 9", replies)
	}
}

// A poll displaced by a second one answers with what it took; what it had
// not taken waits for the next poll: across many overlapping polls, every
// reply arrives exactly once.
func TestConcurrentPollsLoseNoReply(t *testing.T) {
	n := startNode(t, nil)
	tok := rawSession(t, n, "poll", fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":"chat:conc"}]`, token(t, "cc", time.Hour, nil)))
	rawPoll(t, n, tok, "", "", 200*time.Millisecond)
	const total = 40
	results := make(chan []map[string]any, 2*total)
	for i := 1; i <= total; i++ {
		// A held poll, and a second one with a ping that displaces it.
		go func() { results <- rawPoll(t, n, tok, "", "", time.Second) }()
		go func() {
			results <- rawPoll(t, n, tok, "", fmt.Sprintf(`{"type":"ping","id":%d}`, 100+i), time.Second)
		}()
	}
	pongs := map[float64]int{}
	deadline := time.After(20 * time.Second)
	for got := 0; got < 2*total; got++ {
		select {
		case frames := <-results:
			for _, f := range frames {
				if f["type"] == "pong" {
					pongs[num(f["id"])]++
				}
			}
		case <-deadline:
			t.Fatalf("polls did not answer")
		}
	}
	for i := 0; i < 10 && len(pongs) < total; i++ {
		for _, f := range rawPoll(t, n, tok, "", "", 100*time.Millisecond) {
			if f["type"] == "pong" {
				pongs[num(f["id"])]++
			}
		}
	}
	for i := 1; i <= total; i++ {
		if pongs[float64(100+i)] != 1 {
			t.Fatalf("pong %d arrived %d times (pongs %v)", 100+i, pongs[float64(100+i)], pongs)
		}
	}
}
