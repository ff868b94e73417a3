package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/session"
)

// livenessLoop keeps the node's liveness record in the broker (see
// node.LivenessTTL) until Shutdown. When a write finds the previous one
// more than the TTL old, the node was frozen or cut off long enough for
// other nodes to resume its sessions without it: every connection then
// checks that its session is still its own (session.Fence) and closes if
// it moved, so that the woken node does not deliver into it.
func (s *Server) livenessLoop() {
	t := time.NewTicker(node.LivenessEvery)
	defer t.Stop()
	now := time.Now()
	for {
		ctx, cancel := context.WithTimeout(s.lifetime, node.LivenessEvery)
		lapsed, err := s.node.Beat(ctx, now)
		if err != nil && s.lifetime.Err() == nil {
			s.log.Warn("liveness record not written", slog.Any("err", err))
		}
		if lapsed {
			s.log.Warn("liveness record lapsed (the node was frozen or cut off from the broker): checking that its sessions did not move",
				slog.Int("connections", s.reg.Count()))
			s.reg.Each(func(sess *session.Session) { sess.Fence(ctx) })
		}
		cancel()
		select {
		case <-s.stop:
			return
		case now = <-t.C:
			// A ticker delivers one stale tick after a freeze: the
			// lapse is measured from the clock, not from the tick.
			now = time.Now()
		}
	}
}
