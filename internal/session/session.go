package session

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hooks"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// Transport carries a session's frames over one wire (WebSocket, SSE,
// long-poll). The session never waits on it: Send must not block on a slow
// peer.
type Transport interface {
	// Name is "ws", "sse" or "poll".
	Name() string
	// Send writes one encoded message (a frame, or a batch of frames) and
	// returns how many bytes the transport still holds unsent.
	Send(msg []byte) (pending int, err error)
	// Pending is the number of bytes the transport holds unsent.
	Pending() int
	// Ping checks liveness (a WebSocket ping, an SSE comment).
	Ping() error
	// Close ends the connection with a close code and a reason. The
	// transport then calls Session.Closed once.
	Close(code int, reason string)
	// LastActivity is when the peer last sent anything.
	LastActivity() time.Time
}

// Handshake is what the transport learned before the session began.
type Handshake struct {
	// Token came with the handshake (header, cookie or ticket); "" when
	// the connect frame must carry it.
	Token string
	// Claims are the verified claims of Token, when given.
	Claims *auth.Claims
	// RemoteAddr is the client address as it may be logged (truncated
	// unless full IPs are configured).
	RemoteAddr string
	Codec      protocol.Codec
	// SessionToken and StreamTicket go into the connected frame of an
	// HTTP-fallback session (its credential for later requests, and the
	// single-use ticket for its first SSE stream).
	SessionToken string
	StreamTicket string
	// ResumeSeq, when >= 0, is the seq of the last message the client
	// received (Last-Event-ID) when an HTTP session is adopted by another
	// node: the resume starts after it.
	ResumeSeq int64
	// Headers are the handshake's headers on the hooks' allowlist, for
	// the connect hook and the later ones (nil without hooks).
	Headers map[string]string

	// adopt marks a node taking over an HTTP session it found by the
	// session token's record (see Adopt): the resume token is not needed
	// (the record does not keep it).
	adopt bool
}

const (
	stateNew = iota
	stateConnected
	stateClosed
)

// maxPendingBytes: above this many unsent bytes in the transport, the
// writer stops pulling from the queue until the transport drains.
const maxPendingBytes = 64 << 10

// maxBatchFrames caps the frames written in one message.
const maxBatchFrames = 128

// Session is one client connection's state machine, independent of the
// wire. Its methods are safe for concurrent use: frames arrive from the
// transport's reader, publications from the hub, the writer pool drains the
// queue.
type Session struct {
	// Set by New and read-only after (no lock needed).
	env    *Env
	t      Transport
	codec  protocol.Codec
	puller Puller // set for pull transports (SSE, long-poll)
	connID string
	remote string
	opened int64 // unix nanos

	pingedAt atomic.Int64 // (atomic) unix nanos of the last unanswered ping; 0 = none; the sweep's
	// nextOfUser is the next session of the same user in the node's
	// registry; guarded by the lock of the registry shard of the user
	// (only the registry touches it, through UserLink).
	nextOfUser *Session
	// sweepLink is the session's place in the registry's timing wheel;
	// only the registry touches it (SweepLink).
	sweepLink node.SweepLink[*Session]

	mu          sync.Mutex // guards the fields below that are not atomics
	state       uint8      // guarded by mu: stateNew, stateConnected, stateClosed
	everAcked   bool       // guarded by mu
	replaying   bool       // guarded by mu: a goroutine is reading replay pages
	replays     int32      // guarded by mu: subscriptions with replay pages still to read
	closeCode   int32      // guarded by mu: the code Close was called with (0: not yet)
	gen         uint32     // guarded by mu: the session record's generation this connection owns (snapshot.Gen)
	id          string     // guarded by mu: the session id ("" before connect)
	resumeToken string     // guarded by mu
	// tokenHash is hashToken of the resume token the client holds, which
	// snapshots keep (guarded by mu). It is resumeToken's, except on an
	// adopted HTTP session: its client never sees the adopting node's
	// connected frame, so the token it got from the old node stays valid.
	tokenHash string
	user      string // guarded by mu; set by connect
	// channels is the token's channels claim (nil: none); expiresAt is
	// its expiry in unix nanos (0: none). With user, they are all the
	// session keeps of its claims. Guarded by mu.
	channels   *auth.ChannelsClaim
	expiresAt  int64
	subs       []*subscription // guarded by mu (and each subscription's fields); see subs.go
	queue      flow.Queue      // guarded by mu
	acks       *ackRing        // guarded by mu; set by New for pull transports
	extra      *sessionExtra   // guarded by mu; nil until needed
	scratch    []flow.Item     // guarded by mu: the flush's pop buffer
	batchTimer *time.Timer     // guarded by mu
	rateTimer  *time.Timer     // guarded by mu
	// refreshedAt and savedAt are when the records were last refreshed
	// and the live snapshot last written, in milliseconds since opened
	// (modulo 2^32: they are only compared with times less than 49 days
	// later). Guarded by mu.
	refreshedAt uint32
	savedAt     uint32

	// slot is the session's place in the node's writer pool: whether it
	// is scheduled, when it was last written (atomics, see flow.Slot).
	slot flow.Slot
	// queuedAt is when a message last found the queue with nothing
	// waiting, on the pool's clock (flow.Writers.Now); 0 = none since the
	// last write. One clock reading per write batch, for
	// ferry_queue_to_write_seconds.
	queuedAt atomic.Int64
}

// sessionExtra is what few sessions need, made on first use (an idle
// connection does without it).
//
// A sessionExtra and all its fields are guarded by the session's mu.
type sessionExtra struct {
	// hs is what the handshake brought, until the connect frame is
	// handled (nil after).
	hs          *Handshake
	subIdx      map[string]*subscription // see subs.go
	closeReason string
	closed      chan struct{} // made by the first Done call
	// pub and strikes are the client publish rate state; pubSet says
	// whether pub was made (on the first publish).
	pub     auth.TokenBucket
	pubSet  bool
	strikes int
	// published counts the publish frames that passed the rate limit,
	// for the admin page's top publishers (Summary).
	published uint64
	// hook is what the back-end hooks need to know of the connection
	// (nil on a node without hooks; see hooks.go).
	hook *hookState
	// restoring is what a resumed session's restore has not yet added
	// to subs, from the snapshot it resumed: every snapshot written
	// meanwhile keeps it (see restore), so that a takeover while the
	// restore runs does not lose the channels it had not reached.
	restoring []snapshotSub
}

// extraLocked returns the session's sessionExtra, making it.
func (s *Session) extraLocked() *sessionExtra {
	if s.extra == nil {
		s.extra = &sessionExtra{}
	}
	return s.extra
}

// dropExtraLocked forgets the session's extra when nothing is left in it.
func (s *Session) dropExtraLocked() {
	x := s.extra
	if x != nil && x.hs == nil && x.subIdx == nil && x.closeReason == "" && x.closed == nil && !x.pubSet && x.published == 0 && x.hook == nil && x.restoring == nil {
		s.extra = nil
	}
}

// msSinceOpened is now in milliseconds since the session opened, modulo
// 2^32 (see refreshedAt).
func (s *Session) msSinceOpened(now time.Time) uint32 {
	return uint32((now.UnixNano() - s.opened) / int64(time.Millisecond))
}

// closeReasonLocked is the reason given to Close ("" before).
func (s *Session) closeReasonLocked() string {
	if s.extra == nil {
		return ""
	}
	return s.extra.closeReason
}

// subscription is one channel a session is subscribed to.
//
// A node keeps one for every subscribed connection: the fields are ordered
// (and rate is a float32) so that it takes 96 bytes.
//
// Every field is guarded by the session's mu, except ch (set when made,
// read-only after). Once the subscription is removed from the session
// (unsubscribe, close) nothing writes it any more, so the code that
// releases it reads it without the lock.
type subscription struct {
	ch         string
	epoch      string
	offset     uint64 // last offset queued (or skipped as already known)
	written    uint64 // last offset written to the wire
	acked      uint64 // last offset the client acknowledged
	replayFrom uint64
	replayGen  uint32 // bumped by a rewind: pages read for an older replay are stale
	pending    []*node.Outgoing
	rate       float32 // the namespace's outbound rate limit (messages/s)
	recovering bool    // replay in progress: live messages wait in pending
	replayDue  bool    // a paged replay has more to read after replayFrom
	presence   bool    // wants join/leave events
	tracked    bool    // this connection is in the channel's presence set
}

// New starts a session on transport t. The caller then feeds it with
// HandleMessage and reports the end of the wire with Closed.
func New(env *Env, t Transport, hs Handshake) *Session {
	s := &Session{
		env:    env,
		t:      t,
		codec:  hs.Codec,
		connID: newID(12),
		remote: hs.RemoteAddr,
		opened: env.now().UnixNano(),
		extra:  &sessionExtra{hs: &hs},
	}
	if s.codec == nil {
		s.codec = protocol.JSON
	}
	if p, ok := t.(Puller); ok {
		s.puller = p
		// A frame pulled into an HTTP response is not known to have
		// arrived: positions for resumption come from what the client
		// confirms (Last-Event-ID), with the seq->offset map to read it.
		s.acks = &ackRing{}
		s.everAcked = true
	}
	s.queue.Init(flow.Config{
		MaxMessages: env.Limits.QueueMessages,
		MaxBytes:    env.Limits.QueueBytes,
		Grace:       env.Limits.SlowConsumerGrace,
	})
	env.Registry.Add(s)
	return s
}

// CloseCode reports the code and reason the session was (or is being)
// closed with; ok is false while it is open.
func (s *Session) CloseCode() (code int, reason string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.closeCode), s.closeReasonLocked(), s.closeCode != 0 || s.state == stateClosed
}

// Connected reports whether the connect frame was accepted.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateConnected
}

// ResumeInfo returns the session id and the current resume token (they
// change on every connect, resumed or not).
func (s *Session) ResumeInfo() (id, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id, s.resumeToken
}

// Claims returns what the session keeps of the claims it connected with
// (or was refreshed with): the subject, the expiry and the channels claim;
// nil before connect.
func (s *Session) Claims() *auth.Claims {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.id == "" {
		return nil // not connected (yet)
	}
	c := &auth.Claims{Subject: s.user, Channels: s.channels}
	if s.expiresAt != 0 {
		c.ExpiresAt = time.Unix(0, s.expiresAt)
	}
	return c
}

// ConnID is the connection's id.
func (s *Session) ConnID() string { return s.connID }

// User is the authenticated user id ("" before connect or when anonymous).
func (s *Session) User() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user
}

// Summary is what the admin page shows of one connection.
type Summary struct {
	Conn      string
	User      string
	Transport string
	Opened    time.Time
	// Published counts the publish frames that passed the rate limit.
	Published uint64
	// Queued is the number of frames waiting in the outbound queue.
	Queued        int
	Subscriptions int
	Connected     bool
}

// Summary reports the connection's state for the admin page, read under
// one lock.
func (s *Session) Summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{
		Conn: s.connID, User: s.user, Transport: s.t.Name(), Opened: time.Unix(0, s.opened),
		Queued: s.queue.Len(), Subscriptions: len(s.subs), Connected: s.state == stateConnected,
	}
	if s.extra != nil {
		sum.Published = s.extra.published
	}
	return sum
}

// Transport returns the session's transport name.
func (s *Session) Transport() string { return s.t.Name() }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.extraLocked()
	if x.closed == nil {
		// Made on demand: few sessions are ever waited for.
		x.closed = make(chan struct{})
		if s.state == stateClosed {
			close(x.closed)
		}
	}
	return x.closed
}

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Deliver queues a publication or a presence event for this session (called
// by the hub; never blocks).
func (s *Session) Deliver(ch string, v any) {
	switch o := v.(type) {
	case *node.Outgoing:
		s.deliverMessage(ch, o)
	case *node.PresenceOut:
		s.mu.Lock()
		sub := s.subFor(ch)
		if sub == nil || !sub.presence || s.state != stateConnected {
			s.mu.Unlock()
			return
		}
		err := s.replyLocked(&o.Event)
		s.mu.Unlock()
		s.afterPush(err)
	}
}

func (s *Session) deliverMessage(ch string, o *node.Outgoing) {
	s.mu.Lock()
	sub := s.subFor(ch)
	if sub == nil || s.state != stateConnected {
		s.mu.Unlock()
		return
	}
	if sub.recovering {
		sub.pending = append(sub.pending, o)
		s.mu.Unlock()
		return
	}
	if s.gapLocked(sub, o.Msg) {
		// Live delivery skipped messages (the broker lost them between
		// nodes, or its stream restarted): read them from history first.
		sub.pending = append(sub.pending, o)
		s.mu.Unlock()
		s.maybeContinueReplay()
		return
	}
	err := s.queueMessageLocked(sub, o)
	s.mu.Unlock()
	s.afterPush(err)
}

// gapLocked reports whether m, arriving live, skips messages the client
// has not had; if so the subscription switches to recovering and a replay
// from its position is due.
func (s *Session) gapLocked(sub *subscription, m *protocol.PreparedMessage) bool {
	from := sub.offset
	switch {
	case sub.epoch == "" || sub.replayDue:
		return false
	case m.Epoch() == sub.epoch:
		if m.Offset() <= sub.offset+1 {
			return false
		}
	default: // a new stream: its first messages may be missing
		if m.Offset() <= 1 {
			return false
		}
		sub.epoch, sub.offset, from = m.Epoch(), 0, 0
	}
	sub.recovering = true
	sub.replayDue, sub.replayFrom = true, from
	s.replays++
	return true
}

// queueMessageLocked queues a message unless the client already has it.
func (s *Session) queueMessageLocked(sub *subscription, o *node.Outgoing) error {
	m := o.Msg
	if m.Epoch() == sub.epoch && m.Offset() <= sub.offset {
		return nil // duplicate (replay and live overlap)
	}
	sub.epoch = m.Epoch()
	sub.offset = m.Offset()
	size := m.Size()
	var now time.Time // Push reads it only when the queue goes over its bounds
	if !s.queue.Fits(size) {
		now = s.env.now()
	}
	res, err := s.queue.Push(flow.Item{
		Msg:      m,
		Priority: m.Priority(),
		Conflate: o.Conflate,
		Size:     size,
	}, now)
	if s.env.Metrics != nil {
		for p, n := range res.Dropped {
			if n > 0 {
				s.env.Metrics.Dropped(protocol.Priority(p).String(), "queue_full", n)
			}
		}
		if res.Conflated {
			s.env.Metrics.Conflated(1)
		}
	}
	return err
}

// replyLocked encodes f for this connection and queues it.
func (s *Session) replyLocked(f protocol.ServerFrame) error {
	b, err := s.codec.AppendFrame(nil, f)
	if err != nil {
		return err
	}
	_, err = s.queue.Push(flow.Item{Frame: b, Size: len(b), Priority: protocol.PriorityCritical}, s.env.now())
	return err
}

// reply queues f and schedules a write.
func (s *Session) reply(f protocol.ServerFrame) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	err := s.replyLocked(f)
	s.mu.Unlock()
	if err == nil && s.puller == nil {
		// A reply answers a request the client waits for: it waits
		// neither for the coalescing window nor for batch.delay (what
		// else is queued goes along). A publisher that waits for each
		// publish's reply is not slowed to one publish per batch.delay.
		s.scheduleReply()
		return
	}
	s.afterPush(err)
}

// scheduleReply hands the session to the writer pool at once, taking it
// out of the pool's delayed list if it waits there.
func (s *Session) scheduleReply() {
	s.env.Registry.Wake(s)
	s.env.Writers.Reply(s)
}

// replyError answers a request with an error frame.
func (s *Session) replyError(id uint32, err error) {
	pe := protocol.AsError(err)
	if s.env.Metrics != nil {
		s.env.Metrics.ErrorSent(pe.Code)
	}
	s.reply(&protocol.ErrorFrame{ID: id, Code: pe.Code, Reason: pe.Reason, Retry: pe.Retry})
}

// afterPush schedules a write, or closes a slow consumer.
func (s *Session) afterPush(err error) {
	if err != nil {
		if errors.Is(err, flow.ErrSlowConsumer) {
			// Counted by Close, once: pushes that fail while the
			// connection is closing are not more slow consumers.
			s.Close(protocol.CloseSlowConsumer, "slow consumer: outbound queue full")
			return
		}
		s.env.Logger.Error("queue push", slog.String("conn", s.connID), slog.Any("err", err))
		return
	}
	s.schedule()
}

// schedule asks the writer pool to flush this session (at most once at a
// time), after the batch delay when batching is on.
func (s *Session) schedule() {
	if s.env.Metrics != nil && s.puller == nil && s.queuedAt.Load() == 0 {
		s.queuedAt.CompareAndSwap(0, s.env.Writers.Now())
	}
	if d := s.env.Limits.BatchDelay; d > 0 {
		s.env.Registry.Wake(s) // at once, not after the delay (see scheduleNow)
		s.mu.Lock()
		if s.batchTimer == nil && s.state != stateClosed {
			s.batchTimer = time.AfterFunc(d, func() {
				s.mu.Lock()
				s.batchTimer = nil
				s.mu.Unlock()
				s.scheduleNow()
			})
		}
		s.mu.Unlock()
		return
	}
	s.scheduleNow()
}

// scheduleNow asks the writer pool to flush this session (at most once at
// a time) without the fixed batch delay; under load the pool's adaptive
// coalescing window may still hold it back (see Writers).
func (s *Session) scheduleNow() {
	// Something is queued: the sweep checks the queue's bounds from the
	// next second on, and releases its buffers once it is empty (and
	// Registry.QueueDepth counts the session's frames).
	s.env.Registry.Wake(s)
	if s.puller != nil {
		s.puller.Wake()
		return
	}
	s.env.Writers.Schedule(s)
}

// scheduleAtOnce is scheduleNow without the coalescing window, for a
// session that already waited (a drained backlog, the rate timer, a flush
// that stopped to let others have the writer).
func (s *Session) scheduleAtOnce() {
	if s.puller != nil {
		s.puller.Wake()
		return
	}
	s.env.Writers.WriteNow(s)
}

// Kick tells the session that its transport can take more (called by the
// transport after a backlog drained).
func (s *Session) Kick() { s.scheduleAtOnce() }

// Slot is the session's place in the writer pool (flow.Writable).
func (s *Session) Slot() *flow.Slot { return &s.slot }

// Flush writes what the queue allows to the transport (flow.Writable). It
// runs on a writer goroutine; buf is that goroutine's scratch buffer and
// now the pool's clock. It returns buf, the number of writes it made and
// the number of frames they carried.
func (s *Session) Flush(buf []byte, now int64) (_ []byte, writes, frames int) {
	for round := 0; round < 8; round++ {
		s.mu.Lock()
		if s.state == stateClosed || s.closeCode != 0 {
			s.mu.Unlock()
			return buf, writes, frames
		}
		if s.slot.Backlogged() && s.t.Pending() > maxPendingBytes {
			s.mu.Unlock()
			return buf, writes, frames
		}
		items, wait := s.queue.Pop(s.scratch[:0], maxBatchFrames, s.env.now())
		s.scratch = items[:0]
		if len(items) == 0 {
			s.mu.Unlock()
			if wait > 0 {
				s.armRateTimer(wait)
			}
			return buf, writes, frames
		}
		buf = s.encodeLocked(buf[:0], items)
		pending, err := s.t.Send(buf)
		if err == nil {
			s.markWrittenLocked(items)
			s.slot.Wrote(now, pending > 0)
			writes++
			frames += len(items)
		}
		n := len(items)
		clear(items)
		left := s.queue.Len()
		replays := s.replays > 0
		s.mu.Unlock()
		if err != nil {
			return buf, writes, frames
		}
		if s.env.Metrics != nil {
			s.env.Metrics.FrameOut(n)
			s.env.Metrics.Batch(n)
			if q := s.queuedAt.Swap(0); q != 0 {
				s.env.Metrics.QueueToWrite(time.Duration(now - q))
			}
		}
		if replays {
			s.maybeContinueReplay()
		}
		if n < maxBatchFrames && (left == 0 || wait > 0) {
			// Drained, or held back by credit or rate (an ack or the
			// rate timer schedules the next round).
			if wait > 0 {
				s.armRateTimer(wait)
			}
			return buf, writes, frames
		}
	}
	// Let other sessions have the writer; come back later.
	s.scheduleAtOnce()
	return buf, writes, frames
}

// armRateTimer schedules a flush when the rate limit lets the next message
// go.
func (s *Session) armRateTimer(wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rateTimer != nil || s.state == stateClosed {
		return
	}
	s.rateTimer = time.AfterFunc(wait, func() {
		s.mu.Lock()
		s.rateTimer = nil
		s.mu.Unlock()
		s.scheduleAtOnce()
	})
}

// markWrittenLocked records that the messages among items reached the
// transport (positions for resumption, seq->offset for acks).
func (s *Session) markWrittenLocked(items []flow.Item) {
	for i := range items {
		it := &items[i]
		if it.Msg == nil {
			continue
		}
		if sub := s.subFor(it.Msg.Channel()); sub != nil {
			sub.written = it.Msg.Offset()
		}
		if s.acks != nil {
			s.acks.add(it.Seq, it.Msg.Channel(), it.Msg.Offset())
		}
	}
}

// encodeLocked encodes popped items as one wire message.
func (s *Session) encodeLocked(dst []byte, items []flow.Item) []byte {
	c := s.codec
	if len(items) > 1 {
		dst = c.BeginBatch(dst, len(items))
	}
	delivered := 0
	for i := range items {
		if i > 0 && len(items) > 1 {
			dst = c.BatchSeparator(dst)
		}
		it := &items[i]
		if it.Msg == nil {
			dst = append(dst, it.Frame...)
			continue
		}
		delivered++
		dst = c.AppendMessage(dst, it.Msg, it.Seq)
	}
	if len(items) > 1 {
		dst = c.EndBatch(dst)
	}
	if delivered > 0 && s.env.Metrics != nil {
		s.env.Metrics.Delivered(delivered)
	}
	return dst
}

// Close sends a disconnect frame and closes the connection with code. It is
// safe to call more than once; the first call wins.
func (s *Session) Close(code int, reason string) {
	var retryAfter time.Duration
	switch code {
	case protocol.CloseRateLimited:
		retryAfter = time.Second
	case protocol.CloseDraining:
		retryAfter = 500 * time.Millisecond
	}
	s.closeRetry(code, reason, retryAfter)
}

// closeRetry is Close with the retry_after_ms of the disconnect frame.
func (s *Session) closeRetry(code int, reason string, retryAfter time.Duration) {
	s.mu.Lock()
	if s.state == stateClosed || s.closeCode != 0 {
		s.mu.Unlock()
		return
	}
	s.closeCode = int32(code)
	s.extraLocked().closeReason = reason
	if code == protocol.CloseSlowConsumer && s.env.Metrics != nil {
		s.env.Metrics.SlowConsumerClose()
	}
	d := &protocol.Disconnect{Code: code, Reason: reason, Reconnect: protocol.ShouldReconnect(code), RetryAfterMS: retryAfter.Milliseconds()}
	if s.puller != nil {
		// A pull transport takes the goodbye from the queue with the rest.
		_ = s.replyLocked(d)
		s.mu.Unlock()
		s.t.Close(code, reason)
		return
	}
	if code != protocol.CloseSlowConsumer {
		// Whatever was already queued (replies to accepted requests
		// included) goes out before the goodbye; a slow consumer's queue
		// cannot be sent, that is why it is closed.
		var buf []byte
		for round := 0; round < 64 && s.queue.Len() > 0; round++ {
			items, _ := s.queue.Pop(s.scratch[:0], maxBatchFrames, s.env.now())
			if len(items) == 0 {
				break
			}
			buf = s.encodeLocked(buf[:0], items)
			_, err := s.t.Send(buf)
			if err == nil {
				s.markWrittenLocked(items)
			}
			clear(items)
			if err != nil {
				break
			}
		}
	}
	if b, err := s.codec.AppendFrame(nil, d); err == nil {
		_, _ = s.t.Send(b)
	}
	s.mu.Unlock()
	s.t.Close(code, reason)
}

// Closed is called by the transport exactly once when the wire is gone. It
// releases everything the session holds and keeps its state for resumption.
func (s *Session) Closed(code int, reason string) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	wasConnected := s.state == stateConnected
	s.state = stateClosed
	if s.closeCode != 0 {
		code, reason = int(s.closeCode), s.closeReasonLocked()
	}
	if s.batchTimer != nil {
		s.batchTimer.Stop()
	}
	if s.rateTimer != nil {
		s.rateTimer.Stop()
	}
	// The closed session keeps no subscriptions: release gets them.
	subs := s.takeSubsLocked()
	s.queue.Reset()
	s.scratch = nil
	var done chan struct{}
	if s.extra != nil {
		done = s.extra.closed
	}
	s.mu.Unlock()
	if done != nil {
		close(done)
	}

	s.unregister()
	if !wasConnected {
		return
	}
	s.release(subs, code)
	if s.env.Metrics != nil {
		s.env.Metrics.ConnClosed(s.t.Name(), code)
	}
	if s.env.OnClosed != nil {
		s.env.OnClosed(Closing{Conn: s.connID, User: s.user, Transport: s.t.Name(), Code: code, Reason: reason})
	}
	s.webhook(hooks.EventConnectionClosed, "", code, reason, nil)
	// LogAttrs: Attrs passed as ...any are boxed, an allocation each, on
	// every connection's path.
	s.env.Logger.LogAttrs(context.Background(), slog.LevelInfo, "connection closed",
		slog.String("conn", s.connID), slog.String("session", s.id),
		slog.String("user", s.user), slog.String("transport", s.t.Name()),
		slog.String("remote", s.remote), slog.Duration("duration", s.env.now().Sub(time.Unix(0, s.opened))),
		slog.Int("code", code), slog.String("reason", reason))
}

// ClosedAsync reports the end of the wire like Closed, on a tracked
// goroutine of its own (for transports that may report it from inside a
// write the session makes while holding its lock).
func (s *Session) ClosedAsync(code int, reason string) {
	if s.env.Go != nil {
		s.env.Go(func() { s.Closed(code, reason) })
		return
	}
	go s.Closed(code, reason)
}

// Abort closes the wire at once, without a goodbye (shutdown past its
// timeout).
func (s *Session) Abort() {
	s.t.Close(protocol.CloseDraining, "server shutting down")
}
