package fallback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

// Routing a send to the node that holds its session.
//
// Behind a round-robin balancer, the client of an SSE session keeps its
// stream open on one node while its POST /v1/send requests land on any
// node. A node that does not hold the session must not adopt it for a
// send: adopting closes the stream on the other node (4016), the client
// reconnects, its next send lands elsewhere again, and the session
// ping-pongs between the nodes. Instead the node passes the frames to the
// node that holds the session (broker.ControlRoute through the broker's
// control channel), which processes them as if they had arrived there and
// answers (broker.ControlRouted); the POST is answered after that, as a
// local send is after its frames were processed. Their replies go out on
// the session's stream, like those of every send.
//
// What guards what:
//   - Credential: the receiving node found the session's record under the
//     hash of the session token the client presented, and checked its
//     network binding and expiry, before routing. The route names the
//     session by that hash only: the token itself never travels.
//   - Order: the holding node processes the routed requests of a session
//     one at a time, in the order the broker delivered them, and the
//     receiving node answers the POST only once they were processed; a
//     client that waits for each answer before its next send (the SDKs
//     do) keeps its frames in order, whichever node each send lands on.
//   - Bounds: at most routeQueue routed requests wait per session on the
//     holding node; more are refused at once (429), not queued. A routed
//     body is a request body: at most max_frame_bytes.
//   - A gone holder: a send adopts the session (as before routing) when
//     the holding node keeps no liveness record (killed, or frozen longer
//     than node.LivenessTTL), when the broker reaches no such node, or
//     when its record lapses while the send waits for its answer. A
//     holding node whose own record lapsed (it was frozen) refuses routed
//     frames: the session may have moved while it slept.
//   - A move: a session taken over (4016) while a send was on its way to
//     it answers "moved"; the sender follows the session's record to the
//     adopting node, waiting up to moveWait for that node to write it,
//     and adopts the session itself only after that.
const (
	// routeQueue bounds the routed requests waiting per session on the
	// holding node.
	routeQueue = 16
	// routeWait bounds how long a send waits for the holding node's
	// answer (its frames' work is bounded by the session's own request
	// timeout, 10 s per frame).
	routeWait = 15 * time.Second
	// routeAliveEvery is how often a waiting send checks that the holding
	// node still keeps its liveness record.
	routeAliveEvery = time.Second
	// moveWait bounds how long a send follows a session that moved
	// before it adopts the session (the takeover's own bound).
	moveWait = 3 * time.Second
	// movePause is the pause between two reads of a moving session's
	// record.
	movePause = 50 * time.Millisecond
	// answerTimeout bounds the broker call that sends an answer.
	answerTimeout = 5 * time.Second
)

// The outcomes a holding node answers, as HTTP statuses.
const (
	routeDone  = http.StatusAccepted           // processed
	routeBad   = http.StatusBadRequest         // the body is not frames
	routeGone  = http.StatusNotFound           // not held there (closed, expired): adopt it
	routeMoved = http.StatusConflict           // taken over by another node: follow it
	routeFull  = http.StatusTooManyRequests    // routeQueue requests already wait
	routeStale = http.StatusServiceUnavailable // the holder's liveness lapsed: adopt it
)

// routeRequest is the Data of a broker.ControlRoute message.
type routeRequest struct {
	ID   string `json:"id"`   // the route's id, echoed in the answer
	From string `json:"from"` // the node that routed it, which waits for the answer
	Key  string `json:"key"`  // httpSessionKey of the session token
	Body []byte `json:"body"` // the POST's body (base64 in JSON)
}

// routeAnswer is the Data of a broker.ControlRouted message.
type routeAnswer struct {
	ID     string `json:"id"`
	Status int    `json:"status"` // one of the route* outcomes
	Reason string `json:"reason,omitempty"`
}

// ErrBadBody: a send's body is not client frames (HTTP 400).
var ErrBadBody = errors.New("body")

// RouteError is a send that the node holding its session refused or did
// not answer. Status is the HTTP status for the client (429 or 503, both
// worth a retry after a second); Reason says why.
type RouteError struct {
	Status int
	Reason string
}

func (e *RouteError) Error() string { return e.Reason }

// errHolderGone: the holding node is gone; the send adopts the session.
var errHolderGone = errors.New("the node holding the session is gone")

// Send processes the client frames of a POST /v1/send (body, not empty)
// for session token tok: here when this node holds the session; else on
// the node that holds it, routed through the broker; else (no node holds
// it any more) here, after adopting it. It returns once the frames were
// processed: their replies are queued on the session's stream. Errors:
// ErrNoSession, ErrOtherNetwork, ErrBadBody (wrapped), *RouteError, or the
// store's error.
func (ss *Sessions) Send(ctx context.Context, tok string, body []byte, network string) error {
	t, rec, err := ss.lookup(ctx, tok, network, true)
	if err != nil {
		return err
	}
	if t == nil && ss.env.Node != nil {
		holder := rec.Node
		if holder == ss.env.NodeID && ss.takenOver(tok) {
			// Taken from this node a moment ago: the node that took
			// it names itself in the record once its takeover is done.
			if holder, err = ss.followMove(ctx, tok, network, holder, time.Now().Add(moveWait)); err != nil {
				return err
			}
		}
		if holder != "" && holder != ss.env.NodeID {
			if _, err := protocol.JSON.DecodeClient(nil, body); err != nil {
				return fmt.Errorf("%w: %w", ErrBadBody, err)
			}
			if err := ss.routeTo(ctx, holder, tok, body, network); !errors.Is(err, errHolderGone) {
				return err
			}
		}
	}
	if t == nil {
		if t, err = ss.adopt(ctx, tok, -1, network); err != nil {
			return err
		}
	}
	if err := t.Session().HandleRequest(body); err != nil {
		return fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	return nil
}

// takenOver reports whether this node's transport of session token tok
// was taken over by another node.
func (ss *Sessions) takenOver(tok string) bool {
	v, ok := ss.byToken.Load(tok)
	return ok && heldStatus(v.(*Transport)) == routeMoved
}

// routeTo routes body to holder, following the session when it moves;
// errHolderGone when no other node holds it any more.
func (ss *Sessions) routeTo(ctx context.Context, holder, tok string, body []byte, network string) error {
	deadline := time.Now().Add(moveWait)
	for {
		ans, err := ss.route(ctx, holder, tok, body)
		if err != nil {
			return err
		}
		switch ans.Status {
		case routeDone:
			return nil
		case routeBad:
			return fmt.Errorf("%w: %s", ErrBadBody, ans.Reason)
		case routeFull:
			return &RouteError{Status: http.StatusTooManyRequests, Reason: ans.Reason}
		case routeMoved:
			next, err := ss.followMove(ctx, tok, network, holder, deadline)
			if err != nil {
				return err
			}
			if next == "" || next == ss.env.NodeID {
				return errHolderGone
			}
			holder = next
		default: // routeGone, routeStale
			return errHolderGone
		}
	}
}

// followMove waits for the record of session token tok to name another
// node than from (the node that adopted it writes the record once the
// takeover is done) and returns it; "" when it does not by deadline.
func (ss *Sessions) followMove(ctx context.Context, tok, network, from string, deadline time.Time) (string, error) {
	for time.Now().Before(deadline) {
		rec, _, err := ss.record(ctx, tok, network)
		if err != nil {
			return "", err
		}
		if rec.Node != from {
			return rec.Node, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(movePause):
		}
	}
	return "", nil
}

// route sends body to holder for session token tok and waits for the
// answer: errHolderGone when the holder is not alive (or becomes so while
// the send waits), a *RouteError when it does not answer within
// routeWait.
func (ss *Sessions) route(ctx context.Context, holder, tok string, body []byte) (routeAnswer, error) {
	nd := ss.env.Node
	if !nd.Alive(ctx, holder) {
		return routeAnswer{}, errHolderGone
	}
	id := ss.routeIDs + strconv.FormatUint(ss.routeSeq.Add(1), 36)
	answer := make(chan routeAnswer, 1)
	ss.pending.Store(id, answer)
	defer ss.pending.Delete(id)
	data, err := json.Marshal(routeRequest{ID: id, From: ss.env.NodeID, Key: httpSessionKey(tok), Body: body})
	if err != nil {
		return routeAnswer{}, err
	}
	err = nd.Control(ctx, broker.Control{Node: holder, Kind: broker.ControlRoute, Data: string(data)})
	if errors.Is(err, broker.ErrNoNode) {
		return routeAnswer{}, errHolderGone
	}
	if err != nil {
		return routeAnswer{}, err
	}
	timeout := time.NewTimer(routeWait)
	defer timeout.Stop()
	alive := time.NewTicker(routeAliveEvery)
	defer alive.Stop()
	for {
		select {
		case a := <-answer:
			return a, nil
		case <-alive.C:
			if !nd.Alive(ctx, holder) {
				return routeAnswer{}, errHolderGone
			}
		case <-timeout.C:
			return routeAnswer{}, &RouteError{Status: http.StatusServiceUnavailable,
				Reason: fmt.Sprintf("node %q holds the session's stream and did not process the frames within %s", holder, routeWait)}
		case <-ctx.Done():
			return routeAnswer{}, ctx.Err()
		}
	}
}

// HandleControl carries out the routing messages of other nodes
// (broker.ControlRoute, broker.ControlRouted); the node hands them over
// from the broker's goroutine, so it never blocks: routed frames are
// queued on their session, answers are sent from another goroutine.
func (ss *Sessions) HandleControl(c broker.Control) {
	switch c.Kind {
	case broker.ControlRouted:
		var a routeAnswer
		if err := json.Unmarshal([]byte(c.Data), &a); err != nil {
			ss.log.Warn("dropped a malformed route answer", "err", err)
			return
		}
		if v, ok := ss.pending.Load(a.ID); ok {
			select {
			case v.(chan routeAnswer) <- a:
			default: // answered twice: the first one counts
			}
		}
	case broker.ControlRoute:
		var r routeRequest
		if err := json.Unmarshal([]byte(c.Data), &r); err != nil || r.ID == "" || r.From == "" {
			ss.log.Warn("dropped a malformed routed request", "err", err)
			return
		}
		t, status := ss.accept(&r)
		switch {
		case t != nil:
			ss.spawn(func() { ss.drain(t) })
		case status != 0:
			ss.spawn(func() { ss.answer(&r, status, routeReason(status)) })
		}
	}
}

// accept queues r on the session it names. It returns the transport when
// its queue needs a goroutine to drain it, or the answer when r was not
// queued (0 when it was, and a goroutine drains the queue already).
func (ss *Sessions) accept(r *routeRequest) (*Transport, int) {
	if ss.beating != nil && !ss.beating() {
		return nil, routeStale
	}
	v, ok := ss.byKey.Load(r.Key)
	if !ok {
		return nil, routeGone
	}
	t := v.(*Transport)
	if status := heldStatus(t); status != 0 {
		return nil, status
	}
	t.routeMu.Lock()
	defer t.routeMu.Unlock()
	if len(t.routed) >= routeQueue {
		return nil, routeFull
	}
	t.routed = append(t.routed, *r)
	if t.routing {
		return nil, 0
	}
	t.routing = true
	return t, 0
}

// heldStatus is 0 while t's session is open, else what a routed request
// for it is answered.
func heldStatus(t *Transport) int {
	code, _, closed := t.Session().CloseCode()
	switch {
	case !closed:
		return 0
	case code == protocol.CloseSessionTakenOver:
		return routeMoved
	}
	return routeGone
}

func routeReason(status int) string {
	switch status {
	case routeFull:
		return fmt.Sprintf("too many sends wait for this session's node (%d): wait for the answer to each POST /v1/send before the next", routeQueue)
	case routeStale:
		return "the session's node was not reachable for a while: the session may have moved"
	case routeMoved:
		return "the session moved to another node"
	}
	return "the session is not held by this node"
}

// drain processes the routed requests queued on t, in order, until none
// is left, and answers each.
func (ss *Sessions) drain(t *Transport) {
	for {
		t.routeMu.Lock()
		if len(t.routed) == 0 {
			t.routing = false
			t.routeMu.Unlock()
			return
		}
		r := t.routed[0]
		t.routed[0] = routeRequest{}
		t.routed = t.routed[1:]
		t.routeMu.Unlock()
		status, reason := heldStatus(t), ""
		if status == 0 {
			status = routeDone
			if err := t.Session().HandleRequest(r.Body); err != nil {
				status, reason = routeBad, err.Error()
			}
			ctx, cancel := ss.callContext()
			ss.refresh(ctx, t.token, t) // as a send that lands here would
			cancel()
		} else {
			reason = routeReason(status)
		}
		ss.answer(&r, status, reason)
	}
}

// answer sends the outcome of r to the node that routed it.
func (ss *Sessions) answer(r *routeRequest, status int, reason string) {
	data, err := json.Marshal(routeAnswer{ID: r.ID, Status: status, Reason: reason})
	if err != nil {
		return
	}
	ctx, cancel := ss.callContext()
	defer cancel()
	if err := ss.env.Node.Control(ctx, broker.Control{Node: r.From, Kind: broker.ControlRouted, Data: string(data)}); err != nil {
		// The sender stops waiting after routeWait, or sooner when it
		// finds this node gone.
		ss.log.Info("route answer not sent", "to", r.From, "err", err)
	}
}

// callContext bounds a broker call made for another node (answerTimeout),
// under the node's lifetime.
func (ss *Sessions) callContext() (context.Context, context.CancelFunc) {
	parent := ss.env.Lifetime
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, answerTimeout)
}

// spawn runs fn on a goroutine the server tracks (Env.Go), or a plain one.
func (ss *Sessions) spawn(fn func()) {
	if ss.env.Go != nil {
		ss.env.Go(fn)
		return
	}
	go fn()
}

// randomID returns 8 random bytes in hex and a dash: a prefix that keeps
// route ids unique across a node's restarts.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}
