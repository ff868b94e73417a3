package server_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

// rawConn is a hand-driven WebSocket client: it answers nothing on its
// own (no pongs), so the server's heartbeat can be seen to act.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func rawDial(t testing.TB, n *node, path string, extra string) (*rawConn, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\n" +
		"Sec-WebSocket-Protocol: ferry.v1.json\r\n" + extra + "\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	status, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	return &rawConn{t: t, c: c, br: br}, status
}

// sendText writes one masked text frame.
func (r *rawConn) sendText(s string) {
	r.t.Helper()
	p := []byte(s)
	hdr := []byte{0x81}
	switch {
	case len(p) < 126:
		hdr = append(hdr, 0x80|byte(len(p)))
	default:
		hdr = append(hdr, 0x80|126, byte(len(p)>>8), byte(len(p)))
	}
	mask := [4]byte{1, 2, 3, 4}
	hdr = append(hdr, mask[:]...)
	for i := range p {
		p[i] ^= mask[i%4]
	}
	if _, err := r.c.Write(append(hdr, p...)); err != nil {
		r.t.Fatal(err)
	}
}

// readFrame reads one frame: opcode and payload.
func (r *rawConn) readFrame() (byte, []byte, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int64(binary.BigEndian.Uint64(b[:]))
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r.br, p)
	return h[0] & 0x0f, p, err
}

// closeCode reads frames until the close frame and returns its code.
func (r *rawConn) closeCode() (int, []string) {
	r.t.Helper()
	var seen []string
	for {
		op, p, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("no close frame (saw %v): %v", seen, err)
		}
		switch op {
		case 0x8:
			if len(p) < 2 {
				return 1005, seen
			}
			return int(binary.BigEndian.Uint16(p)), seen
		case 0x9:
			seen = append(seen, "ping")
		default:
			seen = append(seen, string(p))
		}
	}
}

func TestSilentClientClosedByHeartbeat(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.Heartbeat = server.HeartbeatConfig{Interval: 200 * time.Millisecond, Timeout: 300 * time.Millisecond}
	})
	r, status := rawDial(t, n, "/v1/ws", "")
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade: %s", status)
	}
	r.sendText(fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "zombie", time.Hour, nil)))
	code, seen := r.closeCode()
	if code != protocol.CloseHeartbeat {
		t.Fatalf("close %d, want 4012 (saw %v)", code, seen)
	}
	if !strings.Contains(strings.Join(seen, " "), "ping") {
		t.Fatalf("no ping before the close: %v", seen)
	}
}

func TestConnectTimeoutDropsSilentUpgrade(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	r, _ := rawDial(t, n, "/v1/ws", "")
	if code, _ := r.closeCode(); code != protocol.CloseUnauthorized {
		t.Fatalf("close %d, want 4001", code)
	}
	eventually(t, "no connection left", func() bool {
		_, st := apiCall(t, n, "GET", "/v1/api/stats", testAPIKey, "")
		return num(st["connections"]) == 0
	})
}

func TestHandshakeChecks(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.Handshake = server.HandshakeConfig{Rate: 1, Burst: 3} })
	get := func(path string, h http.Header) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", n.base+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get("/v1/ws", http.Header{"Origin": {"https://evil.example.net"}}); r.StatusCode != 403 {
		t.Fatalf("wrong origin: %d", r.StatusCode)
	}
	if r := get("/v1/ws?token=abc.def.ghi", nil); r.StatusCode != 400 {
		t.Fatalf("token in URL: %d", r.StatusCode)
	}
	if r := get("/v1/ws", http.Header{"Origin": {"https://app.example.com"}, "Authorization": {"Bearer x"}}); r.StatusCode != 401 {
		t.Fatalf("bad bearer: %d", r.StatusCode)
	}
	r := get("/v1/ws", nil)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("flood: %d retry-after %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

func TestTicketIsSingleUse(t *testing.T) {
	n := startNode(t, nil)
	req, _ := http.NewRequest("POST", n.base+"/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, "alice", time.Hour, nil))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out.Ticket == "" {
		t.Fatalf("ticket: %d %+v", resp.StatusCode, out)
	}
	cl, _, err := dialPath(t, n, "/v1/ws?ticket="+out.Ticket)
	if err != nil {
		t.Fatalf("dial with ticket: %v", err)
	}
	cl.send(map[string]any{"type": "connect", "id": 1})
	if f := cl.expect("connected"); f["user"] != "alice" {
		t.Fatalf("connected: %v", f)
	}
	if _, resp, err := dialPath(t, n, "/v1/ws?ticket="+out.Ticket); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("reused ticket: err %v resp %v", err, resp)
	}
}

// The http.Server's ReadTimeout must not reach upgraded connections: a
// WebSocket that outlives it keeps working.
func TestWebSocketOutlivesHTTPReadTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past the 30 s http.Server ReadTimeout")
	}
	n := startNode(t, func(c *server.Config) {
		c.Heartbeat = server.HeartbeatConfig{Interval: 5 * time.Second, Timeout: 5 * time.Second}
	})
	cl := connectClient(t, n, "long")
	time.Sleep(31 * time.Second)
	if r := cl.request(map[string]any{"type": "ping", "id": 9}); r["type"] != "pong" {
		t.Fatalf("after 31 s: %v", r)
	}
}

func TestConnectionGoneRightAfterFramesEndsTheSession(t *testing.T) {
	// A client sends frames and drops the TCP connection at once: the end
	// of the wire reaches the server while those frames still wait to be
	// handled. The session must still end (after handling them), or the
	// node would count the connection forever.
	n := startNode(t, nil)
	for i := range 30 {
		cl := connectClient(t, n, fmt.Sprint("gone-", i))
		for id := range 20 {
			cl.send(map[string]any{"type": "ping", "id": id + 2})
		}
		_ = cl.c.CloseNow()
	}
	eventually(t, "every session ended", func() bool { return n.srv.Stats().Connections == 0 })
}
