package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/api"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/web"
)

// routes builds the node's HTTP handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	mux.HandleFunc("POST /v1/tickets", s.serveTickets)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.serveReady)
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("GET /v1/transparency", s.serveTransparency)
	mux.Handle("/v1/api/", api.NewWithOptions(apiBackend{s}, api.Options{
		APIKey:           s.cfg.APIKey,
		Logger:           s.log,
		AuthFailureRate:  s.cfg.API.AuthFailureRate,
		AuthFailureBurst: s.cfg.API.AuthFailureBurst,
		ClientIP:         func(r *http.Request) netip.Addr { return auth.ClientIP(r, s.proxies) },
	}))
	// The admin page: off (a 404 saying how to turn it on) unless
	// admin.secret is set, and behind its own login then.
	adm := s.adminHandler()
	mux.Handle("/admin", adm)
	mux.Handle("/admin/", adm)
	s.fallbackRoutes(mux)
	if s.uploadsHTTP != nil {
		mux.HandleFunc("/v1/uploads/", s.serveUploads)
	}
	if s.cfg.Dev {
		mux.HandleFunc("GET /v1/debug/echo", s.serveEcho)
		mux.Handle("GET /{$}", web.Playground()) // the playground page (web/)
	}
	return mux
}

// httpError writes a JSON error in the server API's shape.
func httpError(w http.ResponseWriter, status int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "reason": reason}})
}

// admit runs the checks every handshake goes through before any work is
// done for it: draining, the per-IP rate limit, the node's connection cap
// and the Origin policy. It writes the refusal and returns false when the
// request must not go on.
func (s *Server) admit(w http.ResponseWriter, r *http.Request) bool {
	return s.gate(w, r, true)
}

// gate is admit; capacity says whether the request would add a connection
// (the node's cap applies).
func (s *Server) gate(w http.ResponseWriter, r *http.Request, capacity bool) bool {
	if s.draining.Load() {
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, "server is draining: connect to another node")
		s.metrics.HandshakeRejected("capacity")
		return false
	}
	ip := auth.ClientIP(r, s.proxies)
	if ok, retry := s.limiter.Allow(ip); !ok {
		secs := int((retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
		httpError(w, http.StatusTooManyRequests, "too many handshakes from this address: retry later")
		s.metrics.HandshakeRejected("rate_limit")
		return false
	}
	if max := s.maxConns; capacity && max > 0 && s.reg.Count() >= max {
		w.Header().Set("Retry-After", "5")
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("node is full (%d connections): connect to another node", max))
		s.metrics.HandshakeRejected("capacity")
		return false
	}
	if err := s.origins.Check(r); err != nil {
		httpError(w, http.StatusForbidden, err.Error())
		s.metrics.HandshakeRejected("origin")
		s.log.Info("handshake refused", slog.String("reason", err.Error()), slog.String("remote", s.logIP(r)), slog.String("url", auth.RedactQuery(r.URL.String())))
		return false
	}
	return true
}

// requestToken finds the connection token of a handshake: Authorization
// header, cookie, single-use ticket, or (only when allowed) ?token=. It
// returns "" when the token must come in the connect frame. A refusal is
// written and reported with ok=false.
func (s *Server) requestToken(w http.ResponseWriter, r *http.Request) (tok string, ok bool) {
	q := r.URL.Query()
	if q.Has("token") && !s.cfg.Auth.AllowQueryToken {
		httpError(w, http.StatusBadRequest, "a token in the URL is refused (URLs end up in logs): send it in the Authorization header, the "+s.cfg.Auth.CookieName+" cookie, or get a single-use ticket from POST /v1/tickets and pass ?ticket=")
		s.metrics.HandshakeRejected("bad_request")
		return "", false
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			httpError(w, http.StatusUnauthorized, "Authorization header: want \"Bearer <token>\"")
			s.metrics.HandshakeRejected("auth")
			return "", false
		}
		return strings.TrimSpace(t), true
	}
	if c, err := r.Cookie(s.cfg.Auth.CookieName); err == nil && c.Value != "" {
		return c.Value, true
	}
	if t := q.Get("ticket"); t != "" {
		tok, err := s.tickets.Redeem(r.Context(), t)
		if err == nil && strings.HasPrefix(tok, sseTicketPrefix) {
			err = errors.New("an SSE stream ticket")
		}
		if err != nil {
			httpError(w, http.StatusUnauthorized, "ticket is invalid, expired or already used: get a new one from POST /v1/tickets")
			s.metrics.HandshakeRejected("auth")
			return "", false
		}
		return tok, true
	}
	if s.cfg.Auth.AllowQueryToken {
		return q.Get("token"), true
	}
	return "", true
}

// verifyRequestToken checks a handshake token before the upgrade.
func (s *Server) verifyRequestToken(w http.ResponseWriter, r *http.Request, tok string) (*auth.Claims, bool) {
	if tok == "" {
		return nil, true
	}
	claims, err := s.verifier.Verify(r.Context(), tok)
	if err != nil {
		status, reason := http.StatusUnauthorized, "unauthorized: "+err.Error()
		switch {
		case errors.Is(err, auth.ErrTokenExpired):
			reason = "token expired: get a new token"
		case errors.Is(err, auth.ErrKeysUnavailable):
			status, reason = http.StatusServiceUnavailable, "token keys unavailable (JWKS): retry later"
			w.Header().Set("Retry-After", "5")
		}
		httpError(w, status, reason)
		s.metrics.HandshakeRejected("auth")
		return nil, false
	}
	return claims, true
}

func (s *Server) serveTickets(w http.ResponseWriter, r *http.Request) {
	if !s.gate(w, r, false) {
		return
	}
	s.cors(w, r)
	if r.Header.Get(sessionHeader) != "" {
		s.issueSessionTicket(w, r)
		return
	}
	tok, ok := s.requestToken(w, r)
	if !ok {
		return
	}
	if tok == "" {
		httpError(w, http.StatusUnauthorized, "a ticket needs a token: send it in the Authorization header or the "+s.cfg.Auth.CookieName+" cookie")
		return
	}
	if _, ok := s.verifyRequestToken(w, r, tok); !ok {
		return
	}
	t, err := s.tickets.Issue(r.Context(), tok)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "cannot issue a ticket now: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{"ticket": t, "expires_in": 30})
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		httpError(w, http.StatusServiceUnavailable, "draining")
		return
	}
	if !s.node.Beating(time.Now()) {
		// Other nodes treat this one as gone (it was frozen or cut off):
		// keep new clients away until its record is written again.
		httpError(w, http.StatusServiceUnavailable, "liveness record lapsed")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.broker.Ping(ctx); err != nil {
		httpError(w, http.StatusServiceUnavailable, "broker unreachable: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ready\n"))
}

// serveTransparency is the public report of what the node keeps and for
// how long.
func (s *Server) serveTransparency(w http.ResponseWriter, r *http.Request) {
	type nsReport struct {
		HistorySize int    `json:"history_size"`
		HistoryTTL  string `json:"history_ttl"`
		Presence    bool   `json:"presence"`
	}
	ns := map[string]nsReport{}
	for name, n := range s.cfg.Namespaces {
		ns[name] = nsReport{HistorySize: n.HistorySize, HistoryTTL: n.HistoryTTL.String(), Presence: n.Presence}
	}
	if s.cfg.Dev {
		ns["*"] = nsReport{HistorySize: DevNamespace.HistorySize, HistoryTTL: DevNamespace.HistoryTTL.String(), Presence: true}
	}
	ipHandling := "client IPs in logs are truncated (IPv4 /24, IPv6 /48)"
	if s.cfg.Logs.IP == "full" {
		ipHandling = "full client IPs are logged and must be removed from log files after " + s.cfg.Logs.IPRetention.String()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"connections":       s.reg.Count(),
		"namespaces":        ns,
		"session_ttl":       s.cfg.Session.TTL.String(),
		"idempotency_keys":  s.cfg.Idempotency.Window.String(),
		"ip_handling":       ipHandling,
		"log_ip_retention":  s.cfg.Logs.IPRetention.String(),
		"message_contents":  "kept only in channel history, for the namespace's history_ttl",
		"tokens_in_logs":    "never: token and ticket query values are redacted",
		"generated_at_unix": time.Now().Unix(),
	})
}

// logIP returns the client address as it may be logged.
func (s *Server) logIP(r *http.Request) string {
	ip := auth.ClientIP(r, s.proxies)
	if s.cfg.Logs.IP == "full" {
		return ip.String()
	}
	return auth.TruncateIP(ip)
}

// tlsConfig serves the certificate loaded at start (or by the last
// ReloadTLS), with TLS 1.2 as the floor.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := s.cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no TLS certificate loaded")
		},
	}
}

// ReloadTLS loads the certificate files again (on SIGHUP). A bad file leaves
// the current certificate in place.
func (s *Server) ReloadTLS() error {
	if s.cfg.TLS.CertFile == "" {
		return nil
	}
	c, err := tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	s.cert.Store(&c)
	s.metrics.SetCertExpiry(certExpiry(&c))
	return nil
}
