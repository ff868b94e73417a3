package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/server"
)

// call sends a request to the node and returns the status, the
// Retry-After header and the body.
func call(t testing.TB, method, url string, header http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), b.String()
}

// from is a header set for a request forwarded by a trusted proxy on
// behalf of ip, with an optional API key.
func from(ip, apiKey string) http.Header {
	h := http.Header{}
	h.Set("X-Forwarded-For", ip)
	if apiKey != "" {
		h.Set("Authorization", "Bearer "+apiKey)
	}
	return h
}

// TestAPIAuthFailureLimit: wrong API keys from one address get 401 up to
// the burst, then 429 with Retry-After on every call from that address
// (IPv6: its /64), the right key included; other addresses are not
// affected. The addresses come through a trusted proxy (loopback).
func TestAPIAuthFailureLimit(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8"}
		c.API = server.APIConfig{AuthFailureRate: 0.001, AuthFailureBurst: 5}
	})
	stats := n.base + "/v1/api/stats"
	for i := range 5 {
		if code, _, body := call(t, http.MethodGet, stats, from("2001:db8:7:7::1", "wrong")); code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: HTTP %d %s, want 401", i+1, code, body)
		}
	}
	for _, c := range []struct{ ip, key string }{
		{"2001:db8:7:7::1", "wrong"},
		{"2001:db8:7:7::1", testAPIKey},
		{"2001:db8:7:7:ffff::2", testAPIKey}, // same /64
	} {
		code, retry, body := call(t, http.MethodGet, stats, from(c.ip, c.key))
		if code != http.StatusTooManyRequests || retry == "" || !strings.Contains(body, "too many failed API authentications") {
			t.Fatalf("from %s with key %q over the limit: HTTP %d Retry-After %q %s; want 429 with Retry-After", c.ip, c.key, code, retry, body)
		}
	}
	for _, ip := range []string{"2001:db8:7:8::1", "198.51.100.7"} {
		if code, _, body := call(t, http.MethodGet, stats, from(ip, testAPIKey)); code != http.StatusOK {
			t.Fatalf("from %s (another address): HTTP %d %s, want 200", ip, code, body)
		}
	}
}

// TestHandshakeLimitPerIPv6Slash64: the handshake limiter counts an IPv6
// client by its /64 (a host usually holds a whole /64), IPv4 by address.
func TestHandshakeLimitPerIPv6Slash64(t *testing.T) {
	n := startNode(t, func(c *server.Config) {
		c.TrustedProxies = []string{"127.0.0.0/8"}
		c.Handshake = server.HandshakeConfig{Rate: 0.001, Burst: 2}
	})
	ws := n.base + "/v1/ws"
	limited := func(ip string) bool {
		code, retry, _ := call(t, http.MethodGet, ws, from(ip, ""))
		return code == http.StatusTooManyRequests && retry != ""
	}
	for _, ip := range []string{"2001:db8:1:2::a", "2001:db8:1:2:8000::b"} {
		if limited(ip) {
			t.Fatalf("%s limited within the burst", ip)
		}
	}
	if !limited("2001:db8:1:2:ffff:ffff:ffff:ffff") {
		t.Fatal("a third address of the same /64 was not limited")
	}
	if limited("2001:db8:1:3::a") {
		t.Fatal("the next /64 was limited")
	}
	first, second, third := limited("198.51.100.1"), limited("198.51.100.1"), limited("198.51.100.1")
	if first || second || !third {
		t.Fatalf("IPv4: want two handshakes, then 429 (limited: %v, %v, %v)", first, second, third)
	}
	if limited("198.51.100.2") {
		t.Fatal("the next IPv4 address was limited")
	}
}

// jwksKey is an RSA key published by a JWKS endpoint under kid "k1".
type jwksKey struct{ priv *rsa.PrivateKey }

func (k jwksKey) document() []byte {
	enc := base64.RawURLEncoding.EncodeToString
	doc := map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": enc(k.priv.N.Bytes()), "e": enc(big.NewInt(int64(k.priv.E)).Bytes()),
	}}}
	b, _ := json.Marshal(doc)
	return b
}

func (k jwksKey) token(t testing.TB, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWKSDownAtStartAndMidRun: a node whose JWKS endpoint is down starts
// anyway and answers handshakes 503 with Retry-After (the fault is the
// server's, not the token's); once the endpoint is up the same token is
// accepted; when it goes down again the cached keys keep working.
func TestJWKSDownAtStartAndMidRun(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	key := jwksKey{priv}
	// An address with nothing listening: the endpoint is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	n := startNode(t, func(c *server.Config) {
		c.Token = server.TokenConfig{JWKSURL: "http://" + addr + "/jwks.json"}
	})
	tok := key.token(t, "alice")
	ticket := func() (int, string, string) {
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tok)
		return call(t, http.MethodPost, n.base+"/v1/tickets", h)
	}
	if code, retry, body := ticket(); code != http.StatusServiceUnavailable || retry == "" || !strings.Contains(body, "JWKS") {
		t.Fatalf("JWKS down at start: HTTP %d Retry-After %q %s; want 503 with Retry-After naming the JWKS", code, retry, body)
	}

	// The endpoint comes up on that address.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the JWKS address was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(key.document())
	})}
	go func() { _ = srv.Serve(ln) }()
	// The cache refetches at most every 10 s after a failure (so made-up
	// kids cannot hammer the issuer): the guard leaves room for that.
	deadline := time.Now().Add(45 * time.Second)
	for {
		code, _, body := ticket()
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("JWKS up again: still HTTP %d %s after 45 s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Down again, mid-run: the cached key still verifies.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if code, _, body := ticket(); code != http.StatusOK {
			t.Fatalf("JWKS down mid-run, request %d: HTTP %d %s; want 200 from the cached key", i+1, code, body)
		}
	}
	// A token signed by a key the cache does not have is not accepted
	// (401 for the unknown kid, or 503 while the endpoint is down).
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	tok = jwksKey{other}.token(t, "mallory")
	if code, _, _ := ticket(); code == http.StatusOK {
		t.Fatal("a token of an unknown key was accepted")
	}
}

// TestLogsIPFull: with logs.ip full the connection logs carry the whole
// client address and the transparency report says so, with the retention
// the operator committed to (docs/security.md section 7); with the default
// the address is truncated (TestLogsKeepIPsPrivateAndTokensOut).
func TestLogsIPFull(t *testing.T) {
	var logs syncBuffer
	n := startNodeWith(t, func(c *server.Config) {
		c.Logs = server.LogsConfig{IP: "full", IPRetention: 7 * 24 * time.Hour}
	}, server.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	cl := connectClient(t, n, "alice")
	cl.close()
	eventually(t, "close logged", func() bool { return strings.Contains(logs.String(), "connection closed") })
	if !strings.Contains(logs.String(), `"remote":"127.0.0.1"`) {
		t.Fatalf("logs.ip full: the full address is not logged:\n%s", logs.String())
	}
	code, _, body := call(t, http.MethodGet, n.base+"/v1/transparency", nil)
	var rep map[string]any
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("transparency: HTTP %d %s", code, body)
	}
	if !strings.Contains(body, "full") || !strings.Contains(body, "168h") {
		t.Fatalf("transparency report does not state full IPs kept 168h: %s", body)
	}
}

// TestSessionTokenBoundToNetwork: with session.bind_network a fallback
// session token works from its own network (IPv6 /48) and gets 401 from
// another; without it, any network may use it.
func TestSessionTokenBoundToNetwork(t *testing.T) {
	for _, bind := range []bool{true, false} {
		t.Run(fmt.Sprintf("bind=%v", bind), func(t *testing.T) {
			n := startNode(t, func(c *server.Config) {
				c.TrustedProxies = []string{"127.0.0.0/8"}
				c.Session.BindNetwork = bind
			})
			open := fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "alice", time.Hour, nil))
			req, _ := http.NewRequest(http.MethodPost, n.base+"/v1/sessions?transport=poll", strings.NewReader(open))
			req.Header.Set("X-Forwarded-For", "2001:db8:1:1::5")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var connected struct {
				SessionToken string `json:"session_token"`
			}
			err = json.NewDecoder(resp.Body).Decode(&connected)
			resp.Body.Close()
			if err != nil || connected.SessionToken == "" {
				t.Fatalf("open session: HTTP %d, %v", resp.StatusCode, err)
			}
			poll := func(ip string) (int, string) {
				h := from(ip, "")
				h.Set("Ferry-Session", connected.SessionToken)
				code, _, body := call(t, http.MethodPost, n.base+"/v1/poll?wait=0", h)
				return code, body
			}
			if code, body := poll("2001:db8:1:ffff::9"); code != http.StatusOK {
				t.Fatalf("poll from the same /48: HTTP %d %s", code, body)
			}
			code, body := poll("2001:db8:2::1")
			if bind && (code != http.StatusUnauthorized || !strings.Contains(body, "another network")) {
				t.Fatalf("poll from another network with bind_network: HTTP %d %s, want 401", code, body)
			}
			if !bind && code != http.StatusOK {
				t.Fatalf("poll from another network without bind_network: HTTP %d %s, want 200", code, body)
			}
			if code, body := poll("2001:db8:1:1::5"); code != http.StatusOK {
				t.Fatalf("poll from the first address again: HTTP %d %s", code, body)
			}
		})
	}
}

// TestSessionTokenBoundToNetworkAcrossNodes: the binding travels with the
// session's record, so a node that would adopt the session refuses the
// token from another network before adopting it, adopts it from the
// token's own network, and keeps refusing other networks after that.
func TestSessionTokenBoundToNetworkAcrossNodes(t *testing.T) {
	rs := redistest.Start(t)
	shared := func(id string) func(*server.Config) {
		return func(c *server.Config) {
			c.Broker = rs.URL()
			c.NodeID = id
			c.TrustedProxies = []string{"127.0.0.0/8"}
			c.Session.BindNetwork = true
		}
	}
	a, b := startNode(t, shared("a")), startNode(t, shared("b"))
	open := fmt.Sprintf(`{"type":"connect","id":1,"token":%q}`, token(t, "alice", time.Hour, nil))
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/sessions?transport=poll", strings.NewReader(open))
	req.Header.Set("X-Forwarded-For", "2001:db8:1:1::5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var connected struct {
		SessionToken string `json:"session_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&connected)
	resp.Body.Close()
	if err != nil || connected.SessionToken == "" {
		t.Fatalf("open session: HTTP %d, %v", resp.StatusCode, err)
	}
	poll := func(n *node, ip string) (int, string) {
		h := from(ip, "")
		h.Set("Ferry-Session", connected.SessionToken)
		code, _, body := call(t, http.MethodPost, n.base+"/v1/poll?wait=0", h)
		return code, body
	}
	if code, body := poll(b, "2001:db8:2::1"); code != http.StatusUnauthorized || !strings.Contains(body, "another network") {
		t.Fatalf("poll on the other node from another network: HTTP %d %s, want 401", code, body)
	}
	if code, body := poll(b, "2001:db8:1:ffff::9"); code != http.StatusOK {
		t.Fatalf("poll on the other node from the same /48 (adoption): HTTP %d %s", code, body)
	}
	if code, body := poll(b, "2001:db8:2::1"); code != http.StatusUnauthorized {
		t.Fatalf("poll on the adopting node from another network after the adoption: HTTP %d %s, want 401", code, body)
	}
}
