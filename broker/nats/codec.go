package nats

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ferry-io/ferry/broker"
)

// Headers of a channel message, in the stream and on the fan-out subject.
// The payload is the publication's Data.
const (
	hdrOffset   = "Ferry-Offset"   // the channel offset, decimal
	hdrEpoch    = "Ferry-Epoch"    // the channel epoch
	hdrPrev     = "Ferry-Prev"     // stream sequence of the channel's previous message (0: none)
	hdrSeq      = "Ferry-Seq"      // stream sequence of this message (fan-out copies only)
	hdrSize     = "Ferry-Size"     // PublishOptions.HistorySize in force
	hdrTTL      = "Ferry-TTL"      // PublishOptions.HistoryTTL in force, milliseconds
	hdrTime     = "Ferry-Time"     // Publication.Time, unix milliseconds
	hdrPriority = "Ferry-Priority" // Publication.Priority
	hdrConflate = "Ferry-Conflate" // Publication.Conflate
	hdrFrom     = "Ferry-From"     // Publication.From
	hdrChannel  = "Ferry-Channel"  // the channel name
)

// hdrKVOperation is the header JetStream KV marks deletions with.
const hdrKVOperation = "KV-Operation"

// token encodes s as one NATS subject token (or KV key part): base64url
// without padding, so that any channel, user or key name is safe in a
// subject whatever dots, wildcards or spaces it holds.
func token(s string) string {
	if s == "" {
		return "_" // base64 never yields "_" alone, so this cannot collide
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// entry is a channel message as stored: the publication, where it sits in
// the stream, and the history limits in force when it was published.
type entry struct {
	pub  broker.Publication
	seq  uint64 // stream sequence
	prev uint64 // stream sequence of the channel's previous message
	size int
	ttl  time.Duration
}

// header builds the headers of e (without hdrSeq).
func (e *entry) header() nats.Header {
	h := nats.Header{}
	h.Set(hdrChannel, e.pub.Channel)
	h.Set(hdrOffset, strconv.FormatUint(e.pub.Offset, 10))
	h.Set(hdrEpoch, e.pub.Epoch)
	h.Set(hdrPrev, strconv.FormatUint(e.prev, 10))
	h.Set(hdrSize, strconv.Itoa(e.size))
	h.Set(hdrTTL, strconv.FormatInt(e.ttl.Milliseconds(), 10))
	h.Set(hdrTime, strconv.FormatInt(e.pub.Time, 10))
	if e.pub.Priority != 0 {
		h.Set(hdrPriority, strconv.Itoa(int(e.pub.Priority)))
	}
	if e.pub.Conflate != "" {
		h.Set(hdrConflate, e.pub.Conflate)
	}
	if e.pub.From != "" {
		h.Set(hdrFrom, e.pub.From)
	}
	return h
}

// decodeEntry reads a message written by entry.header; seq is its stream
// sequence (0: take it from hdrSeq, as on the fan-out subject).
func decodeEntry(h nats.Header, data []byte, seq uint64) (entry, error) {
	var e entry
	var err error
	num := func(name string) uint64 {
		if err != nil {
			return 0
		}
		v := h.Get(name)
		if v == "" {
			return 0
		}
		n, perr := strconv.ParseUint(v, 10, 64)
		if perr != nil {
			err = fmt.Errorf("%w: header %s=%q", errMalformed, name, v)
		}
		return n
	}
	e.pub.Channel = h.Get(hdrChannel)
	e.pub.Offset = num(hdrOffset)
	e.pub.Epoch = h.Get(hdrEpoch)
	e.prev = num(hdrPrev)
	e.size = int(num(hdrSize))
	e.ttl = time.Duration(num(hdrTTL)) * time.Millisecond
	e.pub.Time = int64(num(hdrTime))
	pri := num(hdrPriority)
	e.seq = seq
	if seq == 0 {
		e.seq = num(hdrSeq)
	}
	if err != nil {
		return entry{}, err
	}
	if e.pub.Offset == 0 || e.pub.Epoch == "" || pri > 255 {
		return entry{}, fmt.Errorf("%w: offset %d, epoch %q, priority %d", errMalformed, e.pub.Offset, e.pub.Epoch, pri)
	}
	e.pub.Priority = uint8(pri)
	e.pub.Conflate = h.Get(hdrConflate)
	e.pub.From = h.Get(hdrFrom)
	e.pub.Data = data
	return e, nil
}

// retained reports whether m is still in the history at now: within the
// size of the channel's latest message e (a smaller size on a later publish
// applies to the whole history) and within the ttl m was published with.
func (e *entry) retained(m *entry, now time.Time) bool {
	o := m.pub.Offset
	if o > e.pub.Offset || e.pub.Offset-o >= uint64(e.size) {
		return false
	}
	return m.ttl <= 0 || m.pub.Time > now.Add(-m.ttl).UnixMilli()
}

func randomHex(n int) string {
	return hex.EncodeToString(randomBytes(n))
}

func randomBytes(n int) []byte {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return buf
}
