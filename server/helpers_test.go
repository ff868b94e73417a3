package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker/open"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

func TestMain(m *testing.M) {
	// net/http lingers up to 500 ms on a connection it refused a body on
	// (closeWriteAndWait), past the server's own Close.
	// tusd keeps a request's context for a second after it ends
	// (upload.Handler's GracefulRequestCompletionTimeout).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*conn).closeWriteAndWait"),
		goleak.IgnoreAnyFunction("github.com/tus/tusd/v2/pkg/handler.newDelayedContext.func1"))
}

const (
	testSecret = "test-secret-0123456789abcdef0123"
	testAPIKey = "test-api-key"
)

// node is a Ferry server under test, serving on a loopback port through
// its own Serve (so the real http.Server settings apply).
type node struct {
	srv  *server.Server
	base string // http://127.0.0.1:port
	url  string // ws://127.0.0.1:port
}

// testConfig is a production-like config: explicit namespaces, no dev mode.
func testConfig() server.Config {
	return server.Config{
		NodeID:         "n1",
		APIKey:         testAPIKey,
		Token:          server.TokenConfig{HMACSecret: testSecret},
		AllowedOrigins: []string{"https://app.example.com"},
		Handshake:      server.HandshakeConfig{Rate: 0},
		Namespaces: map[string]server.Namespace{
			"chat":    {HistorySize: 2000, HistoryTTL: time.Hour, Presence: true, JoinLeave: true, Publish: true, Subscribe: true},
			"news":    {HistorySize: 100, Subscribe: true},
			"default": {Subscribe: true, Publish: true},
			"private": {},
		},
	}
}

func startNode(t testing.TB, mutate func(*server.Config)) *node {
	t.Helper()
	return startNodeWith(t, mutate, server.Options{})
}

// startNodeWith starts a node with options (a logger to inspect, say).
func startNodeWith(t testing.TB, mutate func(*server.Config), opts server.Options) *node {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if opts.Logger == nil {
		opts.Logger = log
	}
	if opts.Broker == nil {
		b, err := open.Open(context.Background(), cfg.Broker, open.Config{NodeID: cfg.NodeID, Logger: opts.Logger})
		if err != nil {
			t.Fatalf("open broker: %v", err)
		}
		opts.Broker = b
	}
	srv, err := server.New(cfg, opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	n := &node{srv: srv, base: "http://" + ln.Addr().String(), url: "ws://" + ln.Addr().String()}
	if cfg.TLS.CertFile != "" {
		n.base, n.url = "https://"+ln.Addr().String(), "wss://"+ln.Addr().String()
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20s")
		}
	})
	return n
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func token(t testing.TB, sub string, ttl time.Duration, ch *auth.ChannelsClaim) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), sub, ttl, ch)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expiredToken is a well-signed token that expired a minute ago.
func expiredToken(t testing.TB, sub string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": time.Now().Add(-time.Minute).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// client is a raw protocol client over a real WebSocket (coder/websocket,
// an implementation independent of Ferry's own).
type client struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan map[string]any
	done   chan struct{}
	mu     sync.Mutex
	err    error // why the read loop ended
	// wsMessages counts WebSocket messages received (a batch is one).
	wsMessages atomic.Int64
}

type dialOpts struct {
	header      http.Header
	subprotocol string
	path        string // default /v1/ws
}

func dialPath(t testing.TB, n *node, path string) (*client, *http.Response, error) {
	t.Helper()
	return dial(t, n, dialOpts{path: path})
}

func dial(t testing.TB, n *node, o dialOpts) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sp := o.subprotocol
	if sp == "" {
		sp = protocol.SubprotocolJSON
	}
	path := o.path
	if path == "" {
		path = "/v1/ws"
	}
	c, resp, err := websocket.Dial(ctx, n.url+path, &websocket.DialOptions{
		HTTPHeader:   o.header,
		Subprotocols: []string{sp},
	})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, c: c, frames: make(chan map[string]any, 4096), done: make(chan struct{})}
	go cl.readLoop()
	t.Cleanup(func() { cl.close() })
	return cl, resp, nil
}

func (cl *client) readLoop() {
	defer close(cl.done)
	defer close(cl.frames)
	for {
		typ, b, err := cl.c.Read(context.Background())
		if err != nil {
			cl.mu.Lock()
			cl.err = err
			cl.mu.Unlock()
			return
		}
		cl.wsMessages.Add(1)
		var frames []map[string]any
		if typ == websocket.MessageBinary {
			frames = decodeMsgpackFrames(cl.t, b)
		} else if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
			if err := json.Unmarshal(b, &frames); err != nil {
				cl.t.Errorf("bad JSON batch from server: %v: %s", err, b)
				return
			}
		} else {
			var f map[string]any
			if err := json.Unmarshal(b, &f); err != nil {
				cl.t.Errorf("bad JSON frame from server: %v: %s", err, b)
				return
			}
			frames = []map[string]any{f}
		}
		for _, f := range frames {
			cl.frames <- f
		}
	}
}

// connectClient dials and completes the connect handshake.
func connectClient(t testing.TB, n *node, user string) *client {
	t.Helper()
	cl, _, err := dial(t, n, dialOpts{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	cl.send(map[string]any{"type": "connect", "id": 1, "token": token(t, user, time.Hour, nil)})
	f := cl.expect("connected")
	if f["user"] != user {
		t.Fatalf("connected as %v, want %s", f["user"], user)
	}
	return cl
}

func (cl *client) send(v any) {
	cl.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.sendRaw(b)
}

func (cl *client) sendRaw(b []byte) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cl.c.Write(ctx, websocket.MessageText, b); err != nil {
		cl.t.Fatalf("write: %v", err)
	}
}

// next returns the next frame, failing the test after a generous timeout
// (a hang guard, not a timing assertion).
func (cl *client) next() map[string]any {
	cl.t.Helper()
	return cl.nextOr(nil)
}

// poll returns the next frame if one comes within d.
func (cl *client) poll(d time.Duration) (map[string]any, bool) {
	select {
	case f, ok := <-cl.frames:
		if !ok {
			cl.t.Fatalf("connection ended: %v", cl.closeErr())
		}
		return f, true
	case <-time.After(d):
		return nil, false
	}
}

func (cl *client) nextOr(onHang func()) map[string]any {
	cl.t.Helper()
	select {
	case f, ok := <-cl.frames:
		if !ok {
			cl.t.Fatalf("connection ended: %v", cl.closeErr())
		}
		return f
	case <-time.After(10 * time.Second):
		if onHang != nil {
			onHang()
		}
		dumpGoroutines()
		cl.t.Fatal("no frame from the server within 10s")
	}
	return nil
}

// expect skips frames until one of type typ arrives; an error frame of
// another request fails the test.
func (cl *client) expect(typ string) map[string]any {
	cl.t.Helper()
	for {
		f := cl.next()
		if f["type"] == typ {
			return f
		}
		if f["type"] == "error" || f["type"] == "disconnect" {
			cl.t.Fatalf("want %s, got %v", typ, f)
		}
	}
}

// request sends a frame with an id and returns the reply with that id.
func (cl *client) request(f map[string]any) map[string]any {
	cl.t.Helper()
	cl.send(f)
	id := f["id"]
	for {
		r := cl.next()
		if rid, ok := r["id"]; ok && num(rid) == num(id) {
			return r
		}
	}
}

// closed waits for the server to close the connection and returns the
// close status.
func (cl *client) closed() (websocket.StatusCode, string) {
	cl.t.Helper()
	for {
		select {
		case _, ok := <-cl.frames:
			if ok {
				continue
			}
			err := cl.closeErr()
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		case <-time.After(15 * time.Second):
			cl.t.Fatal("connection not closed by the server within 15s")
		}
	}
}

func (cl *client) closeErr() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

func (cl *client) close() {
	_ = cl.c.Close(websocket.StatusNormalClosure, "")
	<-cl.done
}

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return -1
}

// apiCall calls the server API and decodes the JSON reply.
func apiCall(t testing.TB, n *node, method, path, key string, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, n.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func publishAPI(t testing.TB, n *node, ch string, data any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"channel": ch, "data": data})
	code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, string(b))
	if code != 200 {
		t.Fatalf("publish %s: HTTP %d %v", ch, code, out)
	}
	return out
}

// eventually polls cond until it holds (a hang guard of 10 s, not a timing
// assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !wait.Until(wait.Timeout, cond) {
		dumpGoroutines()
		t.Fatalf("never happened: %s", what)
	}
}

// dumpGoroutines writes every goroutine's stack to $FERRY_HANG_DUMP, when
// set, to debug a hang.
func dumpGoroutines() {
	if f := os.Getenv("FERRY_HANG_DUMP"); f != "" {
		if w, err := os.Create(f); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(w, 2)
			w.Close()
		}
	}
}
