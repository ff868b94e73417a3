package client

import (
	"fmt"
	"net/url"
	"strings"
)

// wsPath is the WebSocket endpoint of a node.
const wsPath = "/v1/ws"

// WebSocketURL returns the WebSocket URL for raw, which may be a node's base
// URL (http://host:8080, https://host, ws://host:8080, also with a path
// prefix such as https://host/ferry behind a proxy) or the full WebSocket
// URL (ws://host:8080/v1/ws). http becomes ws and https wss.
func WebSocketURL(raw string) (string, error) {
	u, err := parseBase(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + wsPath
	u.RawPath = ""
	return u.String(), nil
}

// HTTPBaseURL returns the node's base HTTP URL for raw (any form
// WebSocketURL accepts), without a trailing slash: ws becomes http, wss
// https, and a trailing /v1/ws is removed. The server API lives under it.
func HTTPBaseURL(raw string) (string, error) {
	u, err := parseBase(raw)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// parseBase parses raw and strips a trailing /v1/ws.
func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("url %q: want an http, https, ws or wss URL", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("url %q: no host", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("url %q: credentials in the URL are not supported (use Config.Token)", raw)
	}
	if q := u.Query(); q.Has("token") {
		return nil, fmt.Errorf("url %q: a token in the URL is refused by the server (URLs end up in logs): use Config.Token", raw)
	}
	u.Fragment = ""
	p := strings.TrimSuffix(u.Path, "/")
	u.Path = strings.TrimSuffix(p, wsPath)
	return u, nil
}
