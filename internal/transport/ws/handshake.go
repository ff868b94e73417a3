package ws

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// acceptGUID is the fixed string of RFC 6455 section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// Upgrade completes the server side of the WebSocket opening handshake
// (RFC 6455 section 4.2) and takes over the connection from net/http.
//
// It checks that r is a GET over HTTP/1.1 with "Upgrade: websocket", a
// Connection header holding the "upgrade" token, "Sec-WebSocket-Version: 13"
// (else 426 with "Sec-WebSocket-Version: 13") and a Sec-WebSocket-Key that is
// 16 bytes in base64. It chooses a subprotocol (see Options.Subprotocols and
// Options.RequireSubprotocol) and, when Options.Compression is set,
// negotiates permessage-deflate. Headers already set on w (cookies, for
// instance) are sent with the 101 response.
//
// On failure Upgrade writes an HTTP error with a plain-text body and returns
// a *HandshakeError; r and w must not be used to answer again. On success it
// returns a Conn on which Serve must be called to start reading; the caller
// must not use w or r afterwards, and the Conn keeps no reference to either.
// Origin checks, authentication and rate limiting are the caller's, before
// Upgrade.
func Upgrade(w http.ResponseWriter, r *http.Request, opts *Options) (*Conn, error) {
	if opts == nil {
		opts = defaultOptions
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return nil, refuse(w, http.StatusMethodNotAllowed, "WebSocket handshake must be a GET request")
	}
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return nil, refuse(w, http.StatusBadRequest, "WebSocket handshake requires HTTP/1.1")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return nil, refuse(w, http.StatusBadRequest, `missing "Upgrade: websocket" header`)
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return nil, refuse(w, http.StatusBadRequest, `"Connection" header lacks the "upgrade" token`)
	}
	if v := r.Header.Values("Sec-WebSocket-Version"); len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return nil, refuse(w, http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version: this server speaks version 13")
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 || !validKey(keys[0]) {
		return nil, refuse(w, http.StatusBadRequest, "Sec-WebSocket-Key must be one base64-encoded 16-byte value")
	}
	key := strings.TrimSpace(keys[0])

	subprotocol, offered := chooseSubprotocol(r.Header.Values("Sec-WebSocket-Protocol"), opts.Subprotocols)
	if subprotocol == "" && offered && opts.RequireSubprotocol {
		return nil, refuse(w, http.StatusBadRequest,
			"none of the requested subprotocols is supported; this server speaks: "+strings.Join(opts.Subprotocols, ", "))
	}
	compress := opts.Compression && negotiateDeflate(r.Header.Values("Sec-WebSocket-Extensions"))

	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, refuse(w, http.StatusInternalServerError, "cannot take over the connection: "+err.Error())
	}
	// Bytes the client sent right after the request may already sit in
	// net/http's reader; they are the first frame bytes.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early = make([]byte, n)
		_, _ = brw.Reader.Read(early)
	}

	resp := getBuf(256)
	b := append(*resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAcceptKey(b, key)
	b = append(b, "\r\n"...)
	if subprotocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
		b = append(b, "\r\n"...)
	}
	if compress {
		b = append(b, "Sec-WebSocket-Extensions: "+deflateResponse+"\r\n"...)
	}
	for name, values := range w.Header() {
		if reservedResponseHeader(name) {
			continue
		}
		for _, v := range values {
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, strings.Map(stripCRLF, v)...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	*resp = b

	// The http.Server may have set read and write deadlines (ReadTimeout,
	// WriteTimeout) that must not outlive the upgrade: a WebSocket lives
	// as long as its heartbeats say.
	_ = nc.SetDeadline(time.Time{})
	_ = nc.SetWriteDeadline(time.Now().Add(opts.writeTimeout()))
	_, err = nc.Write(b)
	putBuf(resp)
	if err == nil {
		err = nc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		_ = nc.Close()
		return nil, &HandshakeError{Status: http.StatusSwitchingProtocols, Reason: "writing the 101 response: " + err.Error()}
	}

	c := &Conn{
		nc:          nc,
		opts:        opts,
		subprotocol: subprotocol,
		early:       early,
	}
	c.p = parser{maxMsg: opts.maxMessage(), tooBig: opts.tooBigCode(), deflate: compress}
	c.compress = compress
	c.lastActivity.Store(time.Now().UnixNano())
	if sc, ok := nc.(syscall.Conn); ok && rawIOSupported {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
		}
	}
	return c, nil
}

// refuse writes an HTTP error response and returns the matching error.
func refuse(w http.ResponseWriter, status int, reason string) error {
	http.Error(w, "websocket: "+reason, status)
	return &HandshakeError{Status: status, Reason: reason}
}

// headerHasToken reports whether any comma-separated element of the named
// header equals token, ignoring case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// validKey reports whether key is base64 of exactly 16 bytes.
func validKey(key string) bool {
	key = strings.TrimSpace(key)
	if len(key) != 24 {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], []byte(key))
	return err == nil && n == 16
}

// appendAcceptKey appends the Sec-WebSocket-Accept value for key.
func appendAcceptKey(b []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	copy(in[copy(in[:], key):], acceptGUID)
	sum := sha1.Sum(in[:])
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// chooseSubprotocol returns the first subprotocol in the client's order that
// the server supports (as the server's string, so that no part of the request
// is retained), and whether the client offered any.
func chooseSubprotocol(values, supported []string) (chosen string, offered bool) {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			offered = true
			for _, s := range supported {
				if s == t {
					return s, true
				}
			}
		}
	}
	return "", offered
}

// reservedResponseHeader reports headers that Upgrade writes itself.
func reservedResponseHeader(name string) bool {
	switch http.CanonicalHeaderKey(name) {
	case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol",
		"Sec-Websocket-Extensions", "Content-Length", "Transfer-Encoding", "Content-Type":
		return true
	}
	return false
}

func stripCRLF(r rune) rune {
	if r == '\r' || r == '\n' {
		return ' '
	}
	return r
}
