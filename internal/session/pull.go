package session

import (
	"bytes"
	"context"
	"errors"

	"github.com/ferry-io/ferry/protocol"
)

// Puller is implemented by transports that take frames from the session
// when they can write (SSE, long-poll) instead of being handed them by the
// writer pool. Wake must not block: it tells the transport that Pull has
// something for it.
type Puller interface {
	Wake()
}

// Frame is one encoded frame returned by Pull: buf[Start:End] of the buffer
// Pull returned, the frame's type, and its session sequence (0 for frames
// that are not channel messages).
type Frame struct {
	Start, End int
	Type       string
	Seq        uint64
}

// Pull takes up to max frames that the queue allows now (credit and rate
// apply) and encodes each one on its own into buf. It never blocks; the
// transport writes the frames after Pull returned, outside the session's
// lock.
func (s *Session) Pull(buf []byte, frames []Frame, max int) ([]byte, []Frame) {
	s.mu.Lock()
	if max <= 0 {
		max = maxBatchFrames
	}
	items, wait := s.queue.Pop(s.scratch[:0], max, s.env.now())
	s.scratch = items[:0]
	delivered := 0
	for i := range items {
		it := &items[i]
		start := len(buf)
		f := Frame{Start: start}
		if it.Msg == nil {
			buf = append(buf, it.Frame...)
			f.Type = frameType(it.Frame)
		} else {
			buf = s.codec.AppendMessage(buf, it.Msg, it.Seq)
			f.Type, f.Seq = protocol.TypeMessage, it.Seq
			delivered++
			if sub := s.subFor(it.Msg.Channel()); sub != nil {
				sub.written = it.Msg.Offset()
			}
			if s.acks != nil {
				s.acks.add(it.Seq, it.Msg.Channel(), it.Msg.Offset())
			}
		}
		f.End = len(buf)
		frames = append(frames, f)
	}
	clear(items)
	if s.env.Metrics != nil && len(items) > 0 {
		s.env.Metrics.FrameOut(len(items))
		s.env.Metrics.Delivered(delivered)
	}
	s.mu.Unlock()
	if wait > 0 {
		s.armRateTimer(wait)
	}
	if len(items) > 0 {
		s.maybeContinueReplay()
	}
	return buf, frames
}

// frameType reads the type of an encoded JSON reply, whose first field is
// always "type" (the HTTP transports speak JSON only).
func frameType(b []byte) string {
	const prefix = `{"type":"`
	if !bytes.HasPrefix(b, []byte(prefix)) {
		return ""
	}
	rest := b[len(prefix):]
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// HandleRequest processes the frames of an HTTP request body (one frame or
// an array). Unlike HandleMessage, bytes that are not frames do not close
// the session: the error (wrapping protocol.ErrMalformed) becomes the HTTP
// request's 400, and the session goes on.
func (s *Session) HandleRequest(body []byte) error {
	var arr [4]protocol.ClientFrame
	frames, err := s.codec.DecodeClient(arr[:0], body)
	if err != nil {
		if s.env.Metrics != nil {
			s.env.Metrics.FrameIn("invalid")
		}
		return err
	}
	for i := range frames {
		if s.isClosing() {
			return nil
		}
		s.handleFrame(&frames[i])
	}
	return nil
}

// ErrNotConnected is returned by Rewind on a session that is not connected.
var ErrNotConnected = errors.New("session: not connected")

// Rewind tells the session that the client processed everything up to seq
// and nothing after it (an SSE stream reconnecting with Last-Event-ID, a
// long-poll whose last response was lost). When frames after seq were
// already written, everything queued is dropped and each channel is
// replayed from history after the last offset the client has, exactly as
// a resumed session is: nothing is lost within the history window and the
// client sees no duplicate.
func (s *Session) Rewind(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	if s.state != stateConnected {
		s.mu.Unlock()
		return ErrNotConnected
	}
	s.queue.Ack(seq)
	s.everAcked = true
	if s.acks == nil {
		s.acks = &ackRing{}
	}
	for _, e := range s.acks.ackUpTo(seq) {
		if sub := s.subFor(e.channel); sub != nil && e.offset > sub.acked {
			sub.acked = e.offset
		}
	}
	lost := s.queue.LastSeq() > seq
	if lost {
		// The frames after seq never reached the client: start over from
		// what it has. The queued messages go (they come again from
		// history); the queued replies stay: nothing would bring them back,
		// and the request that led to this rewind (a second poll
		// overlapping a held one) may have just queued one.
		s.queue.DropMessages()
		s.acks = &ackRing{}
		for _, sub := range s.subs {
			sub.recovering = true
			sub.offset, sub.written = sub.acked, sub.acked
			sub.replayFrom = sub.acked
			sub.replayGen++ // a page being read from further on is stale
			if !sub.replayDue {
				sub.replayDue = true
				s.replays++
			}
		}
	}
	s.mu.Unlock()
	if lost {
		s.continueReplays(ctx)
	}
	s.scheduleNow()
	return nil
}
