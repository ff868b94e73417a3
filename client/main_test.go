package client_test

import (
	"context"
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

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecret = "client-test-secret-0123456789abcdef"
	testAPIKey = "client-test-api-key"
)

// node is a real Ferry node served over loopback by httptest.
type node struct {
	srv *server.Server
	ts  *httptest.Server
	url string // http://127.0.0.1:port
}

func testConfig() server.Config {
	return server.Config{
		NodeID: "n1",
		APIKey: testAPIKey,
		Token:  server.TokenConfig{HMACSecret: testSecret},
		Namespaces: map[string]server.Namespace{
			"chat":    {HistorySize: 200000, HistoryTTL: time.Hour, Presence: true, JoinLeave: true, Publish: true, Subscribe: true},
			"news":    {HistorySize: 100, Subscribe: true},
			"nohist":  {Subscribe: true, Publish: true},
			"private": {},
		},
		ClientPublish: server.ClientPublishConfig{Rate: 1e6, Burst: 1 << 20},
	}
}

func startNode(t testing.TB, mutate func(*server.Config)) *node {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(cfg, server.Options{Logger: testLogger(t, "server"), Broker: memory.New(memory.Config{NodeID: cfg.NodeID})})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	n := &node{srv: srv, ts: ts, url: ts.URL}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return n
}

// testLogger logs to the test output with -v, else nowhere.
func testLogger(t testing.TB, who string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("who", who)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mint(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), sub, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects a client for user and closes it when the test ends.
func dial(t testing.TB, n *node, user string, mutate func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{
		Token:   mint(t, user, time.Hour),
		Logger:  testLogger(t, "client:"+user),
		Backoff: client.Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.url, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// apiCall calls the server API and decodes the JSON reply into out.
func apiCall(t testing.TB, n *node, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Close = true // no idle connection left behind (goleak)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: reply %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

// apiHistory is the channel's whole retained history through the API.
type apiHistory struct {
	Messages []struct {
		Offset uint64          `json:"offset"`
		Epoch  string          `json:"epoch"`
		Data   json.RawMessage `json:"data"`
	} `json:"messages"`
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

func historyAPI(t testing.TB, n *node, ch string) apiHistory {
	t.Helper()
	var h apiHistory
	if code := apiCall(t, n, "GET", "/v1/api/history?channel="+ch, nil, &h); code != 200 {
		t.Fatalf("history %s: HTTP %d", ch, code)
	}
	return h
}

func publishAPI(t testing.TB, n *node, ch string, data any) {
	t.Helper()
	if code := apiCall(t, n, "POST", "/v1/api/publish", map[string]any{"channel": ch, "data": data}, nil); code != 200 {
		t.Fatalf("publish %s: HTTP %d", ch, code)
	}
}

// disconnectUser closes the user's connections through the server API. The
// node indexes a connection by user only after it sent connected, so a call
// right after Dial may find none: it is repeated until one was closed.
func disconnectUser(t testing.TB, n *node, user string, code int) {
	t.Helper()
	eventually(t, "disconnect "+user, func() bool {
		var out struct {
			Disconnected int `json:"disconnected"`
		}
		if st := apiCall(t, n, "POST", "/v1/api/disconnect", map[string]any{"user": user, "code": code}, &out); st != 200 {
			t.Fatalf("disconnect %s: HTTP %d", user, st)
		}
		return out.Disconnected > 0
	})
}

// waitGone waits until the node has released every connection (so that
// nothing published afterwards reaches a connection on its way out).
func waitGone(t testing.TB, n *node) {
	t.Helper()
	eventually(t, "connections released", func() bool {
		var st struct {
			Connections int `json:"connections"`
		}
		return apiCall(t, n, "GET", "/v1/api/stats", nil, &st) == 200 && st.Connections == 0
	})
}

// eventually polls cond until it holds (a hang guard, not a timing
// assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, 15*time.Second, what, cond)
}

// recv returns the next message of sub (hang guard 10 s).
func recv(t testing.TB, sub *client.Subscription) client.Message {
	t.Helper()
	select {
	case m, ok := <-sub.Messages():
		if !ok {
			t.Fatalf("subscription %s ended: %v", sub.Channel(), sub.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no message on %s within 10s", sub.Channel())
	}
	return client.Message{}
}

// stateLog records state changes and errors of a client.
type stateLog struct {
	mu     sync.Mutex
	states []client.StateChange
	errs   []error
}

func (l *stateLog) onState(sc client.StateChange) {
	l.mu.Lock()
	l.states = append(l.states, sc)
	l.mu.Unlock()
}

func (l *stateLog) onError(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *stateLog) snapshot() ([]client.StateChange, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]client.StateChange(nil), l.states...), append([]error(nil), l.errs...)
}

func (l *stateLog) count(s client.State) int {
	st, _ := l.snapshot()
	n := 0
	for _, sc := range st {
		if sc.State == s {
			n++
		}
	}
	return n
}

func (l *stateLog) String() string {
	st, errs := l.snapshot()
	var b strings.Builder
	for _, sc := range st {
		fmt.Fprintf(&b, "%v(code %d err %v) ", sc.State, sc.Code, sc.Err)
	}
	fmt.Fprintf(&b, "errors: %v", errs)
	return b.String()
}
