package fallback

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/ferry-io/ferry/internal/session"
)

// An SSE stream runs on one of two paths (ADR 012).
//
// On a plain HTTP/1.1 connection the stream leaves net/http once the
// request is checked (Hijack): the handler writes nothing through the
// ResponseWriter, starts the stream's goroutine and returns, so that
// net/http's connection goroutine, its background read, its read and write
// buffers and the request are all released while the stream idles. The
// response is written on the connection itself: the status line, the same
// headers as the other path plus "Connection: close", then the events; the
// body ends with the connection, so no chunked encoding. The one goroutine
// left waits in a Read on the connection, which tells it at once that the
// client went away (EOF or an error); Wake, a replacing request and the
// session's end interrupt that Read by moving its deadline into the past
// (kick).
//
// Over TLS, HTTP/2, or wherever Hijack is refused, the stream stays in its
// net/http handler, as before: writes through the ResponseWriter and a
// Flush, r.Context() for the client going away.

// sseKeepBytes is how much of its buffers an idle stream keeps: what a
// burst grew beyond it is released before the stream waits, so an idle
// stream holds no memory sized by its past traffic.
const sseKeepBytes = 512

// sseSink is where a stream's events go.
type sseSink interface {
	// write sends out's bytes (and empties out).
	write(out *bytes.Buffer) error
	// wait blocks until there may be something to pull (true), or until
	// the stream must end (false): replaced (leave closed), the session
	// over, or the client gone.
	wait(t *Transport, leave chan struct{}) bool
}

// ServeSSE streams the session's frames as Server-Sent Events until the
// client goes, another stream replaces this one, or the session ends.
// lastEventID is the Last-Event-ID the client sent (-1 when none): frames
// after it that an earlier stream wrote are replayed.
//
// On a plain HTTP/1.1 connection ServeSSE returns as soon as the stream
// runs on its own goroutine (see above); otherwise it returns when the
// stream ends.
func (t *Transport) ServeSSE(w http.ResponseWriter, r *http.Request, lastEventID int64, writeTimeout time.Duration) {
	if hs := hijackSSE(w, r, writeTimeout); hs != nil {
		leave := t.attach()
		t.parked.Store(&hs.p)
		if lastEventID >= 0 {
			_ = t.s.Rewind(r.Context(), uint64(lastEventID))
		}
		// Everything below runs without the request: its context ends
		// when this handler returns.
		t.spawn(func() {
			defer hs.close(t)
			t.runSSE(leave, &hs.out, hs)
		})
		return
	}
	h := w.Header()
	setSSEHeaders(h)
	w.WriteHeader(http.StatusOK)
	leave := t.attach()
	if lastEventID >= 0 {
		_ = t.s.Rewind(r.Context(), uint64(lastEventID))
	}
	var out bytes.Buffer
	out.WriteString(sseOpening)
	t.runSSE(leave, &out, &httpSSE{w: w, rc: http.NewResponseController(w), done: r.Context().Done(), timeout: writeTimeout})
}

// sseOpening is the stream's first bytes: the browser sees it open at once.
const sseOpening = ": ferry\n\n"

func setSSEHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
}

// runSSE is the stream's loop, the same on both paths: pull what the
// session queued, write it as events (with a heartbeat comment when the
// session pinged), wait for more. out holds bytes to write first.
func (t *Transport) runSSE(leave chan struct{}, out *bytes.Buffer, sink sseSink) {
	defer t.detach(leave)
	var buf []byte
	var frames []session.Frame
	for {
		if final, closed := t.takeFinal(); closed {
			out.Write(final)
			_ = sink.write(out)
			return
		}
		var current bool
		buf, frames, current = t.pullAttached(leave, buf[:0], frames[:0])
		if !current {
			return
		}
		for _, f := range frames {
			writeEvent(out, buf[f.Start:f.End], f)
		}
		t.mu.Lock()
		if t.pinged {
			t.pinged = false
			out.WriteString(": hb\n\n")
		}
		t.mu.Unlock()
		if out.Len() > 0 {
			if err := sink.write(out); err != nil {
				return
			}
			t.last.Store(time.Now().UnixNano())
		}
		if len(frames) > 0 {
			continue // there may be more than one pull's worth
		}
		// Idle from here: nothing kept that a burst grew.
		if cap(buf) > sseKeepBytes {
			buf = nil
		}
		if cap(frames)*frameSize > sseKeepBytes {
			frames = nil
		}
		if out.Cap() > sseKeepBytes {
			*out = bytes.Buffer{}
		}
		if !sink.wait(t, leave) {
			return
		}
	}
}

// frameSize is about the size of a session.Frame (two ints, a string, a
// uint64), for sseKeepBytes.
const frameSize = 40

// writeEvent renders one frame as an SSE event: event = frame type, id =
// session sequence (for messages), data = the JSON frame.
func writeEvent(out *bytes.Buffer, frame []byte, f session.Frame) {
	if f.Type != "" {
		out.WriteString("event: ")
		out.WriteString(f.Type)
		out.WriteByte('\n')
	}
	if f.Seq > 0 {
		out.WriteString("id: ")
		out.WriteString(strconv.FormatUint(f.Seq, 10))
		out.WriteByte('\n')
	}
	out.WriteString("data: ")
	out.Write(frame) // JSON frames never contain a raw newline
	out.WriteString("\n\n")
}

// httpSSE is a stream that stays in its net/http handler.
type httpSSE struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	done    <-chan struct{} // the request's context: the client went away
	timeout time.Duration   // per write; 0: none
}

func (s *httpSSE) write(out *bytes.Buffer) error {
	if s.timeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	_, err := s.w.Write(out.Bytes())
	out.Reset()
	if err == nil {
		err = s.rc.Flush()
	}
	return err
}

func (s *httpSSE) wait(t *Transport, leave chan struct{}) bool {
	select {
	case <-t.wake:
		return true
	case <-leave:
	case <-s.done:
	case <-t.done:
	}
	return false
}

// hijackedSSE is a stream on a connection taken from net/http.
type hijackedSSE struct {
	p       parked
	timeout time.Duration // per write; 0: none
	out     bytes.Buffer  // starts with the response head
}

// hijackSSE takes the connection of an SSE request from net/http and
// returns the stream with the response head (and the opening comment) in
// its buffer; nil when the request stays on net/http: TLS, not HTTP/1.x,
// or a ResponseWriter that cannot hijack. Nothing was written then.
func hijackSSE(w http.ResponseWriter, r *http.Request, timeout time.Duration) *hijackedSSE {
	if r.TLS != nil || r.ProtoMajor != 1 {
		return nil
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	// net/http clears its deadlines (ReadTimeout) on Hijack; writes set
	// their own. Bytes the client sent after its request (it should send
	// none) are dropped with the reader Hijack returned.
	hs := &hijackedSSE{p: parked{conn: conn}, timeout: timeout}
	h := w.Header()
	setSSEHeaders(h)
	h.Set("Connection", "close") // the body ends with the connection
	appendHead(&hs.out, h)
	hs.out.WriteString("\r\n")
	hs.out.WriteString(sseOpening)
	return hs
}

func (s *hijackedSSE) write(out *bytes.Buffer) error {
	if s.timeout > 0 {
		_ = s.p.conn.SetWriteDeadline(time.Now().Add(s.timeout))
	}
	_, err := s.p.conn.Write(out.Bytes())
	out.Reset()
	return err
}

// wait parks in a Read on the connection (parked.wait): bytes the client
// sends are dropped.
func (s *hijackedSSE) wait(t *Transport, leave chan struct{}) bool {
	for {
		switch s.p.wait(t, leave, time.Time{}) {
		case parkWoken:
			return true
		case parkRead:
			continue
		}
		return false
	}
}

// close ends the stream: the transport forgets it (unless a newer one
// replaced it) and the connection closes, which ends the response.
func (s *hijackedSSE) close(t *Transport) {
	t.parked.CompareAndSwap(&s.p, nil)
	_ = s.p.conn.Close()
}
