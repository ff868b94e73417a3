package ws

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandshakeFailures(t *testing.T) {
	valid := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/ws", nil)
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Sec-WebSocket-Key", testKey)
		r.Header.Set("Sec-WebSocket-Version", "13")
		return r
	}
	tests := []struct {
		name       string
		opts       *Options
		modify     func(r *http.Request)
		status     int
		bodyPart   string
		wantHeader [2]string
	}{
		{"not GET", nil, func(r *http.Request) { r.Method = http.MethodPost }, 405, "must be a GET", [2]string{"Allow", "GET"}},
		{"HTTP/1.0", nil, func(r *http.Request) { r.ProtoMinor = 0 }, 400, "HTTP/1.1", [2]string{}},
		{"missing Upgrade", nil, func(r *http.Request) { r.Header.Del("Upgrade") }, 400, "Upgrade: websocket", [2]string{}},
		{"wrong Upgrade", nil, func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, 400, "Upgrade: websocket", [2]string{}},
		{"Connection without upgrade", nil, func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, 400, "upgrade", [2]string{}},
		{"missing version", nil, func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") }, 426, "version 13", [2]string{"Sec-WebSocket-Version", "13"}},
		{"wrong version", nil, func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, 426, "version 13", [2]string{"Sec-WebSocket-Version", "13"}},
		{"missing key", nil, func(r *http.Request) { r.Header.Del("Sec-WebSocket-Key") }, 400, "Sec-WebSocket-Key", [2]string{}},
		{"key not base64", nil, func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!") }, 400, "Sec-WebSocket-Key", [2]string{}},
		{"key of 15 bytes", nil, func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA") }, 400, "Sec-WebSocket-Key", [2]string{}},
		{"two keys", nil, func(r *http.Request) { r.Header.Add("Sec-WebSocket-Key", testKey) }, 400, "Sec-WebSocket-Key", [2]string{}},
		{
			"unsupported subprotocol refused", &Options{Subprotocols: []string{"ferry.v1.json"}, RequireSubprotocol: true},
			func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "mqtt, stomp") }, 400, "ferry.v1.json", [2]string{},
		},
		// A valid request reaches Hijack, which the recorder cannot do.
		{"cannot hijack", nil, func(r *http.Request) {}, 500, "take over", [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := valid()
			tt.modify(r)
			w := httptest.NewRecorder()
			c, err := Upgrade(w, r, tt.opts)
			if c != nil || err == nil {
				t.Fatalf("Upgrade succeeded, want status %d", tt.status)
			}
			he, ok := err.(*HandshakeError)
			if !ok || he.Status != tt.status {
				t.Fatalf("error %v, want HandshakeError with status %d", err, tt.status)
			}
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.bodyPart) {
				t.Fatalf("response %d %q, want %d containing %q", w.Code, w.Body.String(), tt.status, tt.bodyPart)
			}
			if tt.wantHeader[0] != "" && w.Header().Get(tt.wantHeader[0]) != tt.wantHeader[1] {
				t.Fatalf("header %s = %q, want %q", tt.wantHeader[0], w.Header().Get(tt.wantHeader[0]), tt.wantHeader[1])
			}
		})
	}
}

func TestHandshakeOverHTTP(t *testing.T) {
	// Real requests through net/http: the wrong version gets 426 with the
	// supported version; a good one gets 101 with the caller's headers.
	ts := newTestServer(t, &Options{Subprotocols: []string{"ferry.v1.json", "ferry.v1.msgpack"}}, nil)
	req, _ := http.NewRequest(http.MethodGet, ts.URL, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", testKey)
	req.Header.Set("Sec-WebSocket-Version", "12")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
		t.Fatalf("status %d version header %q, want 426 and 13", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"))
	}

	c := dialRaw(t, ts.addr(), "Sec-WebSocket-Protocol: mqtt, ferry.v1.msgpack, ferry.v1.json\r\n", nil)
	h := ts.nextHandler(t)
	conn := ts.nextConn(t)
	if conn.Subprotocol() != "ferry.v1.msgpack" {
		t.Fatalf("Subprotocol() = %q, want the client's first supported choice ferry.v1.msgpack", conn.Subprotocol())
	}
	c.send(frame(true, 0x8, nil))
	c.expectClose(0)
	waitClose(t, h)
}

func TestChooseSubprotocol(t *testing.T) {
	supported := []string{"ferry.v1.json", "ferry.v1.msgpack"}
	tests := []struct {
		header  []string
		want    string
		offered bool
	}{
		{nil, "", false},
		{[]string{""}, "", false},
		{[]string{"ferry.v1.msgpack, ferry.v1.json"}, "ferry.v1.msgpack", true},
		{[]string{"a", "b , ferry.v1.json"}, "ferry.v1.json", true},
		{[]string{"mqtt"}, "", true},
		{[]string{"FERRY.V1.JSON"}, "", true}, // subprotocol names are case-sensitive
	}
	for _, tt := range tests {
		got, offered := chooseSubprotocol(tt.header, supported)
		if got != tt.want || offered != tt.offered {
			t.Errorf("chooseSubprotocol(%q) = %q, %v; want %q, %v", tt.header, got, offered, tt.want, tt.offered)
		}
	}
}

func TestNegotiateDeflate(t *testing.T) {
	tests := []struct {
		header []string
		want   bool
	}{
		{nil, false},
		{[]string{"permessage-deflate"}, true},
		{[]string{"permessage-deflate; client_max_window_bits"}, true},
		{[]string{"permessage-deflate; client_max_window_bits=10; server_no_context_takeover"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=10"}, false},
		{[]string{"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, true},
		{[]string{"permessage-deflate; server_max_window_bits=15"}, true},
		{[]string{"permessage-deflate; client_max_window_bits=7"}, false},
		{[]string{"permessage-deflate; unknown_param"}, false},
		{[]string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, false},
		{[]string{"x-webkit-deflate-frame"}, false},
		{[]string{"foo", "permessage-deflate; client_no_context_takeover"}, true},
	}
	for _, tt := range tests {
		if got := negotiateDeflate(tt.header); got != tt.want {
			t.Errorf("negotiateDeflate(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}
