package rabbitmq

import (
	"encoding/json"
	"fmt"

	"github.com/ferry-io/ferry/broker"
)

// Record kinds in a shard stream.
const (
	// kindPub is an accepted publication.
	kindPub = "pub"
	// kindMark is a marker a new writer appends to find the end of the
	// stream while it reads it back (see writer.recover).
	kindMark = "mark"
)

// record is one entry of a shard's stream, and the body of a publication
// fanned out to nodes. It carries the publication and the bounds of its
// publish, so that a writer reading the stream back rebuilds exactly the
// state the previous writer had.
type record struct {
	Kind     string `json:"k"`
	Channel  string `json:"c,omitempty"`
	Offset   uint64 `json:"o,omitempty"`
	Epoch    string `json:"e,omitempty"`
	Data     []byte `json:"d,omitempty"`
	Priority uint8  `json:"p,omitempty"`
	Conflate string `json:"f,omitempty"`
	From     string `json:"u,omitempty"`
	Time     int64  `json:"t,omitempty"`

	HistorySize int    `json:"hs,omitempty"`
	HistoryTTL  int64  `json:"ht,omitempty"` // nanoseconds
	StreamTTL   int64  `json:"st,omitempty"` // nanoseconds
	IdemKey     string `json:"ik,omitempty"`
	IdemWindow  int64  `json:"iw,omitempty"` // nanoseconds
	// Request is the id of the publish request that made this record, so
	// that a request redelivered to a new writer is not applied twice.
	Request string `json:"r,omitempty"`
	// Mark is the marker's id (kindMark).
	Mark string `json:"m,omitempty"`

	// Presence, user and key-value records (the kinds are their ops).
	User    string `json:"us,omitempty"`
	Conn    string `json:"cn,omitempty"`
	Node    string `json:"nd,omitempty"`
	Since   int64  `json:"sn,omitempty"` // unix nanoseconds
	Key     string `json:"ky,omitempty"`
	Val     []byte `json:"v,omitempty"`
	Expires int64  `json:"x,omitempty"` // unix milliseconds; 0: never
	// TTL is sent by the requester (nanoseconds); the writer turns it into
	// Expires by its own clock before it appends the record.
	TTL int64 `json:"ttl,omitempty"`
	// Keep is a user record's per-user limit: the reply names the user's
	// connections beyond the Keep newest (0: none).
	Keep int `json:"kp,omitempty"`
}

func (r *record) publication() *broker.Publication {
	return &broker.Publication{
		Channel:  r.Channel,
		Offset:   r.Offset,
		Epoch:    r.Epoch,
		Data:     r.Data,
		Priority: r.Priority,
		Conflate: r.Conflate,
		From:     r.From,
		Time:     r.Time,
	}
}

// Request operations, sent to a shard's writer.
// The ops that change state are also the kinds of their stream records,
// replayed in order by a new writer.
const (
	opPublish        = "publish"
	opHistory        = "history"
	opPresenceAdd    = "presence.add"
	opPresenceRemove = "presence.remove"
	opPresenceList   = "presence.list"
	opUserAdd        = "user.add"
	opUserRemove     = "user.remove"
	opKVSet          = "kv.set"
	opKVGet          = "kv.get"
	opKVTake         = "kv.take"
	opKVDelete       = "kv.delete"
	opLock           = "lock.try"
	opLockRefresh    = "lock.refresh"
	opUnlock         = "lock.unlock"
)

// request is a call to a shard's writer.
type request struct {
	Op string `json:"op"`
	// Shards is the sender's Config.Shards; a writer configured otherwise
	// refuses the request, since the two nodes hash channels differently.
	Shards int `json:"n"`
	// Publish: the record to append (Offset, Epoch and Time unset).
	Rec *record `json:"rec,omitempty"`
	// History.
	Channel    string `json:"c,omitempty"`
	HasSince   bool   `json:"hs,omitempty"`
	SinceOff   uint64 `json:"so,omitempty"`
	SinceEpoch string `json:"se,omitempty"`
	Limit      int    `json:"l,omitempty"`
}

// reply is a writer's answer.
type reply struct {
	// Err is set when the writer could not do the request.
	Err string `json:"err,omitempty"`

	Offset    uint64               `json:"o,omitempty"`
	Epoch     string               `json:"e,omitempty"`
	Duplicate bool                 `json:"dup,omitempty"`
	Complete  bool                 `json:"ok,omitempty"`
	Messages  []broker.Publication `json:"m,omitempty"`

	Presence []broker.PresenceInfo `json:"pr,omitempty"`
	Conns    []broker.ConnRef      `json:"cs,omitempty"`
	Val      []byte                `json:"v,omitempty"`
	NotFound bool                  `json:"nf,omitempty"`
}

func newPublishRequest(ch string, p broker.Publication, o broker.PublishOptions, id string) *request {
	streamTTL, window := o.StreamTTL, o.IdempotencyWindow
	positive(&streamTTL, DefaultStreamTTL)
	positive(&window, DefaultIdempotencyWindow)
	return &request{Op: opPublish, Rec: &record{
		Kind:        kindPub,
		Channel:     ch,
		Data:        p.Data,
		Priority:    p.Priority,
		Conflate:    p.Conflate,
		From:        p.From,
		HistorySize: o.HistorySize,
		HistoryTTL:  int64(o.HistoryTTL),
		StreamTTL:   int64(streamTTL),
		IdemKey:     o.IdempotencyKey,
		IdemWindow:  int64(window),
		Request:     id,
	}}
}

func newHistoryRequest(ch string, q broker.HistoryQuery) *request {
	r := &request{Op: opHistory, Channel: ch, Limit: q.Limit}
	if q.Since != nil {
		r.HasSince, r.SinceOff, r.SinceEpoch = true, q.Since.Offset, q.Since.Epoch
	}
	return r
}

func (r *request) query() broker.HistoryQuery {
	q := broker.HistoryQuery{Limit: r.Limit}
	if r.HasSince {
		q.Since = &broker.Position{Offset: r.SinceOff, Epoch: r.SinceEpoch}
	}
	return q
}

// decode unmarshals a message body, marking failures as malformed.
func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
	return nil
}
