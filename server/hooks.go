package server

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/internal/session"
)

// HooksConfig configures the back-end hooks and webhooks (docs/hooks.md).
// The subscribe and publish hooks are per namespace (Namespace).
type HooksConfig struct {
	// Connect is the URL of the connect hook, called for a connect
	// without a token (or for every connect with ConnectAlways). Default
	// none.
	Connect string `yaml:"connect"`
	// ConnectAlways calls the connect hook for connects with a token too.
	// Default false.
	ConnectAlways bool `yaml:"connect_always"`
	// Refresh is the URL of the refresh hook, called when a connection
	// the connect hook gave an expiry reaches it. Default none: the
	// connection ends then (4015).
	Refresh string `yaml:"refresh"`
	// RPC routes rpc frames to URLs by method prefix (the longest prefix
	// that matches wins; "" matches every method). Default none: rpc is
	// answered 404.
	RPC map[string]string `yaml:"rpc"`
	// Timeout bounds one hook call. Default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxConcurrent bounds the hook calls in flight on this node; a call
	// over it fails at once (503). Default 256.
	MaxConcurrent int `yaml:"max_concurrent"`
	// BreakerFailures failures in a row open a hook URL's circuit
	// breaker. Default 5.
	BreakerFailures int `yaml:"breaker_failures"`
	// BreakerCooldown is how long an open breaker refuses calls before a
	// probe. Default 5s.
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// MaxAnswerBytes caps a hook's answer. Default 65536.
	MaxAnswerBytes int `yaml:"max_answer_bytes"`
	// ForwardHeaders are the handshake headers sent to the hooks (an
	// allowlist; Authorization only with ForwardAuthorization). Default
	// none.
	ForwardHeaders []string `yaml:"forward_headers"`
	// ForwardAuthorization lets "Authorization" in ForwardHeaders through.
	// Default false.
	ForwardAuthorization bool `yaml:"forward_authorization"`
	// RetryAfter is the retry_after_ms of a connect closed with 4017
	// because the back end did not answer. Default 5s.
	RetryAfter time.Duration `yaml:"retry_after"`
	// Secret signs hook requests and webhooks (HMAC-SHA256,
	// Ferry-Signature). Default none (required outside Dev when a URL is
	// set).
	Secret string `yaml:"secret"`
	// Webhook is the URL that receives the events. Default none.
	Webhook string `yaml:"webhook"`
	// WebhookQueue bounds the events waiting to be sent or retried.
	// Default 1024.
	WebhookQueue int `yaml:"webhook_queue"`
	// WebhookAttempts is how many times an event is tried. Default 5.
	WebhookAttempts int `yaml:"webhook_attempts"`
	// WebhookBackoff is the wait before the first retry (doubling).
	// Default 500ms.
	WebhookBackoff time.Duration `yaml:"webhook_backoff"`
}

// anyHook reports whether a hook or webhook is configured.
func (c *Config) anyHook() bool {
	h := c.Hooks
	if h.Connect != "" || h.Refresh != "" || len(h.RPC) > 0 || h.Webhook != "" {
		return true
	}
	for _, ns := range c.Namespaces {
		if ns.SubscribeHook != "" || ns.PublishHook != "" {
			return true
		}
	}
	return false
}

// validateHooks checks the hook settings.
func (c *Config) validateHooks(bad func(field, format string, args ...any)) {
	h := c.Hooks
	checkURL := func(field, u string) {
		if u == "" {
			return
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			bad(field, "%q: want an http:// or https:// URL", u)
		}
	}
	checkURL("hooks.connect", h.Connect)
	checkURL("hooks.refresh", h.Refresh)
	checkURL("hooks.webhook", h.Webhook)
	for _, prefix := range slices.Sorted(maps.Keys(h.RPC)) {
		checkURL("hooks.rpc."+prefix, h.RPC[prefix])
	}
	for _, name := range slices.Sorted(maps.Keys(c.Namespaces)) {
		ns := c.Namespaces[name]
		checkURL("namespaces."+name+".subscribe_hook", ns.SubscribeHook)
		checkURL("namespaces."+name+".publish_hook", ns.PublishHook)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"hooks.max_concurrent", h.MaxConcurrent}, {"hooks.breaker_failures", h.BreakerFailures},
		{"hooks.max_answer_bytes", h.MaxAnswerBytes}, {"hooks.webhook_queue", h.WebhookQueue},
		{"hooks.webhook_attempts", h.WebhookAttempts}} {
		if f.v < 0 {
			bad(f.name, "%d: must not be negative", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"hooks.timeout", h.Timeout}, {"hooks.breaker_cooldown", h.BreakerCooldown},
		{"hooks.retry_after", h.RetryAfter}, {"hooks.webhook_backoff", h.WebhookBackoff}} {
		if f.v < 0 {
			bad(f.name, "%v: must not be negative", f.v)
		}
	}
	for _, name := range h.ForwardHeaders {
		if strings.EqualFold(name, "Authorization") && !h.ForwardAuthorization {
			bad("hooks.forward_headers", "Authorization is forwarded only with hooks.forward_authorization: true")
		}
	}
	if !c.Dev && h.Secret == "" && c.anyHook() {
		bad("hooks.secret", "hooks are configured without a secret: set hooks.secret (FERRY_HOOKS_SECRET) so the back end can verify Ferry-Signature")
	}
}

// newHooks builds the sessions' hooks; nil when none is configured.
func (s *Server) newHooks() *session.Hooks {
	cfg := s.cfg
	if !cfg.anyHook() {
		return nil
	}
	h := cfg.Hooks
	out := &session.Hooks{
		Client: hooks.New(hooks.Config{
			Timeout:         h.Timeout,
			MaxConcurrent:   h.MaxConcurrent,
			BreakerFailures: h.BreakerFailures,
			BreakerCooldown: h.BreakerCooldown,
			MaxAnswerBytes:  int64(h.MaxAnswerBytes),
			Secret:          h.Secret,
			Metrics:         s.metrics,
		}),
		ConnectURL:    h.Connect,
		ConnectAlways: h.ConnectAlways,
		RefreshURL:    h.Refresh,
		RetryAfter:    h.RetryAfter,
	}
	for prefix, u := range h.RPC {
		out.RPC = append(out.RPC, session.RPCRoute{Prefix: prefix, URL: u})
	}
	slices.SortFunc(out.RPC, func(a, b session.RPCRoute) int { return len(b.Prefix) - len(a.Prefix) })
	if h.Webhook != "" {
		out.Webhooks = hooks.NewWebhooks(hooks.WebhookConfig{
			URL: h.Webhook, Secret: h.Secret, Queue: h.WebhookQueue, Attempts: h.WebhookAttempts,
			Backoff: h.WebhookBackoff, Node: cfg.NodeID, Metrics: s.metrics, Logger: s.log,
		})
	}
	return out
}

// closeHooks stops the webhook senders (queued events are dropped and
// counted) and the hook client's idle connections.
func (s *Server) closeHooks() {
	if s.env == nil || s.env.Hooks == nil {
		return
	}
	s.env.Hooks.Webhooks.Close()
	s.env.Hooks.Client.Close()
}

// hookHeaders returns the handshake headers on the hooks' allowlist (nil
// without hooks or an allowlist).
func (s *Server) hookHeaders(r *http.Request) map[string]string {
	if s.env == nil || s.env.Hooks == nil || len(s.cfg.Hooks.ForwardHeaders) == 0 {
		return nil
	}
	var out map[string]string
	for _, name := range s.cfg.Hooks.ForwardHeaders {
		if strings.EqualFold(name, "Authorization") && !s.cfg.Hooks.ForwardAuthorization {
			continue // Validate refuses this; kept here as the guard of record
		}
		if v := r.Header.Get(name); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[http.CanonicalHeaderKey(name)] = v
		}
	}
	return out
}
