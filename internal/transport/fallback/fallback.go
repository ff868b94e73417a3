// Package fallback carries a session over plain HTTP for clients whose
// network does not pass WebSockets: Server-Sent Events (frames as events on
// a long GET, client frames by POST) and long-polling (frames both ways in
// POST bodies, the reply held open until something is ready).
//
// Both are pull transports: the session queues frames exactly as for a
// WebSocket (same bounds, priorities, conflation, credit) and wakes the
// transport, whose HTTP handler pulls and writes them outside the session's
// lock. One Transport serves one session; an SSE stream or a poll attaches
// to it for as long as the request lasts, and a new one replaces the old.
// Between requests the session lives on; the heartbeat sweep expires it
// when no request comes for heartbeat.interval + heartbeat.timeout.
//
// Sessions (sessions.go) holds a node's HTTP sessions by session token and
// makes them reachable from every node: a stream or a poll that lands on a
// node that does not hold its session adopts it (session.Adopt) from the
// record the holding node keeps in the broker's KV; a send (POST /v1/send)
// is routed to the holding node instead, so that the stream stays where it
// is (route.go), and adopts the session only when that node is gone.
//
// A request that waits long for frames (an SSE stream, a poll held while
// nothing is ready) leaves net/http on a plain HTTP/1.1 connection: the
// handler takes the connection, one goroutine parks in a Read on it and
// writes the response itself, and a held poll's connection goes back to
// the server after the answer (parked.go, sse.go, poll.go; ADR 012). Over
// TLS or HTTP/2 the request stays in its net/http handler.
//
// Data flow: transport (this package) -> session -> node -> hub / broker
// -> queue -> writer. It imports session, broker and protocol; the HTTP
// routes, admission and tokens that lead here are the server's.
package fallback

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/protocol"
)

// ErrPullOnly: the session tried to push bytes to a pull transport.
var ErrPullOnly = errors.New("fallback: frames are pulled, not pushed")

// Mode is what the client declared when it opened the session.
type Mode string

const (
	ModeSSE  Mode = "sse"
	ModePoll Mode = "poll"
)

// Transport is a session's HTTP side. It implements session.Transport and
// session.Puller.
type Transport struct {
	mode Mode
	s    *session.Session

	wake chan struct{} // capacity 1: something to pull, a ping, or the end

	// pull is held by attach and around each Pull of an attached request:
	// a request that another one replaced takes nothing more from the
	// session (what it would take is the new request's).
	pull sync.Mutex

	mu       sync.Mutex
	attached chan struct{} // closed to tell the attached request to leave
	pinged   bool
	closing  bool
	final    []byte // frames left when the session closed with no request attached
	last     atomic.Int64
	saved    atomic.Int64 // when the cluster record was last written (unix nanos)
	active   atomic.Int32 // requests attached now
	done     chan struct{}
	doneOnce sync.Once
	onDone   func() // set before the session starts, read-only after

	// parked is the connection of the request attached on a connection
	// taken from net/http (parked.go), nil when none: Wake, attach and
	// finish kick it out of its wait.
	parked atomic.Pointer[parked]
	// goFn starts the goroutine of a parked request (session.Env.Go:
	// tracked for Shutdown); nil: a plain go statement. Set by Sessions before the
	// transport is reachable, read-only after.
	goFn func(func())

	// token is the session token and network the key of the network it
	// is bound to (session.bind_network; "" for none). Set by Sessions
	// before the transport is reachable, read-only after.
	token, network string

	// The frames other nodes routed to this session, waiting to be
	// processed in arrival order by one goroutine at a time (route.go).
	routeMu sync.Mutex
	routed  []routeRequest // guarded by routeMu; at most routeQueue
	routing bool           // guarded by routeMu: a goroutine drains routed
}

// New returns a transport for a session that the client will read in mode.
// onDone runs once when the session is over (to forget its token).
func New(mode Mode, onDone func()) *Transport {
	t := &Transport{mode: mode, wake: make(chan struct{}, 1), done: make(chan struct{}), onDone: onDone}
	t.last.Store(time.Now().UnixNano())
	return t
}

// Bind attaches the session (once, right after session.New).
func (t *Transport) Bind(s *session.Session) { t.s = s }

// Due reports whether the session's cluster record, last written at the
// previous Due that returned true, should be written again (every period).
func (t *Transport) Due(period time.Duration) bool {
	now := time.Now().UnixNano()
	last := t.saved.Load()
	return now-last >= int64(period) && t.saved.CompareAndSwap(last, now)
}

// Closing reports whether the session behind the transport has ended.
func (t *Transport) Closing() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing
}

// Session returns the bound session.
func (t *Transport) Session() *session.Session { return t.s }

// Done is closed when the session has ended.
func (t *Transport) Done() <-chan struct{} { return t.done }

var (
	_ session.Transport = (*Transport)(nil)
	_ session.Puller    = (*Transport)(nil)
)

// Name is "sse" or "poll".
func (t *Transport) Name() string { return string(t.mode) }

// Send is never used: the session wakes pull transports instead.
func (t *Transport) Send([]byte) (int, error) { return 0, ErrPullOnly }

// Pending is always 0: nothing is buffered outside the session's queue.
func (t *Transport) Pending() int { return 0 }

// Wake tells the attached request (if any) that frames are ready.
func (t *Transport) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
	t.kick()
}

// kick interrupts the wait of a request parked on a connection taken from
// net/http, after what it must see was done (a token in wake, leave or
// done closed).
func (t *Transport) kick() {
	if p := t.parked.Load(); p != nil {
		p.kick()
	}
}

// spawn starts fn on a goroutine of its own.
func (t *Transport) spawn(fn func()) {
	if t.goFn != nil {
		t.goFn(fn)
		return
	}
	go fn()
}

// Ping asks an attached SSE stream to write a heartbeat comment; polls
// need none (the client's next poll is its heartbeat).
func (t *Transport) Ping() error {
	t.mu.Lock()
	t.pinged = true
	t.mu.Unlock()
	t.Wake()
	return nil
}

// LastActivity is now while a request is attached, else when the last one
// ended: a client that stops polling (or whose stream is gone) is expired
// by the heartbeat sweep.
//
// An SSE stream is only known to be alive by writes that succeed: the
// heartbeat sweep pings it (a ": hb" comment), and each successful write
// counts, so a stream whose peer vanished stops counting.
func (t *Transport) LastActivity() time.Time {
	if t.mode == ModePoll && t.active.Load() > 0 {
		return time.Now()
	}
	return time.Unix(0, t.last.Load())
}

// Close ends the session: what is still queued (the disconnect frame last)
// goes to the attached request, or waits for the next one for a short
// while; then the session is released.
func (t *Transport) Close(code int, reason string) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		return
	}
	t.closing = true
	t.mu.Unlock()
	var frames []session.Frame
	var buf []byte
	for i := 0; i < 64 && code != protocol.CloseSessionTakenOver; i++ {
		// (A session taken over by another node keeps its frames: the
		// client will get them from there, replayed from what it
		// confirmed.)
		n := len(frames)
		buf, frames = t.s.Pull(buf, frames, 0)
		if len(frames) == n {
			break
		}
	}
	t.mu.Lock()
	t.final = encodeFinal(t.mode, buf, frames)
	t.mu.Unlock()
	t.Wake()
	t.s.ClosedAsync(code, reason)
	// Give a client between two polls the chance to fetch the goodbye.
	time.AfterFunc(finalGrace, t.finish)
}

// finalGrace is how long the last frames of a closed session wait for a
// request to fetch them.
const finalGrace = 5 * time.Second

func (t *Transport) finish() {
	t.doneOnce.Do(func() {
		close(t.done)
		t.kick()
		if t.onDone != nil {
			t.onDone()
		}
	})
}

// encodeFinal renders the last frames in the transport's format.
func encodeFinal(mode Mode, buf []byte, frames []session.Frame) []byte {
	var out bytes.Buffer
	if mode == ModeSSE {
		for _, f := range frames {
			writeEvent(&out, buf[f.Start:f.End], f)
		}
		return out.Bytes()
	}
	return appendArray(nil, buf, frames)
}

// attach makes the calling request the one that pulls; a request already
// attached is told to leave.
func (t *Transport) attach() (leave chan struct{}) {
	t.pull.Lock()
	t.mu.Lock()
	if t.attached != nil {
		close(t.attached)
	}
	leave = make(chan struct{})
	t.attached = leave
	t.mu.Unlock()
	t.pull.Unlock()
	t.kick() // the replaced request, when it is parked
	t.active.Add(1)
	return leave
}

// pullAttached pulls frames for the request attached with leave; ok is
// false, and nothing is taken, once another request replaced it. Without
// this, a replaced SSE stream (its peer gone, not noticed yet) or a
// displaced poll could take frames after the new request attached and
// rewound the session, and write them where nobody reads: the new request
// would never see them, and its next Last-Event-ID would confirm them.
func (t *Transport) pullAttached(leave chan struct{}, buf []byte, frames []session.Frame) ([]byte, []session.Frame, bool) {
	t.pull.Lock()
	defer t.pull.Unlock()
	t.mu.Lock()
	current := t.attached == leave
	t.mu.Unlock()
	if !current {
		return buf, frames, false
	}
	buf, frames = t.s.Pull(buf, frames, 0)
	return buf, frames, true
}

func (t *Transport) detach(leave chan struct{}) {
	t.mu.Lock()
	if t.attached == leave {
		t.attached = nil
	}
	t.mu.Unlock()
	t.last.Store(time.Now().UnixNano())
	t.active.Add(-1)
}

// takeFinal returns the last frames of a closed session, once.
func (t *Transport) takeFinal() ([]byte, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closing {
		return nil, false
	}
	b := t.final
	t.final = nil
	return b, true
}
