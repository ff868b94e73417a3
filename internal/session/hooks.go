package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// Hooks are the back-end hooks of a node's sessions (docs/hooks.md). A
// node without any has a nil *Hooks in its Env, and a session checks only
// that before it builds a request. The subscribe and publish hooks are
// per namespace: their URLs are in node.Rules.
type Hooks struct {
	// Client makes the calls (required when any hook URL is set).
	Client *hooks.Client
	// ConnectURL is called for a connect without a token, or for every
	// connect when ConnectAlways is set ("" = none).
	ConnectURL    string
	ConnectAlways bool
	// RefreshURL is called when a connection the connect hook let in
	// reaches the expiry it was given ("" = the connection ends then).
	RefreshURL string
	// RPC routes rpc frames by method prefix, longest prefix first.
	RPC []RPCRoute
	// RetryAfter is the retry_after of a connect closed with 4017
	// because the back end did not answer.
	RetryAfter time.Duration
	// Webhooks gets the connection and subscription events (nil: none).
	Webhooks *hooks.Webhooks
}

// RPCRoute sends the rpc methods that start with Prefix to URL.
type RPCRoute struct {
	Prefix string
	URL    string
}

// rpcURL returns the URL of the longest prefix that method starts with.
func (h *Hooks) rpcURL(method string) string {
	for _, r := range h.RPC { // sorted longest first
		if strings.HasPrefix(method, r.Prefix) {
			return r.URL
		}
	}
	return ""
}

// hookState is what a session keeps for its later hooks (in its extra:
// only sessions of a node with hooks have one).
type hookState struct {
	info    json.RawMessage   // the connect hook's info
	headers map[string]string // the forwarded handshake headers
	// refresh: the connection's expiry came from the connect hook, and
	// the refresh hook decides when it comes.
	refresh    bool
	refreshing bool // a refresh call is out
}

// hookMeta describes the session in a hook request.
func (s *Session) hookMeta() hooks.Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := hooks.Meta{Conn: s.connID, User: s.user, Transport: s.t.Name(), IP: s.remote}
	if s.extra != nil && s.extra.hook != nil {
		m.Info, m.Headers = s.extra.hook.info, s.extra.hook.headers
	}
	return m
}

// hookError is the protocol error a client sees when a hook gave no
// usable answer: 504 when the back end timed out, 502 for a bad answer,
// 503 when it is down, busy or its breaker is open.
func hookError(what string, err error) *protocol.Error {
	switch {
	case errors.Is(err, hooks.ErrTimeout):
		return &protocol.Error{Code: protocol.CodeGatewayTimeout, Reason: what + ": back end timed out", Retry: true}
	case errors.Is(err, hooks.ErrBadAnswer):
		return &protocol.Error{Code: protocol.CodeBadGateway, Reason: what + ": bad answer from back end", Retry: true}
	}
	return &protocol.Error{Code: protocol.CodeUnavailable, Reason: what + ": back end unavailable", Retry: true}
}

// refusal is the protocol error of a back end's refusal: its code when it
// is an error code (400-599), else def.
func refusal(what string, r *hooks.Refusal, def int) *protocol.Error {
	code := r.Code
	if code < 400 || code > 599 {
		code = def
	}
	reason := r.Reason
	if reason == "" {
		reason = "refused by the back end"
	}
	return &protocol.Error{Code: code, Reason: what + ": " + reason, Retry: code >= 500}
}

// connectHook asks the back end whether the connection may open. It
// returns the claims to connect with and the channels to subscribe, or
// closes the session and returns ok false.
func (s *Session) connectHook(ctx context.Context, hs *Handshake, f *protocol.ClientFrame, claims *auth.Claims) (out *auth.Claims, subs []string, st *hookState, ok bool) {
	h := s.env.Hooks
	req := hooks.ConnectRequest{
		Meta:   hooks.Meta{Conn: s.connID, Transport: s.t.Name(), IP: s.remote, Headers: hs.Headers},
		Client: auth.Clip(f.Client),
	}
	if claims != nil {
		req.User = claims.Subject
	}
	var ans hooks.ConnectAnswer
	if err := h.Client.Call(ctx, metrics.HookConnect, h.ConnectURL, &req, &ans); err != nil {
		s.closeRetry(protocol.CloseBackendUnavailable, "connect: "+err.Error(), h.RetryAfter)
		return nil, nil, nil, false
	}
	if ans.Error != nil {
		code := ans.Error.Code
		if code < 4000 || code > 4999 {
			code = protocol.CloseForbidden
		}
		reason := ans.Error.Reason
		if reason == "" {
			reason = "refused by the back end"
		}
		s.Close(code, "connect: "+reason)
		return nil, nil, nil, false
	}
	out = &auth.Claims{Subject: ans.User}
	if claims != nil {
		out.Channels, out.ExpiresAt = claims.Channels, claims.ExpiresAt
		if out.Subject == "" {
			out.Subject = claims.Subject
		}
	}
	st = &hookState{info: ans.Info, headers: hs.Headers}
	if ans.ExpiresAt != 0 {
		out.ExpiresAt = time.Unix(ans.ExpiresAt, 0)
		st.refresh = h.RefreshURL != ""
	}
	return out, ans.Channels, st, true
}

// subscribeServerSide subscribes the session to the channels the connect
// hook named, without the permission checks a client's subscribe gets
// (the back end decided): each gets a subscribed frame without id, or an
// error frame without id when it fails.
func (s *Session) subscribeServerSide(ctx context.Context, channels []string) {
	for _, ch := range channels {
		err := protocol.ValidChannel(ch)
		var rules node.Rules
		if err == nil {
			var known bool
			if rules, known = s.env.Node.RulesFor(ch); !known {
				err = protocol.Errorf(protocol.CodeNotFound, "channel %q: unknown namespace", ch)
			}
		}
		if err == nil {
			err = s.subscribe(ctx, 0, ch, false, nil, rules, nil)
		}
		if err != nil && !errors.Is(err, errAlreadySubscribed) {
			s.replyError(0, err)
		}
	}
}

// subscribeHook asks the namespace's subscribe hook; it returns the
// channel info the back end gave, or the error for the client.
func (s *Session) subscribeHook(ctx context.Context, url, ch string) (json.RawMessage, error) {
	req := hooks.SubscribeRequest{Meta: s.hookMeta(), Channel: ch}
	var ans hooks.SubscribeAnswer
	if err := s.env.Hooks.Client.Call(ctx, metrics.HookSubscribe, url, &req, &ans); err != nil {
		return nil, hookError("subscribe", err)
	}
	if ans.Error != nil {
		return nil, refusal("subscribe", ans.Error, protocol.CodeForbidden)
	}
	return ans.Info, nil
}

// publishVerdict is a publish hook's answer as it is kept for a retried
// publish with the same idempotency key.
type publishVerdict = hooks.PublishAnswer

// publishHook asks the namespace's publish hook about a client's publish
// and returns the data to publish (the client's, or the back end's
// rewrite), or the error for the client. A publish with an idempotency
// key is judged once: the verdict is kept (broker KV) for the
// idempotency window under the channel and key, and a retry gets it
// without calling the back end again (the broker then answers the retry
// as a duplicate).
func (s *Session) publishHook(ctx context.Context, url string, f *protocol.ClientFrame) ([]byte, error) {
	env := s.env
	var kvKey string
	var ans publishVerdict
	judged := false
	if f.Key != "" && env.KV != nil {
		kvKey = "ferry:hookpub:" + f.Channel + "\x00" + f.Key
		if b, err := env.KV.Get(ctx, kvKey); err == nil && json.Unmarshal(b, &ans) == nil {
			judged = true
		} else if err != nil && !errors.Is(err, broker.ErrNotFound) {
			return nil, node.BrokerError("publish", err)
		}
	}
	if !judged {
		req := hooks.PublishRequest{Meta: s.hookMeta(), Channel: f.Channel, Data: json.RawMessage(f.Data), Key: f.Key}
		if err := env.Hooks.Client.Call(ctx, metrics.HookPublish, url, &req, &ans); err != nil {
			return nil, hookError("publish", err)
		}
		if kvKey != "" {
			if b, err := json.Marshal(&ans); err == nil {
				window := env.Limits.IdempotencyWindow
				if window <= 0 {
					window = 5 * time.Minute
				}
				_ = env.KV.Set(ctx, kvKey, b, window) // without it a retry is judged again, nothing worse
			}
		}
	}
	if ans.Error != nil {
		return nil, refusal("publish", ans.Error, protocol.CodeForbidden)
	}
	if len(ans.Data) > 0 {
		if max := env.Limits.MaxFrameBytes; max > 0 && len(ans.Data) > max {
			return nil, protocol.Errorf(protocol.CodeBadGateway, "publish: the back end's data is %d bytes, more than %d", len(ans.Data), max)
		}
		return compactJSON(ans.Data), nil
	}
	return f.Data, nil
}

// compactJSON drops the insignificant whitespace of a back end's JSON
// (the decoder checked that it is valid).
func compactJSON(b json.RawMessage) []byte {
	var out bytes.Buffer
	out.Grow(len(b))
	if err := json.Compact(&out, b); err != nil {
		return b
	}
	return out.Bytes()
}

func (s *Session) handleRPC(ctx context.Context, f *protocol.ClientFrame) error {
	h := s.env.Hooks
	url := ""
	if h != nil {
		url = h.rpcURL(f.Method)
	}
	if url == "" {
		return protocol.Errorf(protocol.CodeNotFound, "rpc: no back end handles method %q", f.Method)
	}
	req := hooks.RPCRequest{Meta: s.hookMeta(), Method: f.Method, Data: json.RawMessage(f.Data)}
	var ans hooks.RPCAnswer
	if err := h.Client.Call(ctx, metrics.HookRPC, url, &req, &ans); err != nil {
		return hookError("rpc", err)
	}
	if ans.Error != nil {
		return refusal("rpc", ans.Error, protocol.CodeBadRequest)
	}
	data := protocol.RawJSON("null")
	if len(ans.Data) > 0 {
		data = compactJSON(ans.Data)
	}
	if max := s.env.Limits.MaxFrameBytes; max > 0 && len(data) > max {
		return protocol.Errorf(protocol.CodeBadGateway, "rpc: the back end's answer is %d bytes, more than %d", len(data), max)
	}
	s.reply(&protocol.RPCResult{ID: f.ID, Data: data})
	return nil
}

// refreshByHook asks the refresh hook whether the connection goes on,
// once its expiry came; it runs on its own goroutine (started by the
// sweep), and ends the connection when the back end says so or cannot be
// asked.
func (s *Session) refreshByHook() {
	env := s.env
	ctx, cancel := env.requestContext()
	defer cancel()
	s.mu.Lock()
	exp := s.expiresAt
	s.mu.Unlock()
	req := hooks.RefreshRequest{Meta: s.hookMeta(), ExpiresAt: time.Unix(0, exp).Unix()}
	var ans hooks.RefreshAnswer
	err := env.Hooks.Client.Call(ctx, metrics.HookRefresh, env.Hooks.RefreshURL, &req, &ans)
	s.mu.Lock()
	if s.extra == nil || s.extra.hook == nil { // not reached: kept from connect on (dropExtraLocked)
		s.mu.Unlock()
		return
	}
	st := s.extra.hook
	st.refreshing = false
	switch {
	case err != nil:
		s.mu.Unlock()
		s.closeRetry(protocol.CloseBackendUnavailable, "refresh: "+err.Error(), env.Hooks.RetryAfter)
		return
	case ans.Error != nil:
		s.mu.Unlock()
		reason := ans.Error.Reason
		if reason == "" {
			reason = "ended by the back end"
		}
		s.Close(protocol.CloseTokenExpired, "refresh: "+reason)
		return
	case ans.ExpiresAt <= env.now().Unix():
		s.mu.Unlock()
		s.Close(protocol.CloseTokenExpired, "refresh: connection expired")
		return
	}
	s.expiresAt = time.Unix(ans.ExpiresAt, 0).UnixNano()
	if len(ans.Info) > 0 {
		st.info = ans.Info
	}
	s.mu.Unlock()
}

// expiredByHook reports whether the refresh hook decides about the
// session's expiry, and if so starts the call (once at a time).
func (s *Session) expiredByHook() bool {
	env := s.env
	if env.Hooks == nil || env.Hooks.RefreshURL == "" {
		return false
	}
	s.mu.Lock()
	st := (*hookState)(nil)
	if s.extra != nil {
		st = s.extra.hook
	}
	if st == nil || !st.refresh {
		s.mu.Unlock()
		return false
	}
	start := !st.refreshing
	st.refreshing = true
	s.mu.Unlock()
	if start {
		if env.Go != nil {
			env.Go(s.refreshByHook)
		} else {
			go s.refreshByHook()
		}
	}
	return true
}

// webhook sends a connection or subscription event when webhooks are on.
func (s *Session) webhook(kind, ch string, code int, reason string, info json.RawMessage) {
	h := s.env.Hooks
	if h == nil || h.Webhooks == nil {
		return
	}
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	h.Webhooks.Send(hooks.Event{Kind: kind, Conn: s.connID, User: user, Transport: s.t.Name(),
		Channel: ch, Code: code, Reason: reason, Info: info})
}
