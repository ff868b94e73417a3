package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/hooks"
)

const testSecret = "auction-test-hooks-secret"

// newTestAuction serves a fresh auction's routes (the publish hook,
// /state, /close) over real HTTP; the server API is not set (the tests
// that need it run a node).
func newTestAuction(t *testing.T, rules *Rules) (*auction, *httptest.Server) {
	t.Helper()
	a := newAuction("lot1", testSecret, rules, nil)
	a.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	mux := http.NewServeMux()
	a.routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return a, srv
}

// hookCall is one publish hook request as the node sends it
// (internal/hooks.Client): a POST of the JSON body with Content-Type,
// User-Agent, Ferry-Hook and Ferry-Signature.
type hookCall struct {
	req    hooks.PublishRequest
	secret string    // signs the body; "" sends no signature
	at     time.Time // the signature's time; zero: now
	hook   string    // Ferry-Hook; "": publish
	body   []byte    // sent instead of req when set
}

// bid is a hook call for user's bid of amount on lot1 with key.
func bid(user string, amount int64, key string) hookCall {
	return hookCall{req: hooks.PublishRequest{
		Meta:    hooks.Meta{Conn: "conn-" + user, User: user, Transport: "ws", IP: "127.0.0.0"},
		Channel: "bids:lot1", Data: json.RawMessage(fmt.Sprintf(`{"amount":%d}`, amount)), Key: key,
	}, secret: testSecret}
}

// do sends c to the server's hook endpoint and returns the HTTP status and
// the decoded answer (a zero answer unless the status is 200).
func (c hookCall) do(t *testing.T, srv *httptest.Server) (int, hooks.PublishAnswer) {
	t.Helper()
	code, ans, err := c.send(srv)
	if err != nil {
		t.Fatal(err)
	}
	return code, ans
}

// send is do for any goroutine: it returns its failure.
func (c hookCall) send(srv *httptest.Server) (int, hooks.PublishAnswer, error) {
	var ans hooks.PublishAnswer
	body := c.body
	if body == nil {
		var err error
		if body, err = json.Marshal(&c.req); err != nil {
			return 0, ans, err
		}
	}
	r, err := http.NewRequest(http.MethodPost, srv.URL+hookPath, bytes.NewReader(body))
	if err != nil {
		return 0, ans, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Ferry")
	hook := c.hook
	if hook == "" {
		hook = "publish"
	}
	r.Header.Set(hooks.HeaderHook, hook)
	if c.secret != "" {
		at := c.at
		if at.IsZero() {
			at = time.Now()
		}
		r.Header.Set(hooks.HeaderSignature, hooks.Sign(c.secret, at, body))
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		return 0, ans, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
			return resp.StatusCode, ans, fmt.Errorf("the hook's answer is not JSON: %w", err)
		}
	}
	return resp.StatusCode, ans, nil
}

// TestPublishHookRefusesStrangers: only the node's signed publish hook
// requests are judged; nothing else reaches the rules.
func TestPublishHookRefusesStrangers(t *testing.T) {
	a, srv := newTestAuction(t, NewRules(100, 1, 100, 100))
	unsigned := bid("ann", 101, "k1")
	unsigned.secret = ""
	wrongKey := bid("ann", 101, "k1")
	wrongKey.secret = "not-the-secret"
	stale := bid("ann", 101, "k1")
	stale.at = time.Now().Add(-time.Hour)
	otherHook := bid("ann", 101, "k1")
	otherHook.hook = "rpc"
	notJSON := bid("ann", 101, "k1")
	notJSON.body = []byte("amount=101")
	huge := bid("ann", 101, "k1")
	huge.body = bytes.Repeat([]byte(" "), maxHookBody+1)
	for _, c := range []struct {
		name string
		call hookCall
		want int
	}{
		{"unsigned", unsigned, http.StatusUnauthorized},
		{"signed with another secret", wrongKey, http.StatusUnauthorized},
		{"an old signature", stale, http.StatusUnauthorized},
		{"another hook", otherHook, http.StatusBadRequest},
		{"not JSON", notJSON, http.StatusBadRequest},
		{"over the size limit", huge, http.StatusRequestEntityTooLarge},
	} {
		if code, _ := c.call.do(t, srv); code != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, code, c.want)
		}
	}
	if st := a.rules.Standing(); st.Judged != 0 {
		t.Fatalf("%d bids were judged from requests that are not the node's", st.Judged)
	}
}

// TestPublishHookJudges: an accepted bid is published as its verdict
// (the bidder from the connection, not from the data), a retry gets the
// same answer and counts once, and each refusal carries its code and
// reason.
func TestPublishHookJudges(t *testing.T) {
	a, srv := newTestAuction(t, NewRules(100, 1, 100, 100))
	forged := bid("ann", 101, "k1")
	forged.req.Data = json.RawMessage(`{"amount":101,"bidder":"mallory","seq":99}`)
	code, ans := forged.do(t, srv)
	if code != http.StatusOK || ans.Error != nil {
		t.Fatalf("first bid: HTTP %d, %+v", code, ans.Error)
	}
	var v Verdict
	if err := json.Unmarshal(ans.Data, &v); err != nil {
		t.Fatalf("accepted bid's data %s: %v", ans.Data, err)
	}
	if want := (Verdict{Key: "k1", Bidder: "ann", Amount: 101, Accepted: true, Seq: 1}); v != want {
		t.Fatalf("published %+v, want %+v", v, want)
	}
	select { // the hook pokes announce right after its answer
	case <-a.changed:
	case <-time.After(10 * time.Second):
		t.Fatal("an accepted bid did not tell announce that the standing changed")
	}

	// The node asks again about a retry it kept no verdict for (after a
	// timeout): the same answer, and the standing does not change.
	if _, again := forged.do(t, srv); !bytes.Equal(again.Data, ans.Data) {
		t.Fatalf("a retry got %s, want %s", again.Data, ans.Data)
	}
	if again, changed := a.judge(&forged.req); changed || !bytes.Equal(again.Data, ans.Data) {
		t.Fatalf("a retry: changed %v, answer %s", changed, again.Data)
	}

	anon := bid("", 150, "k9")
	otherChannel := bid("ben", 150, "k10")
	otherChannel.req.Channel = "bids:lot2"
	fraction := bid("ben", 150, "k11")
	fraction.req.Data = json.RawMessage(`{"amount":150.5}`)
	for _, c := range []struct {
		name   string
		call   hookCall
		code   int
		reason string
	}{
		{"too low", bid("ben", 101, "k2"), 409, "too low: the price is 101, bid at least 102"},
		{"another bidder's key", bid("ben", 150, "k1"), 409, "that key belongs to another bid"},
		{"no key", bid("ben", 150, ""), 400, "a bid needs a key"},
		{"anonymous", anon, 403, "sign in to bid"},
		{"another channel", otherChannel, 404, `no auction on "bids:lot2"`},
		{"not a whole amount", fraction, 400, `a bid is {"amount": N}`},
		{"zero", bid("ben", 0, "k12"), 400, `a bid is {"amount": N}`},
	} {
		code, ans := c.call.do(t, srv)
		if code != http.StatusOK || ans.Error == nil || len(ans.Data) != 0 {
			t.Errorf("%s: HTTP %d, answer %+v: want a refusal", c.name, code, ans)
			continue
		}
		if ans.Error.Code != c.code || !strings.Contains(ans.Error.Reason, c.reason) {
			t.Errorf("%s: refused with %d %q, want %d and %q", c.name, ans.Error.Code, ans.Error.Reason, c.code, c.reason)
		}
	}
	if _, ans := bid("ben", 102, "k3").do(t, srv); ans.Error != nil {
		t.Fatalf("ben's raise: %+v", ans.Error)
	}
	if resp, err := srv.Client().Post(srv.URL+"/close", "", nil); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	if _, ans := bid("ann", 500, "k4").do(t, srv); ans.Error == nil || ans.Error.Code != 403 || ans.Error.Reason != "the auction is closed" {
		t.Fatalf("a bid after the close: %+v", ans)
	}
	st := a.rules.Standing()
	if st.Price != 102 || st.Leader != "ben" || len(st.Accepted) != 2 || st.Accepted[1].Seq != 2 {
		t.Fatalf("standing %+v", st)
	}
}

// TestPublishHookConcurrent: the node calls the hook concurrently; the
// accepted bids are numbered 1, 2, ... in the order they were decided,
// and that order is the order of their amounts (each beat the last).
func TestPublishHookConcurrent(t *testing.T) {
	a, srv := newTestAuction(t, NewRules(100, 1, 1000, 1000))
	const bidders, each = 8, 25
	var mu sync.Mutex
	bySeq := map[int]Verdict{}
	var wg sync.WaitGroup
	for b := range bidders {
		wg.Go(func() {
			for i := range each {
				// Amounts overlap between bidders, so many lose the race.
				code, ans, err := bid(fmt.Sprintf("b%d", b), int64(101+i*2+b%3), fmt.Sprintf("b%d-%d", b, i)).send(srv)
				if err != nil || code != http.StatusOK {
					t.Errorf("HTTP %d, %v", code, err)
					return
				}
				if ans.Error != nil {
					continue
				}
				var v Verdict
				if err := json.Unmarshal(ans.Data, &v); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, ok := bySeq[v.Seq]; ok {
					t.Errorf("seq %d given twice: %+v and %+v", v.Seq, prev, v)
				}
				bySeq[v.Seq] = v
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st := a.rules.Standing()
	if len(bySeq) != len(st.Accepted) || len(bySeq) == 0 {
		t.Fatalf("%d bids answered as accepted, the standing has %d", len(bySeq), len(st.Accepted))
	}
	for i, v := range st.Accepted {
		if got := bySeq[i+1]; got != v || v.Seq != i+1 {
			t.Fatalf("accepted bid %d is %+v, the hook answered %+v", i+1, v, got)
		}
		if i > 0 && v.Amount <= st.Accepted[i-1].Amount {
			t.Fatalf("accepted bid %d (%d) does not beat the one before (%d)", i+1, v.Amount, st.Accepted[i-1].Amount)
		}
	}
	if top := st.Accepted[len(st.Accepted)-1]; st.Price != top.Amount {
		t.Fatalf("price %d, the last accepted bid %d", st.Price, top.Amount)
	}
}
