package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ferry-io/ferry/protocol"
)

// Subscription is the client's subscription to one channel. It lasts across
// reconnects until Unsubscribe, Close, or the server ending it.
type Subscription struct {
	c          *Client
	ch         string
	handler    func(Message)
	onGap      func(Gap)
	onPresence func(PresenceEvent)
	msgs       chan Message
	// presenceWanted asks the server for join/leave events.
	presenceWanted bool

	ready    chan struct{} // closed by the first subscribed, or a refusal
	readyErr error

	// Guarded by c.mu.
	pos       Position
	hasPos    bool
	activeGen uint64 // the connection it is subscribed on
	reqID     uint32 // the subscribe in flight, 0 = none
	checkGap  bool   // restored by a resume: verify the first new offset
	// gapEpoch is the epoch the last Gap moved to, so that a stream
	// reset is reported once (by subscribed or by its first message).
	gapEpoch string
	// restoredAt is the channel's latest position when the server
	// restored the subscription (its subscribed frame without id).
	restoredAt Position
	readyDone  bool

	// The delivery queue.
	qmu    sync.Mutex
	q      []item
	wake   chan struct{}
	endMu  sync.Mutex
	ended  bool
	endErr error
	done   chan struct{} // closed when the subscription ends
}

// item is one thing a subscription delivers, in order.
type item struct {
	msg      Message
	gap      *Gap
	presence *PresenceEvent
	gen, seq uint64 // for the ack; seq 0 = nothing to ack
}

// SubscribeOption sets an option of one Subscribe.
type SubscribeOption func(*subOptions)

type subOptions struct {
	handler    func(Message)
	buffer     int
	since      *Position
	presence   bool
	onPresence func(PresenceEvent)
	onGap      func(Gap)
}

// WithHandler delivers the messages to fn, called in order on the
// subscription's goroutine, instead of the Messages channel. A message is
// acknowledged once fn returns.
func WithHandler(fn func(Message)) SubscribeOption {
	return func(o *subOptions) { o.handler = fn }
}

// WithBuffer sets the capacity of the Messages channel. Default 64. A
// message is acknowledged once it is in the channel.
func WithBuffer(n int) SubscribeOption {
	return func(o *subOptions) { o.buffer = n }
}

// WithSince starts the subscription after position p (say, the Position of
// the last message a previous run processed): the server replays what
// followed, and reports a Gap when it no longer can.
func WithSince(p Position) SubscribeOption {
	return func(o *subOptions) { o.since = &p }
}

// WithPresence asks for join and leave events of the channel (where its
// namespace sends them), delivered to fn in order with the messages.
func WithPresence(fn func(PresenceEvent)) SubscribeOption {
	return func(o *subOptions) { o.presence, o.onPresence = true, fn }
}

// WithGapHandler reports this subscription's gaps to fn instead of
// Config.OnGap.
func WithGapHandler(fn func(Gap)) SubscribeOption {
	return func(o *subOptions) { o.onGap = fn }
}

// defaultBuffer is the default capacity of a Messages channel.
const defaultBuffer = 64

// Subscribe subscribes to channel ch and waits until the server confirmed
// it (on this connection or, when the client is not connected, the next
// one), or ctx ends. Messages come on Messages() or to the WithHandler
// function. Errors: ErrAlreadySubscribed, a *ServerError (403 not allowed,
// 404 unknown namespace...), ctx's error, or ErrClosed.
func (c *Client) Subscribe(ctx context.Context, ch string, opts ...SubscribeOption) (*Subscription, error) {
	if err := protocol.ValidChannel(ch); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	o := subOptions{buffer: defaultBuffer}
	for _, fn := range opts {
		fn(&o)
	}
	s := &Subscription{
		c:          c,
		ch:         ch,
		handler:    o.handler,
		onGap:      o.onGap,
		onPresence: o.onPresence,
		ready:      make(chan struct{}),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if s.onGap == nil {
		s.onGap = c.cfg.OnGap
	}
	if s.handler == nil {
		s.msgs = make(chan Message, max(o.buffer, 0))
	}
	if o.since != nil {
		s.pos, s.hasPos = *o.since, true
	}
	presence := o.presence
	c.mu.Lock()
	if c.closing {
		err := closedError(c.closeErr)
		c.mu.Unlock()
		return nil, err
	}
	if _, dup := c.subs[ch]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("subscribe %q: %w", ch, ErrAlreadySubscribed)
	}
	c.subs[ch] = s
	s.presenceWanted = presence
	c.subWG.Add(1)
	go s.deliver()
	if cn := c.cn; cn != nil && !cn.barrier {
		f := c.subscribeFrameLocked(cn, s)
		c.sendLocked(cn, f)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-s.ready:
		if s.readyErr != nil {
			return nil, s.readyErr
		}
		return s, nil
	case <-s.done: // the client stopped
		s.endMu.Lock()
		err := s.endErr
		s.endMu.Unlock()
		return nil, fmt.Errorf("subscribe %q: %w", ch, err)
	case <-ctx.Done():
		_ = s.unsubscribe(context.Background(), false)
		return nil, fmt.Errorf("subscribe %q: %w", ch, ctx.Err())
	}
}

// subscribeFrameLocked builds the subscribe frame for s on cn (from the last
// delivered position, when there is one) and records it as in flight.
func (c *Client) subscribeFrameLocked(cn *conn, s *Subscription) protocol.ClientFrame {
	id := c.newIDLocked()
	s.reqID = id
	cn.subReqs[id] = s
	f := protocol.ClientFrame{Type: protocol.TypeSubscribe, ID: id, Channel: s.ch, Presence: s.presenceWanted}
	if s.hasPos {
		f.Since = protocolPosition(s.pos)
	}
	return f
}

// subscribeAllLocked returns the subscribe frames for every subscription
// not subscribed on cn and not in flight there.
func (c *Client) subscribeAllLocked(cn *conn) []protocol.ClientFrame {
	var frames []protocol.ClientFrame
	for _, ch := range sortedKeys(c.subs) {
		s := c.subs[ch]
		if s.activeGen != cn.gen && s.reqID == 0 {
			frames = append(frames, c.subscribeFrameLocked(cn, s))
		}
	}
	return frames
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Channel returns the channel's name.
func (s *Subscription) Channel() string { return s.ch }

// Messages returns the channel of messages, in offset order, each once. It
// is closed when the subscription ends. Nil for a subscription made
// WithHandler.
func (s *Subscription) Messages() <-chan Message { return s.msgs }

// Position returns the position of the last message accepted for delivery
// (or, before any, where the subscription started).
func (s *Subscription) Position() Position {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.pos
}

// Done is closed when the subscription has ended.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription ended: nil while it lasts and after
// Unsubscribe; an error wrapping ErrClosed when the client stopped; the
// server's reason when it ended or refused the subscription.
func (s *Subscription) Err() error {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if errors.Is(s.endErr, errUnsubscribed) {
		return nil
	}
	return s.endErr
}

// Unsubscribe ends the subscription: delivery stops (a handler call or a
// channel send under way may still complete) and the Messages channel is
// closed by the subscription's goroutine. When connected it tells the server
// and waits for its answer until ctx ends. It may be called from the
// subscription's own handler.
func (s *Subscription) Unsubscribe(ctx context.Context) error {
	return s.unsubscribe(ctx, true)
}

func (s *Subscription) unsubscribe(ctx context.Context, wait bool) error {
	c := s.c
	c.mu.Lock()
	if c.subs[s.ch] != s {
		c.mu.Unlock()
		s.end(errUnsubscribed)
		return nil
	}
	delete(c.subs, s.ch)
	cn := c.cn
	if cn == nil {
		c.mu.Unlock()
		s.end(errUnsubscribed)
		return nil
	}
	r := &request{frame: protocol.ClientFrame{Type: protocol.TypeUnsubscribe, Channel: s.ch}, done: make(chan struct{})}
	c.reqSeq++
	r.order = c.reqSeq
	c.pending[r] = struct{}{}
	c.assignLocked(cn, r)
	c.sendLocked(cn, r.frame)
	s.end(errUnsubscribed)
	if !wait {
		c.dropRequest(r)
		return nil
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		c.dropRequest(r)
	}
	return nil
}

// dropRequest forgets a request whose answer nobody waits for.
func (c *Client) dropRequest(r *request) {
	c.mu.Lock()
	delete(c.pending, r)
	c.mu.Unlock()
	r.finish(nil, errDisconnected)
}

// end stops the subscription for err (once).
func (s *Subscription) end(err error) {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.endErr = true, err
	close(s.done)
}

// fail ends a subscription the server refused or ended, and unblocks a
// Subscribe waiting for it. c.mu is not held.
func (s *Subscription) fail(err error) (wasReady bool) {
	c := s.c
	c.mu.Lock()
	if c.subs[s.ch] == s {
		delete(c.subs, s.ch)
	}
	wasReady = s.readyDone
	if !s.readyDone {
		s.readyDone = true
		s.readyErr = err
		close(s.ready)
	}
	c.mu.Unlock()
	s.end(err)
	return wasReady
}

// push queues an item for delivery.
func (s *Subscription) push(it item) {
	s.qmu.Lock()
	s.q = append(s.q, it)
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pop returns the next item, waiting for one; false once the subscription
// ended.
func (s *Subscription) pop() (item, bool) {
	for {
		select {
		case <-s.done:
			return item{}, false
		default:
		}
		s.qmu.Lock()
		if len(s.q) > 0 {
			it := s.q[0]
			s.q[0] = item{}
			s.q = s.q[1:]
			if len(s.q) == 0 {
				s.q = nil
			}
			s.qmu.Unlock()
			return it, true
		}
		s.qmu.Unlock()
		select {
		case <-s.wake:
		case <-s.done:
			return item{}, false
		}
	}
}

// deliver is the subscription's goroutine: it hands items to the
// application in order and tells the connection what was delivered.
func (s *Subscription) deliver() {
	c := s.c
	defer c.subWG.Done()
	if s.msgs != nil {
		defer close(s.msgs)
	}
	for {
		it, ok := s.pop()
		if !ok {
			s.drain()
			return
		}
		switch {
		case it.gap != nil:
			if s.onGap != nil {
				s.onGap(*it.gap)
			}
		case it.presence != nil:
			if s.onPresence != nil {
				s.onPresence(*it.presence)
			}
		case s.handler != nil:
			s.handler(it.msg)
			c.delivered.Add(1)
		default:
			select {
			case s.msgs <- it.msg:
				c.delivered.Add(1)
			case <-s.done:
				c.ackDone(&it)
				s.drain()
				return
			}
		}
		c.ackDone(&it)
	}
}

// drain drops what is left in the queue, counting it as done for the acks
// (so that other channels' acks are not held back).
func (s *Subscription) drain() {
	s.qmu.Lock()
	q := s.q
	s.q = nil
	s.qmu.Unlock()
	for i := range q {
		s.c.ackDone(&q[i])
	}
}
