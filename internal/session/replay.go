package session

import (
	"context"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/node"
)

// Replays longer than the queue go in pages: a page fills the queue's free
// room, and the next page is read when the writer has drained the queue
// below half. While pages remain the subscription stays "recovering": live
// messages wait in pending (they are in history too, so pending is trimmed
// rather than allowed to grow), and the last page switches it to live.

// maxPending caps the live messages held while a paged replay runs; beyond
// it they are dropped and read from history by a later page instead.
const maxPending = 4096

// replayRetry is how long a replay whose history read failed (the broker
// unreachable for a moment: a reset link, a failover) waits before it reads
// again. Until then the subscription stays recovering: going live instead
// would skip the messages the page was to bring, and a client that
// deduplicates by offset never notices the hole.
const replayRetry = 200 * time.Millisecond

// pageSize is how many messages one replay page may queue now.
func (s *Session) pageSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pageSizeLocked()
}

func (s *Session) pageSizeLocked() int {
	limit := s.env.Limits.QueueMessages
	if limit <= 0 {
		limit = 1024
	}
	return max(1, limit-s.queue.Len()-1) // one place for the reply
}

// roomForLocked reports whether one more message of size bytes fits in the
// queue without dropping anything (an empty queue always takes one).
func (s *Session) roomForLocked(size int) bool {
	if s.queue.Len() == 0 {
		return true
	}
	l := s.env.Limits
	return (l.QueueMessages <= 0 || s.queue.Len() < l.QueueMessages) &&
		(l.QueueBytes <= 0 || s.queue.Bytes()+size <= l.QueueBytes)
}

// queuePageLocked queues a page of history read with limit and, when the
// page reached the live stream, switches the subscription to live.
func (s *Session) queuePageLocked(sub *subscription, res *broker.HistoryResult, limit int) error {
	var err error
	more := limit > 0 && len(res.Messages) >= limit
	for i := range res.Messages {
		o := node.OutgoingOf(&res.Messages[i])
		if !s.roomForLocked(o.Msg.Size()) {
			more = true // the rest waits for the next page
			break
		}
		if err = s.queueMessageLocked(sub, o); err != nil {
			return err
		}
	}
	if more && sub.offset < res.Offset {
		// More to read: keep recovering, continue when the queue drains.
		sub.replayFrom = sub.offset
		if !sub.replayDue {
			sub.replayDue = true
			s.replays++
		}
		kept := sub.pending[:0]
		for _, o := range sub.pending {
			if o.Msg.Offset() > sub.offset {
				kept = append(kept, o)
			}
		}
		clear(sub.pending[len(kept):])
		sub.pending = kept
		if len(sub.pending) > maxPending {
			clear(sub.pending)
			sub.pending = sub.pending[:0]
		}
		return nil
	}
	for _, o := range sub.pending {
		if err = s.queueMessageLocked(sub, o); err != nil {
			break
		}
	}
	sub.pending = nil
	sub.recovering = false
	return err
}

// maybeContinueReplay starts the next replay pages when the queue has room
// (called by the writer after it sent something).
func (s *Session) maybeContinueReplay() {
	s.mu.Lock()
	if s.replays == 0 || s.replaying || s.state != stateConnected || s.queue.Len() > s.env.Limits.QueueMessages/2 {
		s.mu.Unlock()
		return
	}
	s.replaying = true
	s.mu.Unlock()
	run := func() {
		for {
			ctx, cancel := s.env.requestContext()
			failed := s.continueReplays(ctx)
			cancel()
			if failed {
				// Retried after replayRetry (continueReplays set it
				// up), not at once: the broker is not answering.
				s.mu.Lock()
				s.replaying = false
				s.mu.Unlock()
				return
			}
			// The writer may have drained the page while this goroutine
			// still counted as replaying (its own call then returned
			// early): decide under the lock whether to go on or hand over.
			s.mu.Lock()
			if s.replays == 0 || s.state != stateConnected || s.queue.Len() > s.env.Limits.QueueMessages/2 {
				s.replaying = false
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
		}
	}
	if s.env.Go != nil {
		s.env.Go(run)
	} else {
		go run()
	}
}

// continueReplays reads the next page of every subscription that has one.
// When a read failed it reports so, and tries again after replayRetry.
func (s *Session) continueReplays(ctx context.Context) (failed bool) {
	type next struct {
		ch   string
		sub  *subscription
		from broker.Position
		gen  uint32
	}
	s.mu.Lock()
	var todo []next
	for _, sub := range s.subs {
		if sub.replayDue {
			todo = append(todo, next{sub.ch, sub, broker.Position{Offset: sub.replayFrom, Epoch: sub.epoch}, sub.replayGen})
		}
	}
	s.mu.Unlock()
	for _, n := range todo {
		if !s.replayFrom(ctx, n.ch, n.sub, n.from, n.gen) {
			failed = true
		}
	}
	s.scheduleNow()
	if failed {
		time.AfterFunc(replayRetry, s.maybeContinueReplay)
	}
	return failed
}

// replayFrom reads one page after from for a subscription that is already
// in the hub, and queues it. gen is the subscription's replayGen when from
// was read: a page read across a rewind (Rewind moved the subscription
// back and bumped replayGen meanwhile) is dropped, else it would clear the
// rewind's replay request and move the subscription's offset past what
// the rewind must replay, or queue its messages ahead of the rewind's
// page, leaving a gap the client never sees again.
//
// It reports false when the history read failed: the page stays due (the
// subscription recovering, live messages waiting in pending) for the next
// try, see replayRetry.
func (s *Session) replayFrom(ctx context.Context, ch string, sub *subscription, from broker.Position, gen uint32) bool {
	limit := s.pageSize()
	res, err := s.env.Broker.History(ctx, ch, broker.HistoryQuery{Since: &from, Limit: limit})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subFor(ch) != sub || s.state != stateConnected || sub.replayGen != gen {
		return true
	}
	if err != nil {
		// The page stays due. Live messages are in history too: beyond
		// maxPending they are read again by the page instead of held.
		if len(sub.pending) > maxPending {
			clear(sub.pending)
			sub.pending = sub.pending[:0]
		}
		return false
	}
	if sub.replayDue {
		sub.replayDue = false
		s.replays--
	}
	if from.Epoch != res.Epoch && from.Offset != 0 {
		sub.offset = 0
	}
	_ = s.queuePageLocked(sub, &res, limit)
	return true
}
