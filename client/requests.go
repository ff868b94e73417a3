package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/ferry-io/ferry/protocol"
)

// request is a client frame waiting for its reply. A request that may be
// retried stays pending across connections and is sent again, with a new
// id, on the next one until it is answered or its caller gives up.
type request struct {
	frame protocol.ClientFrame // frame.ID is the id on the connection it is out on
	retry bool
	order uint64 // creation order, to send again in the same order
	gen   uint64 // the connection it is out on; 0 = none (guarded by Client.mu)
	sent  bool   // it went out at least once (guarded by Client.mu)

	once  sync.Once
	done  chan struct{}
	reply *protocol.ServerMessage
	err   error
}

func (r *request) finish(f *protocol.ServerMessage, err error) {
	r.once.Do(func() {
		r.reply, r.err = f, err
		close(r.done)
	})
}

func sortRequests(rs []*request) {
	slices.SortFunc(rs, func(a, b *request) int {
		switch {
		case a.order < b.order:
			return -1
		case a.order > b.order:
			return 1
		}
		return 0
	})
}

// assignLocked gives r an id on cn.
func (c *Client) assignLocked(cn *conn, r *request) {
	r.frame.ID = c.newIDLocked()
	r.gen = cn.gen
	r.sent = true
	cn.reqs[r.frame.ID] = r
}

// do sends f as a request that is retried on new connections until ctx ends,
// and returns the reply (an error frame becomes a *ServerError).
func (c *Client) do(ctx context.Context, f protocol.ClientFrame) (*protocol.ServerMessage, error) {
	return c.request(ctx, f, true, nil)
}

// doOn sends f on cn only; it fails with errDisconnected when cn ends.
func (c *Client) doOn(ctx context.Context, cn *conn, f protocol.ClientFrame) (*protocol.ServerMessage, error) {
	return c.request(ctx, f, false, cn)
}

func (c *Client) request(ctx context.Context, f protocol.ClientFrame, retry bool, on *conn) (*protocol.ServerMessage, error) {
	r, err := c.start(ctx, f, retry, on)
	if err != nil {
		return nil, err
	}
	return c.await(ctx, r)
}

// start sends f as a request (or keeps it pending until a connection is
// up, when retry) and returns it without waiting for the reply, so that a
// caller can have several out at once (upload chunks); await waits.
func (c *Client) start(ctx context.Context, f protocol.ClientFrame, retry bool, on *conn) (*request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{frame: f, retry: retry, done: make(chan struct{})}
	c.mu.Lock()
	if c.closing {
		err := closedError(c.closeErr)
		c.mu.Unlock()
		return nil, err
	}
	cn := c.cn
	if on != nil && cn != on {
		c.mu.Unlock()
		return nil, errDisconnected
	}
	c.reqSeq++
	r.order = c.reqSeq
	c.pending[r] = struct{}{}
	if cn != nil {
		c.assignLocked(cn, r)
		c.sendLocked(cn, r.frame)
	} else {
		c.mu.Unlock()
	}
	return r, nil
}

// await waits for the reply of a started request, or gives it up when ctx
// ends.
func (c *Client) await(ctx context.Context, r *request) (*protocol.ServerMessage, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, r)
		if cur := c.cn; cur != nil && r.gen == cur.gen && cur.reqs[r.frame.ID] == r {
			delete(cur.reqs, r.frame.ID)
		}
		c.mu.Unlock()
		r.finish(nil, ctx.Err())
		<-r.done
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.reply.Type == protocol.TypeError {
		return nil, serverError(r.reply)
	}
	return r.reply, nil
}

// onReply hands a reply to the request it answers.
func (c *Client) onReply(cn *conn, f *protocol.ServerMessage) {
	c.mu.Lock()
	r := cn.reqs[f.ID]
	if r != nil {
		delete(cn.reqs, f.ID)
		delete(c.pending, r)
	}
	c.mu.Unlock()
	if r != nil {
		rep := *f // frames is reused for the next message
		r.finish(&rep, nil)
	}
}

// PublishOption sets an option of one Publish.
type PublishOption func(*publishOptions)

// publishOptions are what the PublishOptions set.
type publishOptions struct {
	key      string
	keySet   bool   // WithKey was given (else a random key)
	priority string // "": the namespace's default
	conflate string
}

// WithKey sets the idempotency key instead of the random one Publish
// chooses: publishes with the same key within the server's idempotency
// window are applied once. Use it to make a publish idempotent across
// processes (an order id, say).
func WithKey(key string) PublishOption {
	return func(o *publishOptions) { o.key, o.keySet = key, true }
}

// WithPriority sets the message's delivery class (the namespace's default
// otherwise).
func WithPriority(p protocol.Priority) PublishOption {
	return func(o *publishOptions) { o.priority = p.String() }
}

// WithConflate sets a conflation key: a newer message with the same key
// replaces an older one not yet sent to a subscriber.
func WithConflate(key string) PublishOption {
	return func(o *publishOptions) { o.conflate = key }
}

// Publish publishes data (encoded with encoding/json; a json.RawMessage is
// sent as it is) on channel ch and returns where it landed.
//
// Each call gets a random idempotency key (see WithKey), kept when the
// publish is sent again: if the connection drops before the reply, the
// publish goes out again on the next connection, until ctx ends, and the
// server applies it once (the result then says Duplicate, with the original
// offset). When ctx ends without a reply the publish may or may not have
// been applied.
func (c *Client) Publish(ctx context.Context, ch string, data any, opts ...PublishOption) (PublishResult, error) {
	if err := protocol.ValidChannel(ch); err != nil {
		return PublishResult{}, fmt.Errorf("publish: %w", err)
	}
	raw, err := marshalData(data)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish %q: %w", ch, err)
	}
	var po publishOptions
	for _, o := range opts {
		o(&po)
	}
	if !po.keySet {
		po.key = newKey()
	}
	f := protocol.ClientFrame{Type: protocol.TypePublish, Channel: ch, Data: raw, Key: po.key, Priority: po.priority, Conflate: po.conflate}
	if f.Priority != "" {
		if _, err := protocol.ParsePriority(f.Priority); err != nil {
			return PublishResult{}, fmt.Errorf("publish %q: %w", ch, err)
		}
	}
	if err := c.checkSize(f); err != nil {
		return PublishResult{}, fmt.Errorf("publish %q: %w", ch, err)
	}
	rep, err := c.do(ctx, f)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publish %q: %w", ch, err)
	}
	return PublishResult{Offset: rep.Offset, Epoch: rep.Epoch, Duplicate: rep.Duplicate}, nil
}

// checkSize refuses a frame the server would close the connection for.
func (c *Client) checkSize(f protocol.ClientFrame) error {
	f.ID = ^uint32(0) // the largest id it may get
	b, err := encodeClient([]protocol.ClientFrame{f}, c.wire)
	if err != nil {
		return err
	}
	c.mu.Lock()
	limit := c.maxFrame
	c.mu.Unlock()
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, the server takes %d", ErrTooLarge, len(b), limit)
	}
	return nil
}

// marshalData encodes a payload as JSON.
func marshalData(data any) (protocol.RawJSON, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !json.Valid(v) {
			return nil, fmt.Errorf("data is not valid JSON")
		}
		return protocol.RawJSON(v), nil
	case protocol.RawJSON:
		if !json.Valid(v) {
			return nil, fmt.Errorf("data is not valid JSON")
		}
		return v, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode data: %w", err)
	}
	return b, nil
}

// newKey returns a random idempotency key (128 bits).
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// History returns the messages of channel ch retained by the server after
// since (nil: from the oldest retained), oldest first, at most limit of them
// (0: all). It is retried on a new connection until ctx ends.
func (c *Client) History(ctx context.Context, ch string, since *Position, limit int) (HistoryResult, error) {
	if limit < 0 {
		return HistoryResult{}, fmt.Errorf("history %q: negative limit %d", ch, limit)
	}
	f := protocol.ClientFrame{Type: protocol.TypeHistory, Channel: ch, Limit: limit}
	if since != nil {
		f.Since = protocolPosition(*since)
	}
	rep, err := c.do(ctx, f)
	if err != nil {
		return HistoryResult{}, fmt.Errorf("history %q: %w", ch, err)
	}
	res := HistoryResult{Offset: rep.Offset, Epoch: rep.Epoch, Messages: make([]Message, len(rep.Messages))}
	for i, m := range rep.Messages {
		res.Messages[i] = Message{
			Channel:  ch,
			Offset:   m.Offset,
			Epoch:    m.Epoch,
			Data:     rawData(m.Data),
			Priority: m.Priority,
			From:     m.From,
		}
	}
	return res, nil
}

// Presence returns the connections present in channel ch (where the
// namespace tracks presence).
func (c *Client) Presence(ctx context.Context, ch string) (PresenceResult, error) {
	rep, err := c.do(ctx, protocol.ClientFrame{Type: protocol.TypePresence, Channel: ch})
	if err != nil {
		return PresenceResult{}, fmt.Errorf("presence %q: %w", ch, err)
	}
	return PresenceResult{Clients: rep.Clients, Count: rep.Count}, nil
}

// Ping sends a ping frame and waits for the pong (on the next connection
// when the client is not connected), until ctx ends.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.do(ctx, protocol.ClientFrame{Type: protocol.TypePing}); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// rawData returns a payload as a json.RawMessage (null when absent).
func rawData(d protocol.RawJSON) json.RawMessage {
	if len(d) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(d)
}
