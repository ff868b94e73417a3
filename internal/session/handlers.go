package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// requestTimeout bounds the broker calls one frame may make.
const requestTimeout = 10 * time.Second

// maxHistoryReply caps the messages of one history reply.
const maxHistoryReply = 1000

// HandleMessage processes one inbound wire message (a frame or a batch).
// Bytes that are not a frame close the connection with 4014.
func (s *Session) HandleMessage(msg []byte) {
	var arr [4]protocol.ClientFrame
	frames, err := s.codec.DecodeClient(arr[:0], msg)
	if err != nil {
		if s.env.Metrics != nil {
			s.env.Metrics.FrameIn("invalid")
		}
		s.Close(protocol.CloseProtocolError, err.Error())
		return
	}
	for i := range frames {
		if s.isClosing() {
			return
		}
		s.handleFrame(&frames[i])
	}
}

// HandleMessages handles messages that arrived together, in order, and
// sends their replies together: the session is not handed to the writer
// pool until the last one is handled, so a client that pipelines frames
// (connect then subscribes, say) gets one write instead of one per reply.
func (s *Session) HandleMessages(msgs [][]byte) {
	if len(msgs) == 1 {
		s.HandleMessage(msgs[0])
		return
	}
	// Holding the scheduled flag keeps replies from being scheduled one by
	// one. If a flush is under way it may clear the flag meanwhile; the
	// replies then go out in more writes, nothing worse.
	corked := s.puller == nil && s.slot.Cork()
	for _, m := range msgs {
		s.HandleMessage(m)
	}
	if corked && s.slot.Uncork() {
		s.scheduleAtOnce() // replies: no coalescing window (see reply)
	}
}

func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateClosed || s.closeCode != 0
}

func (s *Session) handleFrame(f *protocol.ClientFrame) {
	if perr := f.Validate(); perr != nil {
		if s.env.Metrics != nil {
			s.env.Metrics.FrameIn("invalid")
		}
		s.replyError(f.ID, perr)
		return
	}
	if s.env.Metrics != nil {
		s.env.Metrics.FrameIn(f.Type)
	}
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	if f.Type == protocol.TypeConnect {
		if state != stateNew {
			s.replyError(f.ID, protocol.Errorf(protocol.CodeBadRequest, "connect: already connected"))
			return
		}
		s.handleConnect(f)
		return
	}
	if state != stateConnected {
		s.replyError(f.ID, protocol.Errorf(protocol.CodeUnauthorized, "%s: send connect first", f.Type))
		return
	}
	ctx, cancel := s.env.requestContext()
	defer cancel()
	var err error
	switch f.Type {
	case protocol.TypeSubscribe:
		err = s.handleSubscribe(ctx, f)
	case protocol.TypeUnsubscribe:
		err = s.handleUnsubscribe(ctx, f)
	case protocol.TypePublish:
		err = s.handlePublish(ctx, f)
	case protocol.TypeAck:
		s.handleAck(f.Seq)
	case protocol.TypePing:
		s.reply(&protocol.Pong{ID: f.ID})
	case protocol.TypeRefresh:
		err = s.handleRefresh(ctx, f)
	case protocol.TypeHistory:
		err = s.handleHistory(ctx, f)
	case protocol.TypePresence:
		err = s.handlePresence(ctx, f)
	case protocol.TypeRPC:
		err = s.handleRPC(ctx, f)
	case protocol.TypeUploadBegin, protocol.TypeUploadChunk, protocol.TypeUploadCommit:
		err = s.handleUpload(ctx, f)
	default:
		err = protocol.Errorf(protocol.CodeBadRequest, "unknown frame type %q", f.Type)
	}
	if err != nil {
		s.replyError(f.ID, err)
	}
}

// tokenError maps a verification error to a close code.
func tokenError(err error) (int, string) {
	if errors.Is(err, auth.ErrTokenExpired) {
		return protocol.CloseTokenExpired, "token expired"
	}
	if errors.Is(err, auth.ErrKeysUnavailable) {
		// The server's fault, not the token's: reconnect later.
		return 1011, "token keys unavailable (JWKS): retry later"
	}
	return protocol.CloseUnauthorized, "unauthorized: " + err.Error()
}

func (s *Session) handleConnect(f *protocol.ClientFrame) {
	ctx, cancel := s.env.requestContext()
	defer cancel()
	env := s.env
	// Take the handshake: it is needed only here, and a connect frame
	// handled at the same time (two HTTP requests) finds it gone.
	s.mu.Lock()
	var hs *Handshake
	if s.extra != nil {
		hs = s.extra.hs
		s.extra.hs = nil
	}
	s.mu.Unlock()
	if hs == nil {
		s.replyError(f.ID, protocol.Errorf(protocol.CodeBadRequest, "connect: already connected"))
		return
	}
	claims := hs.Claims
	if f.Token != "" {
		c, err := env.Verifier.Verify(ctx, f.Token)
		if err != nil {
			s.Close(tokenError(err))
			return
		}
		claims = c
	}
	var hookSubs []string
	var hook *hookState
	if h := env.Hooks; h != nil {
		if h.ConnectURL != "" && (claims == nil || h.ConnectAlways) {
			var ok bool
			if claims, hookSubs, hook, ok = s.connectHook(ctx, hs, f, claims); !ok {
				return
			}
		} else if len(hs.Headers) > 0 {
			hook = &hookState{headers: hs.Headers}
		}
	}
	if claims == nil && !env.Limits.Anonymous {
		s.Close(protocol.CloseUnauthorized, "unauthorized: no token (send it in the Authorization header, a cookie, a ticket, or the connect frame)")
		return
	}
	if claims == nil {
		claims = &auth.Claims{}
	}
	if !claims.ExpiresAt.IsZero() && !claims.ExpiresAt.After(env.now()) {
		s.Close(protocol.CloseTokenExpired, "token expired")
		return
	}
	window := f.Window
	if max := env.Limits.MaxWindow; max > 0 && window > max {
		window = max
	}

	var snap *snapshot
	if f.Resume != nil {
		snap = s.loadSnapshot(ctx, f.Resume, claims.Subject, hs.adopt)
	}

	s.mu.Lock()
	if s.state != stateNew {
		// The wire went while the token or the snapshot was read: the
		// session must not come back to life (and into the registry).
		s.mu.Unlock()
		return
	}
	// Keep what the session uses of the claims, not the claims (the
	// handshake's copy), for the connection's lifetime.
	s.user = claims.Subject
	s.channels = claims.Channels
	s.expiresAt = unixNano(claims.ExpiresAt)
	s.queue.SetWindow(window)
	if snap != nil {
		s.id, s.resumeToken = snap.ID, newID(18)
		s.gen = snap.Gen + 1 // this connection owns the session now
	} else {
		s.id, s.resumeToken = newID(12), newID(18)
	}
	s.tokenHash = hashToken(s.resumeToken)
	if snap != nil && hs.adopt {
		// Adopt drops this connect's reply (the client is not told), so
		// the client keeps resuming with the token the old node gave it:
		// a new token here would refuse its next resume ("token or user
		// mismatch") and cost it the session and its subscriptions.
		s.tokenHash = snap.TokenHash
	}
	if snap != nil && hs.ResumeSeq >= 0 && s.puller != nil {
		snap.applyResumeSeq(uint64(hs.ResumeSeq))
	}
	if snap != nil && snap.Seq > 0 {
		s.queue.SetLastSeq(snap.Seq) // the client's seq numbers go on
	}
	if snap != nil && snap.Acked {
		// The client acknowledges (it did on its earlier connection):
		// positions for the next resume come from its acks.
		s.everAcked = true
		s.acks = &ackRing{}
	}
	s.state = stateConnected
	if hook != nil {
		s.extraLocked().hook = hook
	}
	if snap != nil && len(snap.Subs) > 0 {
		// Saved with the connection's state until restore added them
		// (the first save is just below, before restore starts).
		s.extraLocked().restoring = snap.Subs
	}
	s.mu.Unlock()
	// Index the session by user before the client can see it connected:
	// an API disconnect right after must find it.
	s.registerConnected()
	s.mu.Lock()
	exp := int64(0)
	if !claims.ExpiresAt.IsZero() {
		exp = claims.ExpiresAt.Unix()
	}
	err := s.replyLocked(&protocol.Connected{
		ID:          f.ID,
		Session:     s.id,
		ResumeToken: s.resumeToken,
		Node:        env.NodeID,
		User:        s.user,
		Heartbeat: protocol.Heartbeat{
			IntervalMS: env.Limits.HeartbeatInterval.Milliseconds(),
			TimeoutMS:  env.Limits.HeartbeatTimeout.Milliseconds(),
		},
		Limits: protocol.Limits{
			MaxFrameBytes: env.Limits.MaxFrameBytes,
			Window:        window,
			Rate:          env.Limits.PublishRate,
		},
		Resumed:      snap != nil,
		ExpiresAt:    exp,
		SessionToken: hs.SessionToken,
		StreamTicket: hs.StreamTicket,
	})
	// The handshake (its token and claims among others) is not kept.
	s.dropExtraLocked()
	s.mu.Unlock()
	s.afterPush(err)

	s.writeSnapshot(ctx, true, nil, false) // the generation it read, plus one
	s.mu.Lock()
	s.savedAt = s.msSinceOpened(env.now())
	s.mu.Unlock()
	if env.Metrics != nil {
		env.Metrics.ConnOpened(s.t.Name())
		env.Metrics.Handshake(time.Duration(env.now().UnixNano() - s.opened))
		if f.Resume != nil {
			env.Metrics.Resume(snap != nil)
		}
	}
	env.Logger.LogAttrs(ctx, slog.LevelInfo, "connection opened", // LogAttrs: no boxing per attribute
		slog.String("conn", s.connID), slog.String("session", s.id),
		slog.String("user", s.user), slog.String("transport", s.t.Name()),
		slog.String("remote", s.remote), slog.String("client", auth.Clip(f.Client)),
		slog.Bool("resumed", snap != nil))
	s.webhook(hooks.EventConnectionOpened, "", 0, "", nil)

	s.enforceUserLimit(ctx)
	if snap != nil {
		s.restore(ctx, snap)
		if len(snap.Subs) > 0 {
			// With the restored subscriptions (the snapshot written above
			// has none yet); without any it is complete already.
			s.saveLiveState(ctx)
		}
	}
	if len(hookSubs) > 0 {
		s.subscribeServerSide(ctx, hookSubs)
		s.saveLiveState(ctx)
	}
}

// enforceUserLimit registers the connection for its user and evicts the
// user's oldest connections beyond the limit.
func (s *Session) enforceUserLimit(ctx context.Context) {
	env := s.env
	if env.Users == nil || s.user == "" {
		return
	}
	// PerUser <= 0 is no cap: the connection is still recorded (a later
	// limit, or another node's, counts it) but nothing is evicted.
	limit := env.Limits.PerUser
	evict, err := env.Users.AddUserConn(ctx, s.user, broker.ConnRef{Conn: s.connID, Node: env.NodeID, Since: time.Unix(0, s.opened)}, userConnTTL(env), limit)
	if err != nil {
		env.Logger.Warn("user connection count", slog.String("user", s.user), slog.Any("err", err))
		return
	}
	for _, c := range evict {
		reason := fmt.Sprintf("evicted: more than %d connections for this user", limit)
		if c.Node == env.NodeID {
			if old, ok := env.Registry.ByConn(c.Conn); ok {
				old.Close(protocol.CloseEvicted, reason)
			} else {
				_ = env.Users.RemoveUserConn(ctx, s.user, c.Conn)
			}
			continue
		}
		_ = env.Node.Control(ctx, broker.Control{Node: c.Node, Kind: broker.ControlEvict, User: s.user, Conn: c.Conn, Code: protocol.CloseEvicted, Reason: reason})
	}
}

// userConnTTL is how long a user-connection record lives without refresh.
func userConnTTL(env *Env) time.Duration {
	return 3 * (env.Limits.HeartbeatInterval + env.Limits.HeartbeatTimeout)
}

// updateRateLocked sets the connection's outbound rate limit: the lowest
// rate of the namespaces it subscribes to (0 = unlimited). A connection has
// one queue, so one rate applies to all it receives; conflation lets a
// throttled client still get the latest value of every key.
func (s *Session) updateRateLocked() {
	rate := 0.0
	for _, sub := range s.subs {
		if r := float64(sub.rate); r > 0 && (rate == 0 || r < rate) {
			rate = r
		}
	}
	// The queue keeps the rate (SetRate of an unchanged rate changes
	// nothing).
	s.queue.SetRate(rate, 0)
}

// permit checks a channel action against the token and the namespace.
func (s *Session) permit(ch string, publish bool) (node.Rules, error) {
	rules, ok := s.env.Node.RulesFor(ch)
	if !ok {
		return rules, protocol.Errorf(protocol.CodeNotFound, "channel %q: unknown namespace", ch)
	}
	s.mu.Lock()
	claims := auth.Claims{Subject: s.user, Channels: s.channels}
	s.mu.Unlock()
	action := "subscribe to"
	allowed, named := claims.CanSubscribe(ch)
	byRule := rules.Subscribe
	if publish {
		action = "publish to"
		allowed, named = claims.CanPublish(ch)
		byRule = rules.Publish
	}
	if named && !allowed {
		return rules, protocol.Errorf(protocol.CodeForbidden, "not allowed to %s channel %q (token channels claim)", action, ch)
	}
	if !named && !byRule {
		return rules, protocol.Errorf(protocol.CodeForbidden, "not allowed to %s channel %q (namespace rules)", action, ch)
	}
	return rules, nil
}

// errAlreadySubscribed is the answer to a subscribe of a channel the
// session is subscribed to.
var errAlreadySubscribed = &protocol.Error{Code: protocol.CodeConflict, Reason: "already subscribed"}

func (s *Session) handleSubscribe(ctx context.Context, f *protocol.ClientFrame) error {
	ch := f.Channel
	rules, err := s.permit(ch, false)
	if err != nil {
		return err
	}
	var info []byte
	if rules.SubscribeHook != "" && s.env.Hooks != nil {
		s.mu.Lock()
		dup := s.subFor(ch) != nil
		s.mu.Unlock()
		if dup { // no need to ask the back end
			return protocol.Errorf(protocol.CodeConflict, "already subscribed to %q", ch)
		}
		if info, err = s.subscribeHook(ctx, rules.SubscribeHook, ch); err != nil {
			return err
		}
	}
	var since *broker.Position
	if f.Since != nil {
		since = &broker.Position{Offset: f.Since.Offset, Epoch: f.Since.Epoch}
	}
	if err := s.subscribe(ctx, f.ID, ch, f.Presence, since, rules, info); err != nil {
		if errors.Is(err, errAlreadySubscribed) {
			return protocol.Errorf(protocol.CodeConflict, "already subscribed to %q", ch)
		}
		return err
	}
	return nil
}

// subscribe subscribes the session to ch (a client's subscribe with id,
// or a server-side one with id 0) once it is allowed; info is the
// subscribe hook's, for the webhook.
func (s *Session) subscribe(ctx context.Context, id uint32, ch string, presence bool, since *broker.Position, rules node.Rules, info []byte) error {
	s.mu.Lock()
	if s.subFor(ch) != nil {
		s.mu.Unlock()
		return errAlreadySubscribed
	}
	if max := s.env.Limits.MaxSubscriptions; max > 0 && len(s.subs) >= max {
		s.mu.Unlock()
		return protocol.Errorf(protocol.CodeForbidden, "subscription limit reached (%d per connection)", max)
	}
	sub := &subscription{ch: ch, recovering: true, presence: presence && rules.JoinLeave, rate: float32(rules.Rate)}
	s.addSubLocked(sub)
	s.updateRateLocked()
	s.mu.Unlock()

	if _, err := s.startSubscription(ctx, id, ch, sub, since, rules); err != nil {
		s.mu.Lock()
		if s.removeSubLocked(sub) {
			s.updateRateLocked()
		}
		s.mu.Unlock()
		return err
	}
	s.saveLiveState(ctx)
	s.webhook(hooks.EventSubscribed, ch, 0, "", info)
	return nil
}

// startSubscription subscribes the session to ch at the hub, replays what
// the client missed after since (when given), and then switches to live
// delivery. The seam is closed by buffering live messages while history is
// read and dropping those the replay already covered; a replay longer than
// the queue goes in pages (see replay.go).
func (s *Session) startSubscription(ctx context.Context, id uint32, ch string, sub *subscription, since *broker.Position, rules node.Rules) (*protocol.Subscribed, error) {
	env := s.env
	if err := env.Hub.Subscribe(ctx, ch, s); err != nil {
		return nil, node.BrokerError("subscribe", err)
	}
	q := broker.HistoryQuery{Since: since, Limit: -1}
	if since != nil {
		q.Limit = s.pageSize()
	}
	res, err := env.Broker.History(ctx, ch, q)
	if err != nil {
		env.Hub.Unsubscribe(ch, s)
		return nil, node.BrokerError("history", err)
	}
	reply := &protocol.Subscribed{ID: id, Channel: ch, Offset: res.Offset, Epoch: res.Epoch}
	if since != nil {
		reply.Recovered = res.Complete
		if !res.Complete {
			reply.Missed = missedCount(since, &res)
		}
		if env.Metrics != nil {
			env.Metrics.Recovery(reply.Recovered)
		}
	}
	// tracked is set on sub under s.mu (the sweep reads it under s.mu),
	// and only while sub is still the session's: once removed, nothing
	// writes it, so dropSubscription and release read it without the lock.
	tracked := false
	if rules.Presence && env.Presence != nil {
		if err := env.Presence.AddPresence(ctx, ch, broker.PresenceInfo{User: s.User(), Conn: s.connID, Node: env.NodeID}, presenceTTL(env)); err == nil {
			tracked = true
		}
	}

	s.mu.Lock()
	if s.state != stateConnected || s.subFor(ch) != sub {
		s.mu.Unlock()
		env.Hub.Unsubscribe(ch, s)
		if tracked {
			_ = env.Presence.RemovePresence(ctx, ch, s.connID)
		}
		return nil, protocol.Errorf(protocol.CodeConflict, "subscription to %q ended while it started", ch)
	}
	sub.tracked = tracked
	sub.epoch, sub.offset = res.Epoch, res.Offset
	if since != nil && len(res.Messages) > 0 {
		sub.offset = since.Offset
		if since.Epoch != res.Epoch {
			sub.offset = 0
		}
	}
	sub.written, sub.acked = sub.offset, sub.offset
	perr := s.replyLocked(reply)
	if perr == nil {
		perr = s.queuePageLocked(sub, &res, q.Limit)
	}
	s.mu.Unlock()
	s.afterPush(perr)
	if tracked && rules.JoinLeave {
		_ = env.Node.Control(ctx, broker.Control{Kind: broker.ControlJoin, Channel: ch, User: s.User(), Conn: s.connID})
	}
	return reply, nil
}

// missedCount is how many messages after since a recovery could not
// deliver (history did not reach back far enough, or the epoch changed).
func missedCount(since *broker.Position, res *broker.HistoryResult) uint64 {
	sameStream := since.Epoch == res.Epoch || since.Offset == 0
	from := uint64(0) // last offset the client has in this stream
	if sameStream {
		from = since.Offset
	}
	if len(res.Messages) == 0 {
		if res.Offset > from {
			return res.Offset - from
		}
		return 0
	}
	if first := res.Messages[0].Offset; first > from+1 {
		return first - from - 1
	}
	return 0
}

// presenceTTL is how long a presence entry lives without refresh.
func presenceTTL(env *Env) time.Duration {
	return 3 * (env.Limits.HeartbeatInterval + env.Limits.HeartbeatTimeout)
}

func (s *Session) handleUnsubscribe(ctx context.Context, f *protocol.ClientFrame) error {
	s.mu.Lock()
	sub := s.subFor(f.Channel)
	ok := sub != nil
	if ok {
		s.removeSubLocked(sub)
		s.updateRateLocked()
	}
	s.mu.Unlock()
	if !ok {
		return protocol.Errorf(protocol.CodeNotFound, "not subscribed to %q", f.Channel)
	}
	s.dropSubscription(ctx, f.Channel, sub)
	s.reply(&protocol.Unsubscribed{ID: f.ID, Channel: f.Channel})
	s.saveLiveState(ctx)
	s.webhook(hooks.EventUnsubscribed, f.Channel, 0, "", nil)
	return nil
}

// saveLiveState writes the live snapshot of a session after its
// subscriptions changed. When its node dies without handing its state over
// (SIGKILL), another node resumes the session (a WebSocket client's
// resume) or adopts it (SSE, long-poll) from that snapshot: the one
// written at connect has none of the subscriptions made after it, and the
// session would come back "resumed" with no channel at all, silent. Clients
// trust a resume to restore their channels (the TypeScript SDK does not
// subscribe again), so WebSocket sessions need it as much as HTTP ones.
// The cost is one KV write per subscribe and unsubscribe.
func (s *Session) saveLiveState(ctx context.Context) {
	if s.isClosing() {
		return
	}
	s.saveSnapshot(ctx, true, nil)
	s.mu.Lock()
	s.savedAt = s.msSinceOpened(s.env.now())
	s.mu.Unlock()
}

// dropSubscription releases what a subscription holds outside the session.
func (s *Session) dropSubscription(ctx context.Context, ch string, sub *subscription) {
	env := s.env
	env.Hub.Unsubscribe(ch, s)
	if sub.tracked && env.Presence != nil { // sub is no longer the session's: see startSubscription
		_ = env.Presence.RemovePresence(ctx, ch, s.connID)
		if rules, ok := env.Node.RulesFor(ch); ok && rules.JoinLeave {
			_ = env.Node.Control(ctx, broker.Control{Kind: broker.ControlLeave, Channel: ch, User: s.User(), Conn: s.connID})
		}
	}
}

func (s *Session) handlePublish(ctx context.Context, f *protocol.ClientFrame) error {
	rules, err := s.permit(f.Channel, true)
	if err != nil {
		return err
	}
	env := s.env
	if env.Limits.PublishRate > 0 {
		s.mu.Lock()
		now := env.now()
		x := s.extraLocked()
		if !x.pubSet {
			x.pub, x.pubSet = auth.NewTokenBucket(env.Limits.PublishRate, env.Limits.PublishBurst, now), true
		}
		ok := x.pub.Allow(now)
		if ok {
			x.strikes = 0
		} else {
			x.strikes++
		}
		strikes := x.strikes
		s.mu.Unlock()
		if !ok {
			if env.Limits.PublishCloseAfter > 0 && strikes >= env.Limits.PublishCloseAfter {
				s.Close(protocol.CloseRateLimited, "rate limited: too many publishes")
				return nil
			}
			return &protocol.Error{Code: protocol.CodeRateLimited, Reason: fmt.Sprintf("publish rate limit: %.0f per second", env.Limits.PublishRate), Retry: true}
		}
	}
	data := []byte(f.Data)
	if rules.PublishHook != "" && env.Hooks != nil {
		if data, err = s.publishHook(ctx, rules.PublishHook, f); err != nil {
			return err
		}
	}
	// The user is read and the publish counted (the admin page's top
	// publishers) under one lock.
	s.mu.Lock()
	user := s.user
	s.extraLocked().published++
	s.mu.Unlock()
	res, err := env.Node.Publish(ctx, rules, node.PublishArgs{
		Channel: f.Channel, Data: data, Priority: f.Priority, Conflate: f.Conflate,
		Key: f.Key, From: user, Source: "client",
	})
	if err != nil {
		return err
	}
	s.reply(&protocol.Published{ID: f.ID, Offset: res.Offset, Epoch: res.Epoch, Duplicate: res.Duplicate})
	return nil
}

func (s *Session) handleAck(seq uint64) {
	s.mu.Lock()
	if s.acks == nil {
		// First ack: nothing was recorded per seq before it. An ack of
		// everything written so far confirms every subscription's written
		// position; a partial one confirms nothing yet (a resume then
		// replays a little more, deduplicated by offset).
		if seq >= s.queue.LastSeq() {
			for _, sub := range s.subs {
				sub.acked = max(sub.acked, sub.written)
			}
		}
		s.acks = &ackRing{}
	}
	s.queue.Ack(seq)
	s.everAcked = true
	for _, e := range s.acks.ackUpTo(seq) {
		if sub := s.subFor(e.channel); sub != nil && e.offset > sub.acked {
			sub.acked = e.offset
		}
	}
	s.mu.Unlock()
	s.scheduleNow()
}

func (s *Session) handleRefresh(ctx context.Context, f *protocol.ClientFrame) error {
	c, err := s.env.Verifier.Verify(ctx, f.Token)
	if err != nil {
		if errors.Is(err, auth.ErrTokenExpired) {
			return protocol.Errorf(protocol.CodeUnauthorized, "refresh: token expired")
		}
		return protocol.Errorf(protocol.CodeUnauthorized, "refresh: %v", err)
	}
	s.mu.Lock()
	if c.Subject != s.user {
		s.mu.Unlock()
		return protocol.Errorf(protocol.CodeForbidden, "refresh: token is for another user")
	}
	s.channels = c.Channels
	s.expiresAt = unixNano(c.ExpiresAt)
	s.mu.Unlock()
	exp := int64(0)
	if !c.ExpiresAt.IsZero() {
		exp = c.ExpiresAt.Unix()
	}
	s.reply(&protocol.Refreshed{ID: f.ID, ExpiresAt: exp})
	return nil
}

func (s *Session) handleHistory(ctx context.Context, f *protocol.ClientFrame) error {
	rules, err := s.permit(f.Channel, false)
	if err != nil {
		return err
	}
	// One reply carries at most maxHistoryReply messages (and half the
	// queue's bytes): a client pages with since for more.
	limit := f.Limit
	if limit <= 0 || limit > maxHistoryReply {
		limit = maxHistoryReply
	}
	q := broker.HistoryQuery{Limit: limit}
	if f.Since != nil {
		q.Since = &broker.Position{Offset: f.Since.Offset, Epoch: f.Since.Epoch}
	}
	res, err := s.env.Node.History(ctx, f.Channel, rules, q)
	if err != nil {
		return err
	}
	msgs := make([]protocol.HistoryMessage, 0, len(res.Messages))
	budget := s.env.Limits.QueueBytes / 2
	for i := range res.Messages {
		p := &res.Messages[i]
		if budget -= len(p.Data) + 64; budget < 0 && len(msgs) > 0 {
			break
		}
		msgs = append(msgs, node.HistoryMessage(p))
	}
	s.reply(&protocol.History{ID: f.ID, Channel: f.Channel, Messages: msgs, Offset: res.Offset, Epoch: res.Epoch})
	return nil
}

func (s *Session) handlePresence(ctx context.Context, f *protocol.ClientFrame) error {
	rules, err := s.permit(f.Channel, false)
	if err != nil {
		return err
	}
	clients, err := s.env.Node.PresenceOf(ctx, f.Channel, rules)
	if err != nil {
		return err
	}
	s.reply(&protocol.Presence{ID: f.ID, Channel: f.Channel, Clients: clients, Count: len(clients)})
	return nil
}

// unixNano is t in unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
