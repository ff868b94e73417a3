package bench

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// Target is one node as the bench reaches it.
type Target struct {
	// Host is host:port.
	Host string `json:"host"`
	// WSPath is the WebSocket endpoint's path, "/v1/ws" by default.
	WSPath string `json:"ws_path"`
	// Base is the HTTP base URL for the server API, http://host:port plus
	// any path prefix.
	Base string `json:"base"`
}

// ParseTarget accepts a node's base URL (http://host:8080, ws://host:8080,
// with an optional path prefix) or its WebSocket URL (ws://host:8080/v1/ws),
// or a bare host:port. TLS (https, wss) is not supported by the bench
// client: benchmark a plain listener.
func ParseTarget(s string) (Target, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w: %q: %v", ErrUnsupportedURL, s, err)
	}
	switch u.Scheme {
	case "http", "ws":
	case "https", "wss":
		return Target{}, fmt.Errorf("%w: %q: TLS is not supported by the bench client", ErrUnsupportedURL, s)
	default:
		return Target{}, fmt.Errorf("%w: %q: scheme must be http or ws", ErrUnsupportedURL, s)
	}
	host := u.Host
	if host == "" {
		return Target{}, fmt.Errorf("%w: %q: no host", ErrUnsupportedURL, s)
	}
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	wsPath := prefix + "/v1/ws"
	if strings.HasSuffix(prefix, "/v1/ws") {
		wsPath = prefix
		prefix = strings.TrimSuffix(prefix, "/v1/ws")
	}
	return Target{Host: host, WSPath: wsPath, Base: "http://" + host + prefix}, nil
}

// loopback reports whether the target's host is a loopback IP address or
// "localhost".
func (t Target) loopback() bool {
	h, _, err := net.SplitHostPort(t.Host)
	if err != nil {
		return false
	}
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// sourceAddrs returns n loopback source addresses starting at 127.0.0.2
// plus skip (in 127.0.0.0/8, skipping x.x.x.0, x.x.x.1 and x.x.x.255), so
// that connections to a loopback server never run out of ephemeral ports.
func sourceAddrs(skip, n int) []string {
	out := make([]string, 0, n)
	// 253 usable last octets (2..254) per /24.
	for i := skip; len(out) < n; i++ {
		k := i % (253 * 256 * 200) // stay well inside 127.0.0.0/8
		a := byte(2 + k%253)
		b := byte((k / 253) % 256)
		c := byte(k / (253 * 256))
		out = append(out, fmt.Sprintf("127.%d.%d.%d", c, b, a))
	}
	return out
}
