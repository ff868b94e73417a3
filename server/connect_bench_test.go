package server_test

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

// BenchmarkConnect is one connection's whole life on a real node over
// loopback: TCP, the upgrade with a bearer token, one message holding
// [connect, subscribe], the replies, and the close. allocs/op and B/op are
// the process's, the node's and a raw client's (a dial, a write, reads
// into one buffer) together, so they track what the node allocates per
// connection; ns/op on a loaded machine means little.
func BenchmarkConnect(b *testing.B) {
	n := startNode(b, func(c *server.Config) {
		c.MaxConnectionsPerUser = 0
		c.AllowedOrigins = nil
	})
	addr := strings.TrimPrefix(n.base, "http://")
	// Distinct tokens, minted before the clock starts.
	reqs := make([][]byte, 256)
	for i := range reqs {
		hello := `[{"type":"connect","id":1},{"type":"subscribe","id":2,"channel":"news:bench"}]`
		var req bytes.Buffer
		fmt.Fprintf(&req, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ferry.v1.json\r\n"+
			"Authorization: Bearer %s\r\n\r\n", addr, token(b, fmt.Sprintf("bench-%d", i), time.Hour, nil))
		// A masked text frame; the all-zero mask leaves the payload as
		// it is (RFC 6455 allows any key).
		req.Write([]byte{0x81, 0x80 | byte(len(hello)), 0, 0, 0, 0}) // len < 126
		req.WriteString(hello)
		reqs[i] = req.Bytes()
	}
	buf := make([]byte, 4096)
	want := []byte(`"subscribed"`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		got := 0
		for !bytes.Contains(buf[:got], want) {
			m, err := c.Read(buf[got:])
			if err != nil {
				b.Fatalf("after %q: %v", buf[:got], err)
			}
			got += m
		}
		_ = c.Close()
		i++
	}
}
