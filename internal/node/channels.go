package node

import (
	"context"
	"errors"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/protocol"
)

// The channel operations a client frame and the server API share, once
// the caller has checked that the caller may act on the channel: the
// namespace's rules applied, the broker called, the outcome counted and
// its error mapped to a protocol error.

// PublishArgs is one publish, from a client or from the server API.
type PublishArgs struct {
	Channel  string
	Data     []byte
	Priority string // "" = the namespace's default
	Conflate string
	Key      string // idempotency key
	From     string // publisher user id, "" for the server API
	Source   string // "client" or "api", for metrics
}

// Publish publishes under the channel's namespace rules.
func (n *Node) Publish(ctx context.Context, rules Rules, a PublishArgs) (broker.PublishResult, error) {
	prio := rules.Priority
	if a.Priority != "" {
		p, err := protocol.ParsePriority(a.Priority)
		if err != nil {
			return broker.PublishResult{}, err
		}
		prio = p
	}
	start := time.Now()
	res, err := n.broker.Publish(ctx, a.Channel, broker.Publication{
		Data:     a.Data,
		Priority: uint8(prio),
		Conflate: a.Conflate,
		From:     a.From,
	}, broker.PublishOptions{
		HistorySize:       rules.HistorySize,
		HistoryTTL:        rules.HistoryTTL,
		IdempotencyKey:    a.Key,
		IdempotencyWindow: n.idempotencyWindow,
	})
	if err != nil {
		n.metrics.BrokerError("publish")
		return res, BrokerError("publish", err)
	}
	n.metrics.BrokerLatency(metrics.OpPublish, time.Since(start))
	n.metrics.Published(a.Source)
	n.metrics.PublishedTo(a.Channel)
	if res.Duplicate {
		n.metrics.PublishDuplicate()
	}
	return res, nil
}

// History reads a channel's history where its namespace keeps one.
func (n *Node) History(ctx context.Context, ch string, rules Rules, q broker.HistoryQuery) (broker.HistoryResult, error) {
	if rules.HistorySize <= 0 {
		return broker.HistoryResult{}, protocol.Errorf(protocol.CodeNotFound, "history is not kept for channel %q", ch)
	}
	start := time.Now()
	res, err := n.broker.History(ctx, ch, q)
	if err != nil {
		return res, BrokerError("history", err)
	}
	n.metrics.BrokerLatency(metrics.OpHistory, time.Since(start))
	return res, nil
}

// PresenceOf lists who is in a channel where its namespace tracks presence.
func (n *Node) PresenceOf(ctx context.Context, ch string, rules Rules) ([]protocol.ClientInfo, error) {
	if !rules.Presence || n.presence == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "presence is not tracked for channel %q", ch)
	}
	infos, err := n.presence.Presence(ctx, ch)
	if err != nil {
		return nil, BrokerError("presence", err)
	}
	out := make([]protocol.ClientInfo, len(infos))
	for i, in := range infos {
		out[i] = protocol.ClientInfo{User: in.User, Conn: in.Conn}
	}
	return out, nil
}

// HistoryMessage converts a publication for a history reply.
func HistoryMessage(p *broker.Publication) protocol.HistoryMessage {
	m := protocol.HistoryMessage{Offset: p.Offset, Epoch: p.Epoch, Data: p.Data, From: p.From, Time: p.Time}
	if p.Priority != 0 {
		m.Priority = protocol.Priority(p.Priority).String()
	}
	return m
}

// BrokerError maps a broker failure to the protocol error a client or an
// API caller sees: 503 (retry) when the broker is unreachable, timed out or
// shutting down; a protocol error as it is; 500 otherwise.
func BrokerError(op string, err error) error {
	if errors.Is(err, broker.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, broker.ErrClosed) {
		return &protocol.Error{Code: protocol.CodeUnavailable, Reason: op + ": broker unavailable", Retry: true}
	}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &protocol.Error{Code: protocol.CodeInternal, Reason: op + ": " + err.Error(), Retry: true}
}
