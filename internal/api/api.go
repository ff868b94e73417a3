// Package api serves the server API (/v1/api/...) that application back
// ends call: publish, broadcast, disconnect, presence, history and stats.
// Every call needs "Authorization: Bearer <api key>", compared in constant
// time. JSON in, JSON out; errors as {"error": {"code", "reason"}}.
// Failed authentications are limited per client address (Options): an
// address that sent too many wrong keys gets 429 with Retry-After.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// MaxBodyBytes caps a request body.
const MaxBodyBytes = 1 << 20

// PublishRequest is the body of POST /v1/api/publish.
type PublishRequest struct {
	Channel  string           `json:"channel"`
	Data     protocol.RawJSON `json:"data"`
	Key      string           `json:"key,omitempty"`
	Priority string           `json:"priority,omitempty"`
	Conflate string           `json:"conflate,omitempty"`
}

// BroadcastRequest is the body of POST /v1/api/broadcast.
type BroadcastRequest struct {
	Channels []string         `json:"channels"`
	Data     protocol.RawJSON `json:"data"`
	Key      string           `json:"key,omitempty"`
	Priority string           `json:"priority,omitempty"`
}

// DisconnectRequest is the body of POST /v1/api/disconnect.
type DisconnectRequest struct {
	User   string `json:"user"`
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// PublishReply answers a publish.
type PublishReply struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Duplicate bool   `json:"duplicate"`
}

// BroadcastResult is one channel's outcome in a broadcast.
type BroadcastResult struct {
	Channel   string          `json:"channel"`
	Offset    uint64          `json:"offset,omitempty"`
	Epoch     string          `json:"epoch,omitempty"`
	Duplicate bool            `json:"duplicate,omitempty"`
	Error     *protocol.Error `json:"error,omitempty"`
}

// Backend is what the API needs from the node.
type Backend interface {
	// Publish publishes data on a channel as the server (no user).
	Publish(ctx context.Context, req PublishRequest) (broker.PublishResult, error)
	// Disconnect closes every connection of user in the cluster and
	// returns how many this node closed.
	Disconnect(ctx context.Context, user string, code int, reason string) (int, error)
	Presence(ctx context.Context, ch string) ([]protocol.ClientInfo, error)
	History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error)
	APIStats(ctx context.Context) (any, error)
}

// Defaults of Options.
const (
	// DefaultAuthFailureRate is how many failed authentications per second
	// an address regains.
	DefaultAuthFailureRate = auth.DefaultFailureRate
	// DefaultAuthFailureBurst is how many failed authentications in a row
	// an address may make before it is refused.
	DefaultAuthFailureBurst = auth.DefaultFailureBurst
)

// Options configure the API handler. The zero value of every field means
// its documented default.
type Options struct {
	// APIKey is the key every call must present (Authorization: Bearer).
	// Default "": every call gets 401.
	APIKey string
	// Logger receives the handler's logs. Default: discarded.
	Logger *slog.Logger
	// AuthFailureRate and AuthFailureBurst limit failed authentications
	// (a missing or wrong API key) per client address, IPv6 by /64, with a
	// token bucket: each failure takes a token, the bucket holds
	// AuthFailureBurst and regains AuthFailureRate per second. While an
	// address's bucket is empty, every call from it gets 429 with
	// Retry-After, even with the right key, before the key is looked at,
	// so guessing the key goes no faster than the rate. Calls with the
	// right key from an address in good standing take nothing. Defaults
	// DefaultAuthFailureRate and DefaultAuthFailureBurst; a negative rate
	// turns the limit off.
	AuthFailureRate  float64
	AuthFailureBurst int
	// ClientIP returns the address a request comes from (the server passes
	// auth.ClientIP with its trusted proxies). Default: the TCP peer.
	ClientIP func(*http.Request) netip.Addr
	// Clock is the limiter's time source. Default time.Now.
	Clock func() time.Time
}

type handler struct {
	b        Backend
	keySum   [32]byte
	hasKey   bool
	log      *slog.Logger
	mux      *http.ServeMux         // the calls (routes)
	failures *auth.HandshakeLimiter // failed authentications per address; nil: no limit
	clientIP func(*http.Request) netip.Addr
}

// New returns the API handler with the default Options but the key and
// the logger. With an empty apiKey every call gets 401.
func New(b Backend, apiKey string, log *slog.Logger) http.Handler {
	return NewWithOptions(b, Options{APIKey: apiKey, Logger: log})
}

// NewWithOptions returns the API handler configured by o.
func NewWithOptions(b Backend, o Options) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, log: log, hasKey: o.APIKey != "", keySum: sha256.Sum256([]byte(o.APIKey)), clientIP: o.ClientIP}
	if h.clientIP == nil {
		h.clientIP = func(r *http.Request) netip.Addr { return auth.ClientIP(r, nil) }
	}
	h.failures = auth.NewFailureLimiter(o.AuthFailureRate, o.AuthFailureBurst, o.Clock)
	h.mux = h.routes()
	return h
}

// Routes returns the API's calls (/v1/api/...) WITHOUT the key check and
// its rate limit: for a caller that authenticated the request its own way
// (the admin page, behind its login and CSRF checks), so that it has the
// API's exact powers and input checks and no more.
func Routes(b Backend) http.Handler {
	h := &handler{b: b, log: slog.New(slog.DiscardHandler)}
	return h.routes()
}

func (h *handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/api/publish", h.publish)
	mux.HandleFunc("POST /v1/api/broadcast", h.broadcast)
	mux.HandleFunc("POST /v1/api/disconnect", h.disconnect)
	mux.HandleFunc("GET /v1/api/presence", h.presence)
	mux.HandleFunc("GET /v1/api/history", h.history)
	mux.HandleFunc("GET /v1/api/stats", h.stats)
	mux.HandleFunc("/v1/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, protocol.Errorf(protocol.CodeNotFound, "no API call %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ip netip.Addr
	if h.failures != nil {
		ip = h.clientIP(r)
		// Refused before the key is compared: an address over its limit
		// learns nothing about the key it sent.
		if blocked, wait := h.failures.Blocked(ip); blocked {
			tooManyFailures(w, wait)
			return
		}
	}
	if !h.authorized(r) {
		if h.failures != nil {
			h.failures.Allow(ip)
			h.log.Warn("server API: authentication failed", "client_ip", auth.TruncateIP(ip), "path", r.URL.Path)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry-api"`)
		writeError(w, protocol.Errorf(protocol.CodeUnauthorized, "missing or wrong API key: send Authorization: Bearer <api key>"))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// tooManyFailures answers a call from an address that failed to
// authenticate too often: 429 with the wait in Retry-After.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := auth.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": map[string]any{
		"code":   http.StatusTooManyRequests,
		"reason": fmt.Sprintf("too many failed API authentications from this address; retry after %d s", secs),
	}})
}

// authorized compares the presented key with the configured one in
// constant time (both hashed first, so the length does not leak either).
func (h *handler) authorized(r *http.Request) bool {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(key)))
	return subtle.ConstantTimeCompare(sum[:], h.keySum[:]) == 1 && h.hasKey
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	pe := protocol.AsError(err)
	if pe.Code == protocol.CodeRateLimited || pe.Code == protocol.CodeUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, pe.Code, map[string]any{"error": map[string]any{"code": pe.Code, "reason": pe.Reason}})
}

// decode reads a JSON body strictly: unknown fields, trailing data and
// oversized bodies are errors that name the problem.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return protocol.Errorf(protocol.CodeTooLarge, "body larger than %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return protocol.Errorf(protocol.CodeBadRequest, "empty body: want a JSON object")
		}
		return protocol.Errorf(protocol.CodeBadRequest, "bad JSON body: %v", err)
	}
	if dec.More() {
		return protocol.Errorf(protocol.CodeBadRequest, "bad JSON body: more than one value")
	}
	return nil
}

func checkPublish(ch string, data protocol.RawJSON, priority string) error {
	if err := protocol.ValidChannel(ch); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "channel: %v", err)
	}
	if len(data) == 0 {
		return protocol.Errorf(protocol.CodeBadRequest, "data: required")
	}
	if _, err := protocol.ParsePriority(priority); err != nil {
		return err
	}
	return nil
}

func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := checkPublish(req.Channel, req.Data, req.Priority); err != nil {
		writeError(w, err)
		return
	}
	res, err := h.b.Publish(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, PublishReply{Offset: res.Offset, Epoch: res.Epoch, Duplicate: res.Duplicate})
}

func (h *handler) broadcast(w http.ResponseWriter, r *http.Request) {
	var req BroadcastRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if len(req.Channels) == 0 {
		writeError(w, protocol.Errorf(protocol.CodeBadRequest, "channels: want at least one"))
		return
	}
	if len(req.Channels) > 1000 {
		writeError(w, protocol.Errorf(protocol.CodeTooLarge, "channels: at most 1000 per broadcast"))
		return
	}
	for _, ch := range req.Channels {
		if err := checkPublish(ch, req.Data, req.Priority); err != nil {
			writeError(w, err)
			return
		}
	}
	results := make([]BroadcastResult, len(req.Channels))
	for i, ch := range req.Channels {
		res, err := h.b.Publish(r.Context(), PublishRequest{Channel: ch, Data: req.Data, Key: req.Key, Priority: req.Priority})
		results[i] = BroadcastResult{Channel: ch, Offset: res.Offset, Epoch: res.Epoch, Duplicate: res.Duplicate}
		if err != nil {
			results[i].Error = protocol.AsError(err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

func (h *handler) disconnect(w http.ResponseWriter, r *http.Request) {
	var req DisconnectRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.User == "" {
		writeError(w, protocol.Errorf(protocol.CodeBadRequest, "user: required"))
		return
	}
	if req.Code == 0 {
		req.Code = protocol.CloseForbidden
	}
	if req.Code < 4000 || req.Code > 4999 {
		writeError(w, protocol.Errorf(protocol.CodeBadRequest, "code: want a close code from 4000 to 4999"))
		return
	}
	if req.Reason == "" {
		req.Reason = "disconnected by the server"
	}
	n, err := h.b.Disconnect(r.Context(), req.User, req.Code, req.Reason)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"disconnected": n})
}

func channelParam(r *http.Request) (string, error) {
	ch := r.URL.Query().Get("channel")
	if ch == "" {
		return "", protocol.Errorf(protocol.CodeBadRequest, "channel: required query parameter")
	}
	if err := protocol.ValidChannel(ch); err != nil {
		return "", protocol.Errorf(protocol.CodeBadRequest, "channel: %v", err)
	}
	return ch, nil
}

func (h *handler) presence(w http.ResponseWriter, r *http.Request) {
	ch, err := channelParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	clients, err := h.b.Presence(r.Context(), ch)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": clients, "count": len(clients)})
}

func (h *handler) history(w http.ResponseWriter, r *http.Request) {
	ch, err := channelParam(r)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	var since *broker.Position
	if v := q.Get("since"); v != "" {
		off, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, protocol.Errorf(protocol.CodeBadRequest, "since: %q is not an offset", v))
			return
		}
		since = &broker.Position{Offset: off, Epoch: q.Get("epoch")}
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			writeError(w, protocol.Errorf(protocol.CodeBadRequest, "limit: %q is not a count", v))
			return
		}
	}
	res, err := h.b.History(r.Context(), ch, since, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	msgs := make([]protocol.HistoryMessage, len(res.Messages))
	for i := range res.Messages {
		msgs[i] = node.HistoryMessage(&res.Messages[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs, "offset": res.Offset, "epoch": res.Epoch, "complete": res.Complete})
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	st, err := h.b.APIStats(r.Context())
	if err != nil {
		writeError(w, fmt.Errorf("stats: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, st)
}
