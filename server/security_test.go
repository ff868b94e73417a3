package server_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

func TestPublishRateLimitThenClose(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.ClientPublish = server.ClientPublishConfig{Rate: 1, Burst: 3, CloseAfter: 5}
	})
	cl := connectClient(t, n, "spammer")
	other := connectClient(t, n, "calm")
	frames := make([]map[string]any, 20)
	for i := range frames {
		frames[i] = map[string]any{"type": "publish", "id": 10 + i, "channel": "chat:spam", "data": i}
	}
	b, _ := json.Marshal(frames)
	cl.sendRaw(b)
	published, limited := 0, 0
	var disc map[string]any
	for disc == nil {
		f := cl.next()
		switch f["type"] {
		case "published":
			published++
		case "error":
			if num(f["code"]) != 429 || f["retry"] != true {
				t.Fatalf("error: %v", f)
			}
			limited++
		case "disconnect":
			disc = f
		}
	}
	if published != 3 || limited != 4 || num(disc["code"]) != protocol.CloseRateLimited || num(disc["retry_after_ms"]) <= 0 {
		t.Fatalf("published %d, limited %d, disconnect %v", published, limited, disc)
	}
	if code, _ := cl.closed(); code != protocol.CloseRateLimited {
		t.Fatalf("close %d", code)
	}
	if r := other.request(map[string]any{"type": "ping", "id": 3}); r["type"] != "pong" {
		t.Fatalf("another client disturbed: %v", r)
	}
}

func TestMaxSubscriptionsPerConnection(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxSubscriptions = 2 })
	cl := connectClient(t, n, "greedy")
	for i, ch := range []string{"chat:a", "chat:b"} {
		if r := cl.request(map[string]any{"type": "subscribe", "id": 2 + i, "channel": ch}); r["type"] != "subscribed" {
			t.Fatalf("subscribe %s: %v", ch, r)
		}
	}
	r := cl.request(map[string]any{"type": "subscribe", "id": 9, "channel": "chat:c"})
	if r["type"] != "error" || num(r["code"]) != 403 || !strings.Contains(r["reason"].(string), "limit") {
		t.Fatalf("third subscribe: %v", r)
	}
}

func TestNodeConnectionCap(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.MaxConnections = 2 })
	connectClient(t, n, "a")
	connectClient(t, n, "b")
	_, resp, err := dial(t, n, dialOpts{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third connection: err %v resp %v", err, resp)
	}
}

func TestOriginPolicy(t *testing.T) {
	n := startNode(t, nil)
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"allowed origin", http.Header{"Origin": {"https://app.example.com"}}, 101},
		{"wrong origin", http.Header{"Origin": {"https://evil.example.net"}}, 403},
		{"suffix trick", http.Header{"Origin": {"https://app.example.com.evil.net"}}, 403},
		{"no Origin from a browser context", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Sec-Fetch-Mode": {"websocket"}}, 403},
		{"no Origin, not a browser", nil, 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, resp, err := dial(t, n, dialOpts{header: tc.header})
			got := 101
			if err != nil {
				if resp == nil {
					t.Fatalf("dial: %v", err)
				}
				got = resp.StatusCode
			} else {
				cl.close()
			}
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
}

func TestTokenExpiryAndRefresh(t *testing.T) {
	n := startNode(t, nil)
	short := func(user string) *client {
		cl, _, err := dial(t, n, dialOpts{})
		if err != nil {
			t.Fatal(err)
		}
		cl.send(map[string]any{"type": "connect", "id": 1, "token": token(t, user, 2*time.Second, nil)})
		if c := cl.expect("connected"); num(c["expires_at"]) <= 0 {
			t.Fatalf("connected without expires_at: %v", c)
		}
		return cl
	}
	stale, fresh := short("stale"), short("fresh")
	r := fresh.request(map[string]any{"type": "refresh", "id": 5, "token": token(t, "fresh", time.Hour, nil)})
	if r["type"] != "refreshed" || num(r["expires_at"]) < float64(time.Now().Add(50*time.Minute).Unix()) {
		t.Fatalf("refresh: %v", r)
	}
	if r := fresh.request(map[string]any{"type": "refresh", "id": 6, "token": token(t, "someone-else", time.Hour, nil)}); r["type"] != "error" || num(r["code"]) != 403 {
		t.Fatalf("refresh with another user's token: %v", r)
	}
	if code, reason := stale.closed(); code != protocol.CloseTokenExpired {
		t.Fatalf("stale: close %d %q", code, reason)
	}
	if r := fresh.request(map[string]any{"type": "ping", "id": 7}); r["type"] != "pong" {
		t.Fatalf("refreshed connection: %v", r)
	}
}

// A client that opens a TCP connection and dribbles an incomplete request
// is dropped after connect_timeout (the http.Server's ReadHeaderTimeout).
func TestSlowlorisHandshakeDropped(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.ConnectTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(n.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgr")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	if len(b) > 0 && !strings.Contains(string(b), "408") && !strings.Contains(string(b), "400") {
		t.Fatalf("unexpected reply: %q", b)
	}
}

func TestTransparencyReport(t *testing.T) {
	n := startNode(t, nil)
	connectClient(t, n, "alice")
	resp, err := http.Get(n.base + "/v1/transparency")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	ns, _ := rep["namespaces"].(map[string]any)
	chat, _ := ns["chat"].(map[string]any)
	if num(rep["connections"]) != 1 || chat == nil || chat["history_ttl"] != "1h0m0s" || rep["log_ip_retention"] == nil {
		t.Fatalf("report: %v", rep)
	}
}

// syncBuffer is a log sink that tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLogsKeepIPsPrivateAndTokensOut(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	n := startNodeWith(t, nil, server.Options{Logger: log})
	tok := token(t, "alice", time.Hour, nil)
	cl := connectClient(t, n, "alice")
	cl.close()
	// A refused handshake with secrets in the URL.
	resp, err := http.Get(n.base + "/v1/ws?ticket=SECRET-TICKET&x=1")
	if err == nil {
		resp.Body.Close()
	}
	req, _ := http.NewRequest("GET", n.base+"/v1/ws?ticket=SECRET-TICKET", nil)
	req.Header.Set("Origin", "https://evil.example.net")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	eventually(t, "close logged", func() bool { return strings.Contains(logs.String(), "connection closed") })
	out := logs.String()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"remote"`) && !strings.Contains(line, `"remote":"127.0.0.0/24"`) {
			t.Fatalf("client IP not truncated: %s", line)
		}
	}
	if !strings.Contains(out, `"remote":"127.0.0.0/24"`) {
		t.Fatalf("no client address logged:\n%s", out)
	}
	if strings.Contains(out, "SECRET-TICKET") || strings.Contains(out, tok) {
		t.Fatalf("a secret reached the logs:\n%s", out)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t testing.TB, dir, name string) (certFile, keyFile string, der []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, der
}

func TestTLSAndCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, first := selfSigned(t, dir, "first")
	n := startNode(t, func(c *server.Config) { c.TLS = server.TLSConfig{CertFile: certFile, KeyFile: keyFile} })
	served := func() []byte {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(n.base, "https://"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		st := c.ConnectionState()
		if st.Version < tls.VersionTLS12 {
			t.Fatalf("TLS version %x", st.Version)
		}
		return st.PeerCertificates[0].Raw
	}
	if !bytes.Equal(served(), first) {
		t.Fatal("not serving the configured certificate")
	}
	_, _, second := selfSigned(t, dir, "second") // overwrites the files
	if err := n.srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(), second) {
		t.Fatal("reload did not switch the certificate")
	}
	// A WebSocket over TLS works end to end.
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(second)
	pool.AddCert(cert)
	old := http.DefaultTransport
	http.DefaultTransport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer func() { http.DefaultTransport = old }()
	cl := connectClient(t, n, "secure")
	if r := cl.request(map[string]any{"type": "ping", "id": 2}); r["type"] != "pong" {
		t.Fatalf("wss: %v", r)
	}
}
