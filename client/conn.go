package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/ferry-io/ferry/protocol"
)

// conn is one WebSocket connection of a client, from the handshake to its
// end. The client's run loop owns it: it reads on the run loop's goroutine,
// and a worker goroutine sends acks, checks liveness and refreshes the
// token.
type conn struct {
	c   *Client
	ws  *websocket.Conn
	gen uint64
	// ctx ends with the connection (not with Close, so that Close can still
	// send its close frame).
	ctx    context.Context
	cancel context.CancelFunc
	wmu    sync.Mutex // serializes writes; see Client.mu for the lock order

	// Set from connected before the connection is shared.
	maxFrame  int
	window    uint32
	resumed   bool
	heartbeat protocol.Heartbeat
	expiresAt int64
	acks      *ackTracker // nil without auto-ack

	ackKick   chan struct{}
	refreshed chan int64 // new token expiry, from a refresh
	lastRecv  atomic.Int64
	wg        sync.WaitGroup // the connection's goroutines (worker, barrier, refresh)

	// Guarded by c.mu.
	barrier   bool // resumed, and the restored subscriptions are not all known yet
	reqs      map[uint32]*request
	subReqs   map[uint32]*Subscription
	restored  map[string]bool
	disc      *protocol.ServerMessage // the disconnect frame, when one came
	killErr   error                   // why the client dropped the connection itself
	immediate bool                    // reconnect at once after killErr
}

// outcome is how a connection attempt ended.
type outcome struct {
	connected  bool          // the server answered connect
	err        error         // why it ended
	code       int           // the close code, 0 if none
	terminal   bool          // do not reconnect
	immediate  bool          // reconnect without a delay
	retryAfter time.Duration // the server asked for at least this delay
}

// run is the connection loop: connect, read until the connection ends, wait,
// again, until Close or a terminal outcome.
func (c *Client) run() {
	defer c.runWG.Done()
	failures, k := 0, 0
	for {
		out := c.attempt()
		if c.isClosing() {
			return
		}
		if out.connected {
			failures, k = 0, 0
		} else {
			failures++
		}
		if out.terminal {
			c.shutdown(out.err)
			return
		}
		if m := c.cfg.Backoff.MaxAttempts; m > 0 && failures >= m {
			c.shutdown(fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, failures, out.err))
			return
		}
		delay := c.delayFor(out, k)
		if !out.immediate {
			k++
		}
		c.mu.Lock()
		c.lastErr = out.err
		c.setStateLocked(StateChange{State: StateDisconnected, Err: out.err, Code: out.code, RetryIn: delay})
		c.mu.Unlock()
		c.log.Info("ferry connection ended", slog.Any("err", out.err), slog.Int("code", out.code), slog.Duration("retry_in", delay))
		if delay > 0 && !c.sleep(delay) {
			return
		}
	}
}

// delayFor returns the wait before the next attempt; k counts the delays
// since the last connection that reached connected.
func (c *Client) delayFor(out outcome, k int) time.Duration {
	b := c.cfg.Backoff
	switch {
	case out.immediate:
		return 0
	case out.code == protocol.CloseRateLimited && out.retryAfter > 0:
		return b.upward(out.retryAfter, c.rnd)
	}
	d := b.Delay(k, c.rnd)
	if out.retryAfter > d {
		d = b.upward(out.retryAfter, c.rnd)
	}
	return d
}

// sleep waits d on the client's clock; false when the client is closing.
func (c *Client) sleep(d time.Duration) bool {
	t := c.clock.NewTimer(d)
	select {
	case <-t.C():
		return true
	case <-c.life.Done():
		t.Stop()
		return false
	}
}

// attempt makes one connection and, when it gets connected, serves it until
// it ends.
func (c *Client) attempt() outcome {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return outcome{}
	}
	c.setStateLocked(StateChange{State: StateConnecting})
	tok := c.token
	needToken := c.cfg.GetToken != nil && (c.needToken || tok == "")
	c.mu.Unlock()

	if needToken {
		ctx, cancel := context.WithTimeout(c.life, c.cfg.ConnectTimeout)
		t, err := c.cfg.GetToken(ctx)
		cancel()
		if err != nil {
			return outcome{err: fmt.Errorf("get token: %w", err)}
		}
		tok = t
		c.mu.Lock()
		c.token, c.needToken = t, false
		c.mu.Unlock()
	}

	cn := &conn{
		c:         c,
		ackKick:   make(chan struct{}, 1),
		refreshed: make(chan int64, 1),
		reqs:      make(map[uint32]*request),
		subReqs:   make(map[uint32]*Subscription),
		restored:  make(map[string]bool),
	}
	ctx, cancel := context.WithTimeout(c.life, c.cfg.ConnectTimeout)
	defer cancel()
	header := c.cfg.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if tok != "" {
		header.Set("Authorization", "Bearer "+tok)
	}
	ws, resp, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{
		HTTPClient:   c.httpClient,
		HTTPHeader:   header,
		Subprotocols: []string{c.cfg.Codec.Name()},
		OnPingReceived: func(context.Context, []byte) bool {
			cn.touch()
			return true
		},
	})
	if err != nil {
		return c.handshakeFailed(resp, err)
	}
	if got := ws.Subprotocol(); got != c.cfg.Codec.Name() {
		_ = ws.CloseNow()
		return outcome{err: fmt.Errorf("server chose subprotocol %q, want %q", got, c.cfg.Codec.Name()), terminal: true}
	}
	ws.SetReadLimit(c.cfg.ReadLimit)
	cn.ws = ws
	cn.ctx, cn.cancel = context.WithCancel(context.Background())
	defer cn.cancel()
	cn.touch()

	c.mu.Lock()
	c.gen++
	cn.gen = c.gen
	connectID := c.newIDLocked()
	cf := protocol.ClientFrame{Type: protocol.TypeConnect, ID: connectID, Client: c.cfg.ClientName, Window: c.cfg.Window}
	if !c.noResume && c.session != "" {
		cf.Resume = &protocol.Resume{Session: c.session, Token: c.resumeToken}
	}
	c.noResume = false
	c.mu.Unlock()

	if err := cn.writeFrames(ctx, []protocol.ClientFrame{cf}); err != nil {
		_ = ws.CloseNow()
		return c.ended(cn, fmt.Errorf("send connect: %w", err), false)
	}
	connected, rest, err := c.awaitConnected(ctx, cn, connectID)
	if err != nil {
		_ = ws.CloseNow()
		var se *ServerError
		if errors.As(err, &se) {
			return outcome{err: fmt.Errorf("connect refused: %w", err), terminal: true}
		}
		return c.ended(cn, err, false)
	}
	if !c.setup(cn, connected) {
		cn.closeNormal()
		return outcome{}
	}
	if c.handleFrames(cn, rest) {
		err = c.readLoop(cn)
	} else {
		err = errKilled
	}
	c.teardown(cn)
	return c.ended(cn, err, true)
}

// errKilled ends the read loop of a connection the client dropped itself.
var errKilled = errors.New("connection dropped by the client")

// awaitConnected reads until the connected frame and returns it with the
// frames that came after it in the same message.
func (c *Client) awaitConnected(ctx context.Context, cn *conn, id uint32) (*protocol.ServerMessage, []protocol.ServerMessage, error) {
	for {
		typ, b, err := cn.ws.Read(ctx)
		if err != nil {
			return nil, nil, err
		}
		cn.touch()
		frames, err := decodeServer(nil, b, c.wire.forMessage(typ))
		if err != nil {
			return nil, nil, err
		}
		for i := range frames {
			f := &frames[i]
			switch f.Type {
			case protocol.TypeConnected:
				return f, frames[i+1:], nil
			case protocol.TypeDisconnect:
				c.mu.Lock()
				cn.disc = f
				c.mu.Unlock()
			case protocol.TypeError:
				if f.ID == id {
					return nil, nil, serverError(f)
				}
			}
		}
	}
}

// setup makes cn the client's connection: it records what connected said,
// sends again the requests that were out when the last connection ended and
// subscribes again (at once, or after the resume barrier), then starts the
// connection's goroutines. It returns false when the client is closing.
func (c *Client) setup(cn *conn, f *protocol.ServerMessage) bool {
	cn.maxFrame = f.Limits.MaxFrameBytes
	if cn.maxFrame <= 0 {
		cn.maxFrame = defaultMaxFrame
	}
	cn.window = f.Limits.Window
	cn.resumed = f.Resumed
	cn.heartbeat = f.Heartbeat
	cn.expiresAt = f.ExpiresAt
	if !c.cfg.DisableAutoAck {
		every := c.cfg.AckEvery
		if every == 0 {
			every = DefaultAckNoWindow
			if cn.window > 0 {
				every = max(1, int(cn.window)/2)
			}
		}
		if cn.window > 0 {
			every = min(every, int(cn.window))
		}
		cn.acks = newAckTracker(every)
	}

	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.session, c.resumeToken = f.Session, f.ResumeToken
	c.maxFrame = cn.maxFrame
	c.retried401 = false
	c.stats.Connects++
	if cn.resumed {
		c.stats.Resumed++
	}
	c.cn = cn
	c.cur.Store(cn)
	frames := c.resendLocked(cn)
	if cn.resumed {
		cn.barrier = true
	} else {
		frames = append(frames, c.subscribeAllLocked(cn)...)
	}
	c.setStateLocked(StateChange{State: StateConnected, Resumed: cn.resumed})
	c.log.Info("ferry connected", slog.String("session", f.Session), slog.String("node", f.Node), slog.Bool("resumed", f.Resumed))
	cn.wg.Add(1)
	go c.worker(cn)
	if cn.resumed {
		cn.wg.Add(1)
		go c.barrierWait(cn)
	}
	c.sendLocked(cn, frames...)
	return true
}

// resendLocked assigns ids on cn to the requests that may be retried and
// are not out on it, and returns their frames.
func (c *Client) resendLocked(cn *conn) []protocol.ClientFrame {
	var out []*request
	for r := range c.pending {
		if r.retry && r.gen != cn.gen {
			out = append(out, r)
		}
	}
	sortRequests(out)
	frames := make([]protocol.ClientFrame, 0, len(out))
	for _, r := range out {
		if r.sent && r.frame.Type == protocol.TypePublish {
			c.stats.PublishRetries++
		}
		c.assignLocked(cn, r)
		frames = append(frames, r.frame)
	}
	return frames
}

// teardown detaches cn from the client once its read loop ended.
func (c *Client) teardown(cn *conn) {
	cn.cancel()
	_ = cn.ws.CloseNow()
	var failed []*request
	c.mu.Lock()
	if c.cn == cn {
		c.cn = nil
		c.cur.Store(nil)
	}
	for _, r := range cn.reqs {
		if r.gen == cn.gen {
			r.gen = 0
			if !r.retry {
				failed = append(failed, r)
				delete(c.pending, r)
			}
		}
	}
	cn.reqs = nil
	for _, s := range cn.subReqs {
		if s.reqID != 0 {
			s.reqID = 0
		}
	}
	cn.subReqs = nil
	for _, s := range c.subs {
		s.checkGap = false
	}
	c.mu.Unlock()
	for _, r := range failed {
		r.finish(nil, errDisconnected)
	}
	cn.wg.Wait()
}

// ended turns the end of a connection into an outcome. wasConnected says
// whether it got connected.
func (c *Client) ended(cn *conn, err error, wasConnected bool) outcome {
	c.mu.Lock()
	disc, killErr, immediate := cn.disc, cn.killErr, cn.immediate
	c.mu.Unlock()
	out := outcome{connected: wasConnected, err: err}
	if killErr != nil {
		out.err, out.immediate = killErr, immediate
		return out
	}
	var reason string
	if disc != nil {
		out.code, reason = disc.Code, disc.Reason
		out.retryAfter = time.Duration(disc.RetryAfterMS) * time.Millisecond
	} else {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			out.code, reason = int(ce.Code), ce.Reason
		}
	}
	if out.code == 0 {
		return out // network trouble: reconnect
	}
	cerr := &CloseError{Code: out.code, Reason: reason}
	out.err = cerr
	switch {
	case out.code == protocol.CloseTokenExpired:
		if c.cfg.GetToken == nil {
			out.terminal = true
			return out
		}
		c.mu.Lock()
		c.needToken = true
		c.mu.Unlock()
		out.immediate = true
	case !protocol.ShouldReconnect(out.code):
		out.terminal = true
	}
	return out
}

// handshakeFailed turns a failed dial into an outcome.
func (c *Client) handshakeFailed(resp *http.Response, err error) outcome {
	switch {
	case resp == nil:
		return outcome{err: fmt.Errorf("dial: %w", err)} // network trouble
	case resp.StatusCode == http.StatusSwitchingProtocols:
		// Upgraded, but not to a WebSocket this client can use.
		return outcome{err: fmt.Errorf("dial: %w", err), terminal: true}
	}
	he := &HandshakeError{StatusCode: resp.StatusCode, Reason: errorReason(resp)}
	out := outcome{err: he}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cfg.GetToken != nil && !c.retried401 {
			c.retried401, c.needToken = true, true
			out.immediate = true
			return out
		}
		out.terminal = true
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			out.retryAfter = time.Duration(s) * time.Second
		}
	case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
	default:
		out.terminal = true
	}
	return out
}

// errorReason reads the reason of the server's JSON error body, if any.
func errorReason(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	var e struct {
		Error struct {
			Reason string `json:"reason"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil {
		return e.Error.Reason
	}
	return ""
}

// readLoop reads and handles messages until the connection ends.
func (c *Client) readLoop(cn *conn) error {
	var frames []protocol.ServerMessage
	for {
		typ, b, err := cn.ws.Read(cn.ctx)
		if err != nil {
			return err
		}
		cn.touch()
		frames, err = decodeServer(frames[:0], b, c.wire.forMessage(typ))
		if err != nil {
			c.log.Warn("ferry: bad message from the server", slog.Any("err", err))
			return err
		}
		if !c.handleFrames(cn, frames) {
			return errKilled
		}
		clear(frames)
	}
}

// touch records that the peer was heard from.
func (cn *conn) touch() { cn.lastRecv.Store(cn.c.clock.Now().UnixNano()) }

// kill drops the connection for err; immediate asks for a reconnect without
// delay.
func (cn *conn) kill(err error, immediate bool) {
	c := cn.c
	c.mu.Lock()
	if cn.killErr == nil {
		cn.killErr, cn.immediate = err, immediate
	}
	c.mu.Unlock()
	_ = cn.ws.CloseNow()
}

// closeNormal closes with 1000 (the close handshake is bounded by the
// WebSocket library).
func (cn *conn) closeNormal() { _ = cn.ws.Close(websocket.StatusNormalClosure, "") }

// sendLocked writes frames on cn in the order the calls were made: it takes
// cn.wmu before it releases c.mu, which is held on entry and released on
// return. A failed write drops the connection (its requests go out again on
// the next one).
func (c *Client) sendLocked(cn *conn, frames ...protocol.ClientFrame) {
	if len(frames) == 0 {
		c.mu.Unlock()
		return
	}
	cn.wmu.Lock()
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.WriteTimeout)
	err := cn.writeFramesLocked(ctx, frames)
	cancel()
	cn.wmu.Unlock()
	if err != nil && cn.ctx.Err() == nil {
		cn.kill(fmt.Errorf("write: %w", err), false)
	}
}

// writeFrames writes frames (taking wmu).
func (cn *conn) writeFrames(ctx context.Context, frames []protocol.ClientFrame) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	return cn.writeFramesLocked(ctx, frames)
}

// maxFramesPerWrite caps the frames batched in one message.
const maxFramesPerWrite = 128

// writeFramesLocked encodes frames in batches that stay within the server's
// max_frame_bytes and writes them. wmu is held.
func (cn *conn) writeFramesLocked(ctx context.Context, frames []protocol.ClientFrame) error {
	limit := cn.maxFrame
	if limit <= 0 {
		limit = defaultMaxFrame
	}
	wire := cn.c.wire
	typ := websocket.MessageText
	if wire != wireJSON {
		typ = websocket.MessageBinary
	}
	for len(frames) > 0 {
		n, size := 0, 16 // room for the batch's own bytes
		for n < len(frames) && n < maxFramesPerWrite {
			b, err := encodeClient(frames[n:n+1], wire)
			if err != nil {
				return err
			}
			if n > 0 && size+len(b)+1 > limit {
				break
			}
			size += len(b) + 1
			n++
		}
		msg, err := encodeClient(frames[:n], wire)
		if err != nil {
			return err
		}
		if err := cn.ws.Write(ctx, typ, msg); err != nil {
			return err
		}
		frames = frames[n:]
	}
	return nil
}

// worker sends acks, checks that the server is alive and refreshes the
// token, for one connection.
func (c *Client) worker(cn *conn) {
	defer cn.wg.Done()
	var ackT, hbT, refT Timer
	var ackC, hbC, refC <-chan time.Time
	stop := func(t Timer) {
		if t != nil {
			t.Stop()
		}
	}
	defer func() { stop(ackT); stop(hbT); stop(refT) }()
	if cn.acks != nil {
		ackT = c.clock.NewTimer(c.cfg.AckInterval)
		ackC = ackT.C()
	}
	hbInterval := time.Duration(cn.heartbeat.IntervalMS) * time.Millisecond
	hbTimeout := time.Duration(cn.heartbeat.TimeoutMS) * time.Millisecond
	if hbInterval > 0 {
		hbT = c.clock.NewTimer(hbInterval)
		hbC = hbT.C()
	}
	scheduleRefresh := func(exp int64) {
		stop(refT)
		refT, refC = nil, nil
		if exp <= 0 || c.cfg.GetToken == nil {
			return
		}
		remaining := time.Unix(exp, 0).Sub(c.clock.Now())
		lead := min(c.cfg.RefreshBefore, remaining/2)
		refT = c.clock.NewTimer(max(0, remaining-lead))
		refC = refT.C()
	}
	scheduleRefresh(cn.expiresAt)
	for {
		select {
		case <-cn.ctx.Done():
			return
		case <-cn.ackKick:
			c.flushAck(cn, false)
		case <-ackC:
			c.flushAck(cn, true)
			ackT = c.clock.NewTimer(c.cfg.AckInterval)
			ackC = ackT.C()
		case <-hbC:
			idle := c.clock.Now().Sub(time.Unix(0, cn.lastRecv.Load()))
			next := hbInterval
			if idle >= hbInterval {
				ctx, cancel := context.WithTimeout(cn.ctx, max(hbTimeout, time.Second))
				err := cn.ws.Ping(ctx)
				cancel()
				if err != nil && cn.ctx.Err() == nil {
					cn.kill(fmt.Errorf("heartbeat: no answer from the server: %w", err), false)
					return
				}
			} else {
				// Look again when the connection will have been idle
				// for hbInterval, not a whole interval from now: a
				// server that stops answering is noticed hbInterval +
				// hbTimeout after the last thing it sent, not up to
				// one interval later.
				next = hbInterval - idle
			}
			hbT = c.clock.NewTimer(next)
			hbC = hbT.C()
		case <-refC:
			refT, refC = nil, nil
			cn.wg.Add(1)
			go c.refresh(cn)
		case exp := <-cn.refreshed:
			scheduleRefresh(exp)
		}
	}
}

// flushAck sends an ack when one is due (or, with force, for anything not
// acknowledged yet).
func (c *Client) flushAck(cn *conn, force bool) {
	seq, ok := cn.acks.take(force)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.WriteTimeout)
	defer cancel()
	if err := cn.writeFrames(ctx, []protocol.ClientFrame{{Type: protocol.TypeAck, Seq: seq}}); err != nil && cn.ctx.Err() == nil {
		cn.kill(fmt.Errorf("write ack: %w", err), false)
	}
}

// ackDone tells the connection the item was delivered.
func (c *Client) ackDone(it *item) {
	if it.seq == 0 {
		return
	}
	cn := c.cur.Load()
	if cn == nil || cn.gen != it.gen || cn.acks == nil {
		return
	}
	if cn.acks.markDone(it.seq) {
		select {
		case cn.ackKick <- struct{}{}:
		default:
		}
	}
}

// refresh gets a new token and sends it in a refresh frame.
func (c *Client) refresh(cn *conn) {
	defer cn.wg.Done()
	ctx, cancel := context.WithTimeout(cn.ctx, c.cfg.ConnectTimeout)
	defer cancel()
	tok, err := c.cfg.GetToken(ctx)
	if err != nil {
		if cn.ctx.Err() == nil {
			c.reportError(fmt.Errorf("token refresh: get token: %w", err))
		}
		return
	}
	c.mu.Lock()
	c.token = tok
	c.mu.Unlock()
	rep, err := c.doOn(ctx, cn, protocol.ClientFrame{Type: protocol.TypeRefresh, Token: tok})
	if err != nil {
		if cn.ctx.Err() == nil {
			c.reportError(fmt.Errorf("token refresh: %w", err))
		}
		return
	}
	c.log.Debug("ferry token refreshed", slog.Int64("expires_at", rep.ExpiresAt))
	select {
	case cn.refreshed <- rep.ExpiresAt:
	case <-cn.ctx.Done():
	}
}

// barrierWait runs on a resumed connection: once the server answered a ping
// sent after connect, every subscription it restored has been announced (it
// restores them before it reads the next frame), so the client checks the
// replays, subscribes to the channels it wants that were not restored and
// unsubscribes from the ones it no longer wants.
func (c *Client) barrierWait(cn *conn) {
	defer cn.wg.Done()
	if _, err := c.doOn(cn.ctx, cn, protocol.ClientFrame{Type: protocol.TypePing}); err != nil {
		return
	}
	c.mu.Lock()
	if c.cn != cn {
		c.mu.Unlock()
		return
	}
	cn.barrier = false
	if cn.window == 0 {
		// Without credit nothing holds a message back behind the pong:
		// every replayed message has been read. A restored channel that
		// was ahead of the client and replayed nothing skipped offsets.
		for _, ch := range sortedKeys(c.subs) {
			s := c.subs[ch]
			behind := s.restoredAt.Offset > s.pos.Offset && (s.restoredAt.Epoch == s.pos.Epoch || s.pos.Offset == 0)
			if s.activeGen == cn.gen && s.checkGap && behind {
				c.resumeFallbackLocked(cn, s, s.restoredAt.Offset)
				c.mu.Unlock()
				_ = cn.ws.CloseNow()
				return
			}
		}
	}
	var frames []protocol.ClientFrame
	for _, ch := range sortedKeys(cn.restored) {
		if c.subs[ch] == nil {
			frames = append(frames, protocol.ClientFrame{Type: protocol.TypeUnsubscribe, ID: c.newIDLocked(), Channel: ch})
		}
	}
	frames = append(frames, c.subscribeAllLocked(cn)...)
	c.sendLocked(cn, frames...)
}
