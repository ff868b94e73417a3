package client

import (
	"fmt"
	"log/slog"

	"github.com/ferry-io/ferry/protocol"
)

// handleFrames handles the frames of one message from the server, in order.
// It returns false when the client dropped the connection meanwhile.
func (c *Client) handleFrames(cn *conn, frames []protocol.ServerMessage) bool {
	for i := range frames {
		f := &frames[i]
		switch f.Type {
		case protocol.TypeMessage:
			if !c.onMessage(cn, f) {
				return false
			}
		case protocol.TypeSubscribed:
			c.onSubscribed(cn, f)
		case protocol.TypeUnsubscribed:
			if f.ID != 0 {
				c.onReply(cn, f)
			} else {
				c.onServerUnsubscribed(cn, f)
			}
		case protocol.TypePublished, protocol.TypePong, protocol.TypeRefreshed,
			protocol.TypeHistory, protocol.TypePresence, protocol.TypeRPCResult,
			protocol.TypeUploadReady, protocol.TypeUploadProgress, protocol.TypeUploadDone:
			c.onReply(cn, f)
		case protocol.TypeError:
			c.onError(cn, f)
		case protocol.TypeJoin, protocol.TypeLeave:
			c.onPresenceEvent(f)
		case protocol.TypeDisconnect:
			d := *f // frames is reused for the next message
			c.mu.Lock()
			cn.disc = &d
			c.mu.Unlock()
		default:
			// connected again, upload replies, types of later versions.
			c.log.Debug("ferry: frame ignored", slog.String("type", f.Type))
		}
	}
	return true
}

// onMessage accepts a message for delivery unless its subscription already
// delivered that offset. On a restored subscription it first checks that the
// server's replay does not skip offsets; if it does, the connection is
// dropped and the next one does not resume (returns false).
func (c *Client) onMessage(cn *conn, f *protocol.ServerMessage) bool {
	c.mu.Lock()
	s := c.subs[f.Channel]
	if s == nil || s.activeGen != cn.gen {
		c.mu.Unlock()
		cn.received(f.Seq, true)
		return true
	}
	if s.checkGap && s.hasPos {
		sameStream := f.Epoch == s.pos.Epoch || s.pos.Offset == 0
		switch {
		case !sameStream:
			s.checkGap = false
		case f.Offset > s.pos.Offset+1:
			c.resumeFallbackLocked(cn, s, f.Offset-1)
			c.mu.Unlock()
			_ = cn.ws.CloseNow()
			return false
		case f.Offset == s.pos.Offset+1:
			s.checkGap = false
		}
	}
	if s.hasPos && f.Epoch == s.pos.Epoch && f.Offset <= s.pos.Offset {
		c.stats.DuplicatesDropped++
		c.mu.Unlock()
		cn.received(f.Seq, true)
		return true
	}
	// A live message of another epoch: the channel's stream was reset
	// (the broker lost its data) while the subscription was open. Report
	// it as a re-subscription would (recovered false), once per new epoch
	// (a subscribed frame may have reported it already), before the
	// message: what the client had of the old stream is all it gets, and
	// the new stream's offsets before this one are missed.
	var gap *Gap
	if s.hasPos && s.pos.Epoch != "" && f.Epoch != s.pos.Epoch && f.Epoch != s.gapEpoch {
		gap = &Gap{Channel: s.ch, Missed: f.Offset - 1, Epoch: f.Epoch, PrevEpoch: s.pos.Epoch, After: s.pos}
		s.gapEpoch = f.Epoch
		c.stats.Gaps++
	}
	s.pos, s.hasPos = Position{Offset: f.Offset, Epoch: f.Epoch}, true
	c.mu.Unlock()
	cn.received(f.Seq, false)
	if gap != nil {
		c.log.Warn("ferry: stream reset", slog.String("channel", gap.Channel), slog.String("prev_epoch", gap.PrevEpoch), slog.String("epoch", gap.Epoch), slog.Uint64("missed", gap.Missed))
		s.push(item{gap: gap})
	}
	s.push(item{msg: messageOf(f), gen: cn.gen, seq: f.Seq})
	return true
}

// resumeFallbackLocked drops cn because the resumed session's replay of s
// skipped the offsets after the last one delivered, up to upTo: the next
// connection does not resume and subscribes from the client's own
// positions. The caller closes the WebSocket after releasing c.mu.
func (c *Client) resumeFallbackLocked(cn *conn, s *Subscription, upTo uint64) {
	err := fmt.Errorf("resumed session skipped offsets %d to %d of %q: reconnecting without resuming", s.pos.Offset+1, upTo, s.ch)
	c.stats.ResumeFallbacks++
	c.noResume = true
	if cn.killErr == nil {
		cn.killErr, cn.immediate = err, true
	}
	c.log.Warn("ferry: "+err.Error(), slog.String("channel", s.ch))
}

// received records a message's sequence for the acks.
func (cn *conn) received(seq uint64, done bool) {
	if cn.acks != nil {
		cn.acks.received(seq, done)
	}
}

// onSubscribed handles the answer to a subscribe, or (without id) a
// subscription the server restored for a resumed session.
func (c *Client) onSubscribed(cn *conn, f *protocol.ServerMessage) {
	c.mu.Lock()
	var s *Subscription
	restored := f.ID == 0
	if restored {
		cn.restored[f.Channel] = true
		s = c.subs[f.Channel]
		if s == nil || s.activeGen == cn.gen {
			c.mu.Unlock()
			return
		}
		if s.reqID != 0 {
			delete(cn.subReqs, s.reqID)
			s.reqID = 0
		}
	} else {
		s = cn.subReqs[f.ID]
		delete(cn.subReqs, f.ID)
		if s == nil || s.reqID != f.ID {
			c.mu.Unlock()
			return
		}
		s.reqID = 0
		if c.subs[s.ch] != s {
			c.mu.Unlock()
			return
		}
	}
	s.activeGen = cn.gen
	var gap *Gap
	hadPos := s.hasPos
	if !hadPos {
		s.pos, s.hasPos = Position{Offset: f.Offset, Epoch: f.Epoch}, true
	} else if !f.Recovered {
		gap = &Gap{Channel: s.ch, Missed: f.Missed, Epoch: f.Epoch, PrevEpoch: s.pos.Epoch, After: s.pos}
		s.gapEpoch = f.Epoch
		c.stats.Gaps++
	}
	s.checkGap = restored && f.Recovered && hadPos
	s.restoredAt = Position{Offset: f.Offset, Epoch: f.Epoch}
	first := !s.readyDone
	s.readyDone = true
	c.mu.Unlock()
	if gap != nil {
		c.log.Warn("ferry: messages lost", slog.String("channel", gap.Channel), slog.Uint64("missed", gap.Missed), slog.String("epoch", gap.Epoch))
		s.push(item{gap: gap})
	}
	if first {
		close(s.ready)
	}
}

// onServerUnsubscribed handles a subscription the server ended (or, on a
// resumed connection, could not restore: that one is subscribed again after
// the barrier).
func (c *Client) onServerUnsubscribed(cn *conn, f *protocol.ServerMessage) {
	c.mu.Lock()
	s := c.subs[f.Channel]
	if s == nil || cn.barrier || s.activeGen != cn.gen {
		delete(cn.restored, f.Channel)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	err := fmt.Errorf("subscription to %q ended by the server: %s", f.Channel, f.Reason)
	s.fail(err)
	c.reportError(err)
}

// onError handles an error frame: the answer to a request or a subscribe,
// or an error not tied to one.
func (c *Client) onError(cn *conn, f *protocol.ServerMessage) {
	if f.ID == 0 {
		c.reportError(fmt.Errorf("error from the server: %w", serverError(f)))
		return
	}
	c.mu.Lock()
	s := cn.subReqs[f.ID]
	if s == nil {
		c.mu.Unlock()
		c.onReply(cn, f)
		return
	}
	delete(cn.subReqs, f.ID)
	if s.reqID == f.ID {
		s.reqID = 0
	}
	wasReady := s.readyDone
	if wasReady && f.Retry {
		// A re-subscription after a reconnect failed for now (broker
		// unavailable, say): try again on a new connection.
		if cn.killErr == nil {
			cn.killErr = fmt.Errorf("subscribe %q again: %w", s.ch, serverError(f))
		}
		c.mu.Unlock()
		_ = cn.ws.CloseNow()
		return
	}
	c.mu.Unlock()
	err := fmt.Errorf("subscribe %q: %w", s.ch, serverError(f))
	if s.fail(err) {
		c.reportError(err)
	}
}

// onPresenceEvent queues a join or leave for its subscription.
func (c *Client) onPresenceEvent(f *protocol.ServerMessage) {
	c.mu.Lock()
	s := c.subs[f.Channel]
	c.mu.Unlock()
	if s == nil || s.onPresence == nil {
		return
	}
	s.push(item{presence: &PresenceEvent{Channel: f.Channel, User: f.User, Conn: f.Conn, Leave: f.Type == protocol.TypeLeave}})
}
