package server

import (
	"context"
	"encoding/json"
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

// apiBackend is the server as the server API's handlers see it
// (api.Backend): an unexported adapter, so that the internal request types
// stay out of the Server's public methods.
type apiBackend struct{ s *Server }

var _ api.Backend = apiBackend{}

func (b apiBackend) Publish(ctx context.Context, req api.PublishRequest) (broker.PublishResult, error) {
	return b.s.publish(ctx, req.Channel, req.Data, publishOptions{key: req.Key, priority: req.Priority, conflate: req.Conflate})
}

func (b apiBackend) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	return b.s.Disconnect(ctx, user, code, reason)
}

func (b apiBackend) Presence(ctx context.Context, ch string) ([]protocol.ClientInfo, error) {
	return b.s.Presence(ctx, ch)
}

func (b apiBackend) History(ctx context.Context, ch string, since *broker.Position, limit int) (broker.HistoryResult, error) {
	return b.s.History(ctx, ch, since, limit)
}

func (b apiBackend) APIStats(context.Context) (any, error) { return b.s.stats(), nil }

// rulesOrNotFound returns a channel's namespace rules, or a 404.
func (s *Server) rulesOrNotFound(ch string) (node.Rules, error) {
	rules, ok := s.node.RulesFor(ch)
	if !ok {
		return rules, protocol.Errorf(protocol.CodeNotFound, "channel %q: unknown namespace", ch)
	}
	return rules, nil
}

// PublishOption shapes one Publish.
type PublishOption func(*publishOptions)

type publishOptions struct {
	key      string
	priority string
	conflate string
}

// WithKey makes the publish idempotent: a repeat with the same key on the
// same channel within the idempotency window (Config.Idempotency) is not
// published again, and its result has Duplicate set.
func WithKey(key string) PublishOption { return func(o *publishOptions) { o.key = key } }

// WithPriority sets the delivery class, "critical", "normal" or
// "droppable", instead of the namespace's default.
func WithPriority(priority string) PublishOption {
	return func(o *publishOptions) { o.priority = priority }
}

// WithConflate lets a newer message with the same key replace an older
// one not yet sent to a connection.
func WithConflate(key string) PublishOption { return func(o *publishOptions) { o.conflate = key } }

// Publish publishes data, a JSON value, on channel as the server (no
// user), under the channel's namespace rules. Errors are *protocol.Error
// values carrying the code a client would see (bad input, unknown
// namespace, broker unavailable).
func (s *Server) Publish(ctx context.Context, channel string, data []byte, opts ...PublishOption) (broker.PublishResult, error) {
	if err := protocol.ValidChannel(channel); err != nil {
		return broker.PublishResult{}, protocol.Errorf(protocol.CodeBadRequest, "channel: %v", err)
	}
	if !json.Valid(data) {
		return broker.PublishResult{}, protocol.Errorf(protocol.CodeBadRequest, "data: not a JSON value")
	}
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	return s.publish(ctx, channel, data, o)
}

// publish is a publish from the application back end (the Go API or the
// server API).
func (s *Server) publish(ctx context.Context, channel string, data []byte, o publishOptions) (broker.PublishResult, error) {
	rules, err := s.rulesOrNotFound(channel)
	if err != nil {
		return broker.PublishResult{}, err
	}
	return s.node.Publish(ctx, rules, node.PublishArgs{
		Channel: channel, Data: data, Priority: o.priority, Conflate: o.conflate,
		Key: o.key, Source: "api",
	})
}

// Disconnect closes every connection of user in the cluster with code and
// reason, and returns how many this node closed.
func (s *Server) Disconnect(ctx context.Context, user string, code int, reason string) (int, error) {
	return s.node.Disconnect(ctx, user, code, reason)
}

// Presence lists who is in channel ch, where its namespace tracks presence.
func (s *Server) Presence(ctx context.Context, ch string) ([]protocol.ClientInfo, error) {
	rules, err := s.rulesOrNotFound(ch)
	if err != nil {
		return nil, err
	}
	return s.node.PresenceOf(ctx, ch, rules)
}

// History reads channel ch's retained messages after since (nil: from the
// start), at most limit (0: all retained), where its namespace keeps
// history.
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
		Channels:    s.clientChannels(),
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
