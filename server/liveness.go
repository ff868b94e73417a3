package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/session"
)

// fenceBudget bounds the pass over every connection after a lapse (one
// session record read each); connections it does not reach are fenced when
// they next save their state.
const fenceBudget = 30 * time.Second

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
	failing := false // the last write failed (logged once, not every second)
	for {
		ctx, cancel := context.WithTimeout(s.lifetime, node.LivenessEvery)
		lapsed, err := s.node.Beat(ctx, now)
		cancel()
		switch {
		case s.lifetime.Err() != nil:
		case err != nil && !failing:
			s.log.Warn("liveness record not written", slog.Any("err", err))
		case err == nil && failing:
			s.log.Info("liveness record written again")
		}
		failing = err != nil
		if lapsed {
			s.log.Warn("liveness record lapsed (the node was frozen or cut off from the broker): checking that its sessions did not move",
				slog.Int("connections", s.reg.Count()))
			// One record read per connection, one after the other:
			// bounded as a whole, not per read.
			fctx, fcancel := context.WithTimeout(s.lifetime, fenceBudget)
			s.reg.Each(func(sess *session.Session) { sess.Fence(fctx) })
			fcancel()
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
			// Not the tick's time: a ticker delivers one stale tick
			// after a freeze, and the lapse is measured from the clock.
			now = time.Now()
		}
	}
}
