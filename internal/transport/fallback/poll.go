package fallback

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-io/ferry/internal/session"
)

// Handoff gives a connection taken from net/http back to the server that
// accepted it, which serves the connection's next request as on any
// kept-alive connection: a held long-poll waits off net/http and answers
// on the connection itself, and the client's next poll reaches net/http
// again. nil where there is no way back (an embedder serving Handler()
// itself, TLS): polls are then held in net/http.
type Handoff func(net.Conn)

// pollWriteTimeout bounds the write of a poll's answer on a connection
// taken from net/http.
const pollWriteTimeout = 10 * time.Second

// Poll answers one long-poll: the frames ready now, or, when there are
// none, the first ones that come within hold (an empty array after it).
// lastSeq is the client's Last-Event-ID (-1 when none): frames after it
// that an earlier poll sent but the client never got are sent again.
//
// A poll that must wait, on a plain HTTP/1.1 connection the client keeps
// alive, waits off net/http when handoff is set (parked.go): Poll returns
// at once, and the answer goes on the connection, which is handed back
// then. The answer is the same on both paths.
func (t *Transport) Poll(w http.ResponseWriter, r *http.Request, lastSeq int64, hold time.Duration, handoff Handoff) {
	leave := t.attach()
	if lastSeq >= 0 {
		_ = t.s.Rewind(r.Context(), uint64(lastSeq))
	}
	until := time.Now().Add(hold)
	if answer, ok := t.pollNow(leave); ok {
		writeJSON(w, answer)
		t.detach(leave)
		return
	}
	if hp := hijackPoll(w, r, hold, handoff); hp != nil {
		t.parked.Store(&hp.p)
		t.spawn(func() {
			conn := t.holdParked(leave, hp, until)
			t.detach(leave)
			if conn != nil {
				handoff(conn) // may wait for the client's next request
			}
		})
		return
	}
	defer t.detach(leave)
	timer := time.NewTimer(hold)
	defer timer.Stop()
	for {
		select {
		case <-t.wake:
			if answer, ok := t.pollNow(leave); ok {
				writeJSON(w, answer)
				return
			}
			continue
		case <-timer.C:
		case <-leave:
		case <-r.Context().Done():
			return
		case <-t.done:
		}
		writeJSON(w, []byte("[]"))
		return
	}
}

// pollNow returns a poll's answer if it has one now: the last frames of a
// closed session, an empty array for a poll another one displaced (the
// next poll gets what is ready), or the frames ready.
func (t *Transport) pollNow(leave chan struct{}) ([]byte, bool) {
	if final, closed := t.takeFinal(); closed {
		if final == nil {
			final = []byte("[]")
		}
		return final, true
	}
	buf, frames, current := t.pullAttached(leave, nil, nil)
	if !current {
		return []byte("[]"), true
	}
	if len(frames) > 0 {
		return appendArray(nil, buf, frames), true
	}
	return nil, false
}

func appendArray(dst, buf []byte, frames []session.Frame) []byte {
	dst = append(dst, '[')
	for i, f := range frames {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, buf[f.Start:f.End]...)
	}
	return append(dst, ']')
}

func writeJSON(w http.ResponseWriter, b []byte) {
	setPollHeaders(w.Header())
	_, _ = w.Write(b)
}

func setPollHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
}

// hijackedPoll is a held poll on a connection taken from net/http.
type hijackedPoll struct {
	p      parked
	header http.Header // the response's headers, set before the hijack
	early  []byte      // bytes net/http had read past the request
}

// hijackPoll takes the connection of a poll that must wait from net/http;
// nil when the poll stays there: no handoff, no wait, TLS, not HTTP/1.1
// kept alive, or a ResponseWriter that cannot hijack.
func hijackPoll(w http.ResponseWriter, r *http.Request, hold time.Duration, handoff Handoff) *hijackedPoll {
	if handoff == nil || hold <= 0 || r.TLS != nil || !r.ProtoAtLeast(1, 1) || r.ProtoMajor != 1 || r.Close {
		return nil
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	hp := &hijackedPoll{p: parked{conn: conn}, header: w.Header().Clone()}
	if n := brw.Reader.Buffered(); n > 0 {
		hp.early = make([]byte, n)
		_, _ = brw.Reader.Read(hp.early)
	}
	return hp
}

// holdParked waits for the poll's answer off net/http, writes it and
// returns the connection to hand back; nil when the client went away or
// the answer could not be written (the connection is closed then).
func (t *Transport) holdParked(leave chan struct{}, hp *hijackedPoll, until time.Time) net.Conn {
	answer := []byte("[]")
	for waiting := true; waiting; {
		switch hp.p.wait(t, leave, until) {
		case parkWoken:
			if a, ok := t.pollNow(leave); ok {
				answer, waiting = a, false
			}
		case parkGone:
			t.parked.CompareAndSwap(&hp.p, nil)
			_ = hp.p.conn.Close()
			return nil
		default:
			// Replaced, the session over, the hold over, or the client's
			// next request already here: answer now.
			waiting = false
		}
	}
	// From here the connection goes back to net/http: no kick may touch it.
	t.parked.CompareAndSwap(&hp.p, nil)
	hp.p.release()
	var out bytes.Buffer
	setPollHeaders(hp.header)
	appendHead(&out, hp.header)
	out.WriteString("Content-Length: ")
	out.WriteString(strconv.Itoa(len(answer)))
	out.WriteString("\r\n\r\n")
	out.Write(answer)
	conn := hp.p.conn
	_ = conn.SetReadDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Now().Add(pollWriteTimeout))
	if _, err := conn.Write(out.Bytes()); err != nil {
		_ = conn.Close()
		return nil
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return WithPrefix(conn, append(hp.early, hp.p.in[:hp.p.n]...))
}
