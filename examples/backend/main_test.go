package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// sign is what Ferry sends in Ferry-Signature.
func sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestBackend(t *testing.T) {
	b := &backend{secret: "s", prices: map[string]int64{}, log: slogDiscard()}
	srv := httptest.NewServer(b.routes())
	defer srv.Close()
	call := func(path string, req map[string]any, sig string) (int, map[string]any) {
		t.Helper()
		body, _ := json.Marshal(req)
		r, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if sig == "" {
			sig = sign("s", time.Now(), body)
		}
		r.Header.Set("Ferry-Signature", sig)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, _ := call("/ferry/connect", map[string]any{}, "t=1,v1=00"); code != http.StatusUnauthorized {
		t.Fatalf("a bad signature got %d, want 401", code)
	}
	if _, out := call("/ferry/connect", map[string]any{"headers": map[string]string{"X-Demo-User": "alice"}}, ""); out["user"] != "alice" {
		t.Fatalf("connect: %v", out)
	}
	if _, out := call("/ferry/publish", map[string]any{"user": "alice", "channel": "auction:7", "data": map[string]any{"amount": 10}}, ""); out["data"] == nil {
		t.Fatalf("first bid: %v", out)
	}
	if _, out := call("/ferry/publish", map[string]any{"user": "bob", "channel": "auction:7", "data": map[string]any{"amount": 5}}, ""); out["error"] == nil {
		t.Fatalf("low bid: %v", out)
	}
	if _, out := call("/ferry/rpc", map[string]any{"method": "auction.price", "data": map[string]any{"lot": "7"}}, ""); out["data"].(map[string]any)["price"] != float64(10) {
		t.Fatalf("price: %v", out)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
