// Command backend is a complete, small application back end for Ferry's
// hooks (docs/hooks.md): it answers the connect, refresh, subscribe,
// publish and rpc hooks of an auction, and receives the webhooks. Every
// request's Ferry-Signature is verified before anything is read from it.
//
//	FERRY_HOOKS_SECRET=change-me go run ./examples/backend -addr 127.0.0.1:9000
//
// and start Ferry with the hooks pointing at it (see README.md here).
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address (loopback by default)")
	flag.Parse()
	secret := os.Getenv("FERRY_HOOKS_SECRET")
	if secret == "" {
		return errors.New("set FERRY_HOOKS_SECRET to Ferry's hooks.secret")
	}
	b := &backend{secret: secret, prices: map[string]int64{}, log: slog.New(slog.NewJSONHandler(os.Stderr, nil))}
	b.log.Info("listening", slog.String("addr", *addr))
	srv := &http.Server{Addr: *addr, Handler: b.routes(), ReadHeaderTimeout: 5 * time.Second}
	return srv.ListenAndServe()
}

// backend holds the auction's state: the current price of each lot.
type backend struct {
	secret string
	log    *slog.Logger

	mu     sync.Mutex       // guards prices
	prices map[string]int64 // by channel (auction:LOT)
}

func (b *backend) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ferry/connect", b.signed(b.connect))
	mux.HandleFunc("POST /ferry/refresh", b.signed(b.refresh))
	mux.HandleFunc("POST /ferry/subscribe", b.signed(b.subscribe))
	mux.HandleFunc("POST /ferry/publish", b.signed(b.publish))
	mux.HandleFunc("POST /ferry/rpc", b.signed(b.rpc))
	mux.HandleFunc("POST /ferry/events", b.signed(b.event))
	return mux
}

// request is what every hook request carries (docs/hooks.md).
type request struct {
	Conn      string            `json:"conn"`
	User      string            `json:"user"`
	Transport string            `json:"transport"`
	IP        string            `json:"ip"`
	Headers   map[string]string `json:"headers"`
	Info      json.RawMessage   `json:"info"`
	Client    string            `json:"client"`     // connect
	ExpiresAt int64             `json:"expires_at"` // refresh
	Channel   string            `json:"channel"`    // subscribe, publish
	Data      json.RawMessage   `json:"data"`       // publish, rpc
	Key       string            `json:"key"`        // publish
	Method    string            `json:"method"`     // rpc
}

type refusal struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// signed verifies Ferry-Signature over the raw body, then decodes the
// request for h; h's result is the JSON answer.
func (b *backend) signed(h func(*request) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if err := verify(b.secret, r.Header.Get("Ferry-Signature"), body, time.Now()); err != nil {
			b.log.Warn("refused an unsigned request", slog.String("path", r.URL.Path), slog.Any("err", err))
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var req request
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad JSON", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h(&req))
	}
}

// verify checks "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body>" and
// refuses a timestamp more than five minutes from now (a replay).
func verify(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, kv := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("no Ferry-Signature")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("signature too old")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return errors.New("signature does not match")
	}
	return nil
}

// connect lets in the user the application's front end named in the
// X-Demo-User header (forwarded by hooks.forward_headers; a real back
// end reads its session cookie instead), subscribes it to its own
// channel, and gives it an hour.
func (b *backend) connect(r *request) any {
	user := r.Headers["X-Demo-User"]
	if user == "" {
		return map[string]any{"error": refusal{Code: 4001, Reason: "log in first"}}
	}
	if user == "mallory" {
		return map[string]any{"error": refusal{Code: 4003, Reason: "banned"}}
	}
	return map[string]any{
		"user":       user,
		"channels":   []string{"user:" + user},
		"expires_at": time.Now().Add(time.Hour).Unix(),
		"info":       map[string]string{"plan": "free"},
	}
}

// refresh extends every connection by another hour.
func (b *backend) refresh(r *request) any {
	return map[string]any{"expires_at": time.Now().Add(time.Hour).Unix()}
}

// subscribe lets anyone watch an auction, and only the user its own
// channel.
func (b *backend) subscribe(r *request) any {
	if owner, ok := strings.CutPrefix(r.Channel, "user:"); ok && owner != r.User {
		return map[string]any{"error": refusal{Code: 403, Reason: "not your channel"}}
	}
	return map[string]any{"info": map[string]string{"role": "bidder"}}
}

// publish is the bid check: a bid must beat the lot's price; the
// published bid carries the bidder, from the connection, not the client.
func (b *backend) publish(r *request) any {
	var bid struct {
		Amount int64 `json:"amount"`
	}
	if err := json.Unmarshal(r.Data, &bid); err != nil || bid.Amount <= 0 {
		return map[string]any{"error": refusal{Code: 400, Reason: `a bid is {"amount": N}`}}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if price := b.prices[r.Channel]; bid.Amount <= price {
		return map[string]any{"error": refusal{Code: 409, Reason: fmt.Sprintf("bid too low: the price is %d", price)}}
	}
	b.prices[r.Channel] = bid.Amount
	return map[string]any{"data": map[string]any{"amount": bid.Amount, "bidder": r.User}}
}

// rpc answers auction.price {"lot": "7"} with the lot's price.
func (b *backend) rpc(r *request) any {
	switch r.Method {
	case "auction.price":
		var q struct {
			Lot string `json:"lot"`
		}
		_ = json.Unmarshal(r.Data, &q)
		b.mu.Lock()
		price := b.prices["auction:"+q.Lot]
		b.mu.Unlock()
		return map[string]any{"data": map[string]any{"lot": q.Lot, "price": price}}
	}
	return map[string]any{"error": refusal{Code: 404, Reason: "no such method: " + r.Method}}
}

// event logs a webhook.
func (b *backend) event(r *request) any {
	b.log.Info("event", slog.String("conn", r.Conn), slog.String("user", r.User), slog.String("channel", r.Channel))
	return map[string]any{}
}
