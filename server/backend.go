package server

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/api"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

var _ api.Backend = (*Server)(nil)

// rulesOrNotFound returns a channel's namespace rules, or a 404.
func (s *Server) rulesOrNotFound(ch string) (node.Rules, error) {
	rules, ok := s.node.RulesFor(ch)
	if !ok {
		return rules, protocol.Errorf(protocol.CodeNotFound, "channel %q: unknown namespace", ch)
	}
	return rules, nil
}

// Publish implements api.Backend: a publish from the application back end.
func (s *Server) Publish(ctx context.Context, req api.PublishRequest) (broker.PublishResult, error) {
	rules, err := s.rulesOrNotFound(req.Channel)
	if err != nil {
		return broker.PublishResult{}, err
	}
	return s.node.Publish(ctx, rules, node.PublishArgs{
		Channel: req.Channel, Data: req.Data, Priority: req.Priority, Conflate: req.Conflate,
		Key: req.Key, Source: "api",
	})
}

// Disconnect implements api.Backend.
func (s *Server) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	return s.node.Disconnect(ctx, user, code, reason)
}

// Presence implements api.Backend.
func (s *Server) Presence(ctx context.Context, ch string) ([]protocol.ClientInfo, error) {
	rules, err := s.rulesOrNotFound(ch)
	if err != nil {
		return nil, err
	}
	return s.node.PresenceOf(ctx, ch, rules)
}

// History implements api.Backend.
func (s *Server) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	rules, err := s.rulesOrNotFound(ch)
	if err != nil {
		return broker.HistoryResult{}, err
	}
	return s.node.History(ctx, ch, rules, broker.HistoryQuery{Since: since, Limit: limit})
}

// Stats is the node's report for GET /v1/api/stats (and `ferry bench`).
type Stats struct {
	Node        string  `json:"node"`
	Broker      string  `json:"broker"`
	Connections int     `json:"connections"`
	Channels    int     `json:"channels"`
	QueueDepth  int     `json:"queue_depth"`
	Goroutines  int     `json:"goroutines"`
	RSSBytes    int64   `json:"rss_bytes"`
	HeapBytes   uint64  `json:"heap_bytes"`
	StackBytes  uint64  `json:"stack_bytes"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	UptimeSec   float64 `json:"uptime_seconds"`
	Draining    bool    `json:"draining"`
}

// APIStats implements api.Backend.
func (s *Server) APIStats(context.Context) (any, error) { return s.stats(), nil }

// Stats reports the node's counters (also served at GET /v1/api/stats).
func (s *Server) Stats() Stats { return s.stats() }

func (s *Server) stats() Stats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	brokerName := "memory"
	if s.cfg.Broker != "" && s.cfg.Broker != "memory" {
		brokerName = strings.SplitN(s.cfg.Broker, ":", 2)[0]
	}
	return Stats{
		Node:        s.cfg.NodeID,
		Broker:      brokerName,
		Connections: s.reg.Count(),
		Channels:    s.hub.Channels(),
		QueueDepth:  s.reg.QueueDepth(),
		Goroutines:  runtime.NumGoroutine(),
		RSSBytes:    rss(),
		HeapBytes:   ms.HeapInuse,
		StackBytes:  ms.StackInuse,
		CPUSeconds:  cpuSeconds(),
		UptimeSec:   time.Since(s.started).Seconds(),
		Draining:    s.draining.Load(),
	}
}

// rss reads the resident set size from /proc (0 where there is none).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
