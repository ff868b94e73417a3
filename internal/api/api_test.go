package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

// statsOnly is a Backend that answers stats; the limit is checked before
// any call reaches the node, so nothing else is needed here (the server
// tests run the API on a real node).
type statsOnly struct{}

func (statsOnly) Publish(context.Context, PublishRequest) (broker.PublishResult, error) {
	return broker.PublishResult{}, nil
}
func (statsOnly) Disconnect(context.Context, string, int, string) (int, error) { return 0, nil }
func (statsOnly) Presence(context.Context, string) ([]protocol.ClientInfo, error) {
	return nil, nil
}
func (statsOnly) History(context.Context, string, *broker.Position, int) (broker.HistoryResult, error) {
	return broker.HistoryResult{}, nil
}
func (statsOnly) APIStats(context.Context) (any, error) { return map[string]int{"connections": 0}, nil }

func TestAuthFailureLimit(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	addr := netip.MustParseAddr("2001:db8:aa:bb::1")
	h := NewWithOptions(statsOnly{}, Options{
		APIKey:           "right",
		AuthFailureRate:  0.5,
		AuthFailureBurst: 3,
		ClientIP:         func(r *http.Request) netip.Addr { return netip.MustParseAddr(r.Header.Get("X-Test-IP")) },
		Clock:            func() time.Time { return now },
	})
	call := func(key, ip string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/v1/api/stats", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("X-Test-IP", ip)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// The right key takes nothing, however often.
	for range 10 {
		if w := call("right", addr.String()); w.Code != http.StatusOK {
			t.Fatalf("right key: HTTP %d %s", w.Code, w.Body)
		}
	}
	for i := range 3 {
		if w := call("wrong", addr.String()); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d of the burst: HTTP %d, want 401", i+1, w.Code)
		}
	}
	// Over the limit: 429 with Retry-After and a reason, even with the
	// right key, and for another host of the same /64.
	for _, c := range []struct{ key, ip string }{{"wrong", addr.String()}, {"right", addr.String()}, {"right", "2001:db8:aa:bb::99"}} {
		w := call(c.key, c.ip)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
			t.Fatalf("key %s from %s over the limit: HTTP %d Retry-After %q, want 429 and 2", c.key, c.ip, w.Code, w.Header().Get("Retry-After"))
		}
		var body struct {
			Error struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			} `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != 429 || !strings.Contains(body.Error.Reason, "failed API authentications") {
			t.Fatalf("429 body %s (%v)", w.Body, err)
		}
	}
	// Other addresses are not affected.
	if w := call("right", "2001:db8:aa:cc::1"); w.Code != http.StatusOK {
		t.Fatalf("another /64: HTTP %d", w.Code)
	}
	if w := call("right", "192.0.2.7"); w.Code != http.StatusOK {
		t.Fatalf("an IPv4 address: HTTP %d", w.Code)
	}
	// After the refill (one token per 2 s) one more attempt is judged.
	now = now.Add(2 * time.Second)
	if w := call("right", addr.String()); w.Code != http.StatusOK {
		t.Fatalf("right key after the refill: HTTP %d", w.Code)
	}
}

func TestAuthFailureLimitOff(t *testing.T) {
	h := NewWithOptions(statsOnly{}, Options{APIKey: "right", AuthFailureRate: -1})
	for range 100 {
		r := httptest.NewRequest(http.MethodGet, "/v1/api/stats", nil)
		r.Header.Set("Authorization", "Bearer wrong")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("limit off: HTTP %d, want 401", w.Code)
		}
	}
}

func TestAuthFailureLimitDefault(t *testing.T) {
	// Zero rate and burst: the defaults. The clock stands still, so no
	// token comes back during the loop.
	now := time.Unix(1_800_000_000, 0)
	h := NewWithOptions(statsOnly{}, Options{APIKey: "right", Clock: func() time.Time { return now }})
	codes := map[int]int{}
	for range DefaultAuthFailureBurst + 5 {
		r := httptest.NewRequest(http.MethodGet, "/v1/api/stats", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		codes[w.Code]++
	}
	if codes[http.StatusUnauthorized] != DefaultAuthFailureBurst || codes[http.StatusTooManyRequests] != 5 {
		t.Fatalf("codes %v, want %d x 401 then 5 x 429", codes, DefaultAuthFailureBurst)
	}
}
