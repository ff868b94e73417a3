package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/metrics"
)

// brokerProbeEvery is how often a node pings its broker for
// ferry_broker_up, ferry_ready and the ping latency; brokerProbeTimeout is
// how long a ping may take before the broker counts as down (the same as
// /readyz allows).
const (
	brokerProbeEvery   = 5 * time.Second
	brokerProbeTimeout = 2 * time.Second
)

// brokerProbe returns the loop that pings the broker until Shutdown, and
// points ferry_ready at the result: ready while the node does not drain
// and the last ping was answered. The first ping runs at once, so a node
// reports its broker within a scrape of starting.
func (s *Server) brokerProbe() func() {
	var up atomic.Bool
	s.metrics.SetReadyFunc(func() bool { return up.Load() && !s.draining.Load() })
	return func() {
		t := time.NewTicker(brokerProbeEvery)
		defer t.Stop()
		for {
			// Derived from the node's lifetime, as the sweep's work is:
			// Shutdown does not wait for a ping in flight.
			ctx, cancel := context.WithTimeout(s.lifetime, brokerProbeTimeout)
			start := time.Now()
			err := s.broker.Ping(ctx)
			cancel()
			if s.lifetime.Err() != nil {
				return // shutting down: the ping was canceled, not refused
			}
			if err == nil {
				s.metrics.BrokerLatency(metrics.OpPing, time.Since(start))
			} else {
				s.metrics.BrokerError(metrics.OpPing)
			}
			if was := up.Swap(err == nil); was != (err == nil) {
				if err != nil {
					s.log.Warn("broker does not answer its ping", slog.Any("err", err))
				} else {
					s.log.Info("broker answers its ping")
				}
			}
			s.metrics.SetBrokerUp(err == nil)
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}
}

// namespaceNames are the configured namespaces, sorted: the fixed label
// values of the per-namespace metrics.
func namespaceNames(cfg Config) []string {
	return slices.Sorted(maps.Keys(cfg.Namespaces))
}

// certExpiry is when c's leaf certificate expires; zero when it cannot
// be read.
func certExpiry(c *tls.Certificate) time.Time {
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return time.Time{}
		}
	}
	if leaf == nil {
		return time.Time{}
	}
	return leaf.NotAfter
}
