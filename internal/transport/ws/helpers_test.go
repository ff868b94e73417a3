package ws

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// safetyTimeout only keeps a broken test from hanging forever; no test
// asserts on how long anything takes. It is generous: under -race on a
// loaded 2-core machine TestConcurrentWritersNeverInterleave alone moves
// 17 MB through a client that checks every byte.
const safetyTimeout = 60 * time.Second

// closeEvent is what Handler.OnClose received.
type closeEvent struct {
	code   int
	reason string
}

// echoHandler writes every message back and records the close.
type echoHandler struct {
	closed   chan closeEvent
	writable chan struct{}
	// onMessage, when set, runs instead of the echo.
	onMessage func(c *Conn, binary bool, payload []byte)
}

func newEchoHandler() *echoHandler {
	return &echoHandler{closed: make(chan closeEvent, 1), writable: make(chan struct{}, 64)}
}

func (h *echoHandler) OnMessage(c *Conn, binary bool, payload []byte) {
	if h.onMessage != nil {
		h.onMessage(c, binary, payload)
		return
	}
	_, _ = c.WriteMessage(binary, payload)
}

func (h *echoHandler) OnClose(c *Conn, code int, reason string) {
	h.closed <- closeEvent{code, reason}
}

func (h *echoHandler) OnWritable(c *Conn) {
	select {
	case h.writable <- struct{}{}:
	default:
	}
}

// testServer runs Upgrade behind httptest and hands out the accepted
// connections and their handlers.
type testServer struct {
	*httptest.Server
	conns    chan *Conn
	handlers chan *echoHandler
}

func newTestServer(tb testing.TB, opts *Options, configure func(*echoHandler)) *testServer {
	tb.Helper()
	return newTestServerHook(tb, opts, configure, nil)
}

// newTestServerHook is newTestServer with a hook that sees each Conn
// between Upgrade and Serve.
func newTestServerHook(tb testing.TB, opts *Options, configure func(*echoHandler), beforeServe func(*Conn)) *testServer {
	tb.Helper()
	ts := &testServer{conns: make(chan *Conn, 16), handlers: make(chan *echoHandler, 16)}
	opts = withTestReactor(opts)
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, opts)
		if err != nil {
			return
		}
		if beforeServe != nil {
			beforeServe(c)
		}
		h := newEchoHandler()
		if configure != nil {
			configure(h)
		}
		select {
		case ts.conns <- c:
		default:
		}
		select {
		case ts.handlers <- h:
		default:
		}
		_ = c.Serve(h)
	}))
	tb.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) addr() string { return strings.TrimPrefix(ts.URL, "http://") }

func (ts *testServer) wsURL() string { return "ws://" + ts.addr() }

// nextHandler returns the handler of the next accepted connection.
func (ts *testServer) nextHandler(tb testing.TB) *echoHandler {
	tb.Helper()
	select {
	case h := <-ts.handlers:
		return h
	case <-time.After(safetyTimeout):
		tb.Fatal("no connection accepted")
		return nil
	}
}

func (ts *testServer) nextConn(tb testing.TB) *Conn {
	tb.Helper()
	select {
	case c := <-ts.conns:
		return c
	case <-time.After(safetyTimeout):
		tb.Fatal("no connection accepted")
		return nil
	}
}

func waitClose(tb testing.TB, h *echoHandler) closeEvent {
	tb.Helper()
	select {
	case ev := <-h.closed:
		return ev
	case <-time.After(safetyTimeout):
		tb.Fatal("OnClose not called")
		return closeEvent{}
	}
}

// rawClient is a minimal hand-written WebSocket client that sends frames
// byte for byte as the test builds them.
type rawClient struct {
	tb   testing.TB
	conn net.Conn
	br   *bufio.Reader
}

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// handshakeRequest returns an opening handshake for addr with extra header
// lines (each ending in \r\n).
func handshakeRequest(addr, extra string) string {
	return "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// dialRaw connects, sends the handshake followed by early (frame bytes sent
// in the same write) and checks the 101 response.
func dialRaw(tb testing.TB, addr, extra string, early []byte) *rawClient {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(safetyTimeout))
	req := append([]byte(handshakeRequest(addr, extra)), early...)
	if _, err := conn.Write(req); err != nil {
		tb.Fatalf("write handshake: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatalf("read handshake response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		tb.Fatalf("handshake status %d: %s", resp.StatusCode, body)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		tb.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return &rawClient{tb: tb, conn: conn, br: br}
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// buildFrame returns a client frame: b0 is FIN|RSV|opcode as given.
func buildFrame(b0 byte, payload []byte, masked bool) []byte {
	var out []byte
	out = append(out, b0)
	var mbit byte
	if masked {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		out = append(out, mbit|byte(n))
	case n <= 0xFFFF:
		out = append(out, mbit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, mbit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if !masked {
		return append(out, payload...)
	}
	out = append(out, testMask[:]...)
	for i, c := range payload {
		out = append(out, c^testMask[i&3])
	}
	return out
}

// frame builds a masked client frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return buildFrame(b0, payload, true)
}

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func (c *rawClient) send(b ...[]byte) {
	c.tb.Helper()
	if _, err := c.conn.Write(bytes.Join(b, nil)); err != nil {
		c.tb.Fatalf("raw write: %v", err)
	}
}

// serverFrame is a frame read from the server.
type serverFrame struct {
	b0      byte
	op      byte
	payload []byte
}

func (c *rawClient) readFrame() (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return serverFrame{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.br, e[:]); err != nil {
			return serverFrame{}, err
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return serverFrame{}, err
	}
	return serverFrame{b0: h[0], op: h[0] & 0x0F, payload: p}, nil
}

func (c *rawClient) mustRead() serverFrame {
	c.tb.Helper()
	f, err := c.readFrame()
	if err != nil {
		c.tb.Fatalf("read frame: %v", err)
	}
	return f
}

// expectFrame reads one frame and checks its opcode and payload.
func (c *rawClient) expectFrame(op byte, payload []byte) {
	c.tb.Helper()
	f := c.mustRead()
	if f.b0&0x80 == 0 {
		c.tb.Fatalf("server frame without FIN: %#x", f.b0)
	}
	if f.op != op || !bytes.Equal(f.payload, payload) {
		c.tb.Fatalf("got frame op %#x payload %q (%d bytes), want op %#x payload %q (%d bytes)",
			f.op, trunc(f.payload), len(f.payload), op, trunc(payload), len(payload))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// expectClose reads the server's close frame, checks its code (0: empty
// payload), and then expects the server to close the TCP connection. It is
// for a close the client started: the server's frame is the answer.
func (c *rawClient) expectClose(code int) {
	c.tb.Helper()
	c.expectCloseFrame(code)
	c.expectEOF()
}

// expectServerClose is for a close the server started: like a well-behaved
// client it answers with a close frame, waits for the server's FIN and then
// closes its side.
func (c *rawClient) expectServerClose(code int) {
	c.tb.Helper()
	c.expectCloseFrame(code)
	_, _ = c.conn.Write(frame(true, 0x8, closePayload(1000, "")))
	c.expectEOF()
	_ = c.conn.Close()
}

func (c *rawClient) expectCloseFrame(code int) {
	c.tb.Helper()
	f := c.mustRead()
	if f.op != 0x8 {
		c.tb.Fatalf("got frame op %#x payload %q, want close %d", f.op, trunc(f.payload), code)
	}
	switch {
	case code == 0 && len(f.payload) != 0:
		c.tb.Fatalf("close payload %q, want empty", f.payload)
	case code != 0 && (len(f.payload) < 2 || int(binary.BigEndian.Uint16(f.payload)) != code):
		c.tb.Fatalf("close payload %q, want code %d", f.payload, code)
	}
}

// expectEOF reads until the server closes the connection; no further frame
// may arrive.
func (c *rawClient) expectEOF() {
	c.tb.Helper()
	f, err := c.readFrame()
	if err == nil {
		c.tb.Fatalf("unexpected frame op %#x payload %q after close", f.op, trunc(f.payload))
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		c.tb.Fatalf("want EOF from server, got %v", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// pollUntil polls cond until it holds or the safety timeout passes.
func pollUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	wait.Within(tb, safetyTimeout, what, cond)
}

// recordingSink collects parser output for parser tests.
type recordingSink struct {
	mu     sync.Mutex
	events []string
}

func (s *recordingSink) message(op opcode, compressed bool, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("msg op=%d z=%v %s", op, compressed, base64.StdEncoding.EncodeToString(payload)))
	return nil
}

func (s *recordingSink) control(op opcode, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("ctl op=%d %s", op, base64.StdEncoding.EncodeToString(payload)))
	return nil
}

func nowAfter(t time.Time) bool { return time.Now().After(t) }
