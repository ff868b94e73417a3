package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of every hook request and webhook.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" keyed by the shared secret>".
	HeaderSignature = "Ferry-Signature"
	// HeaderHook names the hook ("connect", ..., "webhook").
	HeaderHook = "Ferry-Hook"
	// HeaderEvent names a webhook's event kind.
	HeaderEvent = "Ferry-Event"
)

// Errors of Verify.
var (
	ErrNoSignature  = errors.New("webhook signature: missing or malformed header")
	ErrBadSignature = errors.New("webhook signature: does not match the body")
	ErrStale        = errors.New("webhook signature: timestamp outside the tolerance")
)

// Sign returns the Ferry-Signature value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a Ferry-Signature header value against body: the HMAC
// must match and its timestamp be within tolerance of now (a replayed old
// request fails). The comparison takes constant time.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrNoSignature
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return ErrNoSignature
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrNoSignature
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	return nil
}
