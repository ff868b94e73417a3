package protocol

import (
	"strconv"
	"sync"
)

// PreparedMessage is a message frame encoded once and sent to many
// recipients. Only the session sequence number differs between recipients,
// and it is the frame's last field: each codec keeps the frame's bytes up to
// the seq value, and AppendMessage appends them and the recipient's seq.
//
// The JSON body is built by NewPreparedMessage; the MessagePack and
// protobuf bodies the first time a recipient of that codec needs them. A PreparedMessage is safe for
// concurrent use and must not be modified.
type PreparedMessage struct {
	channel  string
	offset   uint64
	epoch    string
	priority Priority
	from     string
	data     RawJSON // compact JSON; a view of json

	// json is the JSON frame up to the seq value:
	// {"type":"message",...,"seq":
	json []byte

	mpOnce sync.Once
	mp     []byte // the MessagePack frame up to the seq value

	// pbOnce guards pb: built on first use by a protobuf recipient, so a
	// deployment without protobuf clients never pays for it.
	pbOnce sync.Once
	pb     []byte // the fields of the ferry.v1.Message before seq
}

const maxUint64Digits = 20

// NewPreparedMessage prepares the message frame for a publication: the
// fields of protocol.Message except seq. The priority is omitted from the
// frame when it is normal (an unknown Priority counts as normal), and from
// when it is empty.
//
// data is stored in compact form (insignificant whitespace removed). It must
// be valid JSON, which Ferry checks where payloads enter; data that is
// empty or not valid JSON is sent as null, so that a frame is never
// malformed.
func NewPreparedMessage(channel string, offset uint64, epoch string, data RawJSON, priority Priority, from string) *PreparedMessage {
	if priority != PriorityCritical && priority != PriorityDroppable {
		priority = PriorityNormal
	}
	p := &PreparedMessage{
		channel:  channel,
		offset:   offset,
		epoch:    epoch,
		priority: priority,
		from:     from,
	}
	const (
		head      = `{"type":"message","channel":`
		offsetKey = `,"offset":`
		epochKey  = `,"epoch":`
		dataKey   = `,"data":`
		prioKey   = `,"priority":`
		fromKey   = `,"from":`
		seqKey    = `,"seq":`
	)
	// Room for everything when no string needs escapes.
	size := len(head) + len(channel) + 2 + len(offsetKey) + maxUint64Digits + len(epochKey) + len(epoch) + 2 +
		len(dataKey) + max(len(data), len("null")) + len(seqKey)
	if priority != PriorityNormal {
		size += len(prioKey) + len(`"droppable"`)
	}
	if from != "" {
		size += len(fromKey) + len(from) + 2
	}
	b := make([]byte, 0, size)
	b = append(b, head...)
	b = appendJSONString(b, channel)
	b = append(b, offsetKey...)
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, epochKey...)
	b = appendJSONString(b, epoch)
	b = append(b, dataKey...)
	dataStart := len(b)
	var err error
	if b, err = appendCompactJSON(b, data); err != nil {
		b = append(b[:dataStart], "null"...)
	}
	dataEnd := len(b)
	if priority != PriorityNormal {
		b = append(b, prioKey...)
		b = append(b, '"')
		b = append(b, priority.String()...)
		b = append(b, '"')
	}
	if from != "" {
		b = append(b, fromKey...)
		b = appendJSONString(b, from)
	}
	b = append(b, seqKey...)
	p.json = b
	p.data = RawJSON(b[dataStart:dataEnd:dataEnd])
	return p
}

// msgpack returns the MessagePack frame up to the seq value, building it on
// first use.
func (p *PreparedMessage) msgpack() []byte {
	p.mpOnce.Do(p.buildMsgpack)
	return p.mp
}

func (p *PreparedMessage) buildMsgpack() {
	fields := uint64(6) // type, channel, offset, epoch, data, seq
	if p.priority != PriorityNormal {
		fields++
	}
	if p.from != "" {
		fields++
	}
	// MessagePack is rarely larger than the JSON form.
	b := make([]byte, 0, len(p.json)+16)
	b = appendMsgpackHeader(b, mpMap, fields)
	b = appendMsgpackString(b, "type")
	b = appendMsgpackString(b, TypeMessage)
	b = appendMsgpackString(b, "channel")
	b = appendMsgpackString(b, p.channel)
	b = appendMsgpackString(b, "offset")
	b = appendMsgpackUint(b, p.offset)
	b = appendMsgpackString(b, "epoch")
	b = appendMsgpackString(b, p.epoch)
	b = appendMsgpackString(b, "data")
	dataStart := len(b)
	var err error
	if b, err = JSONToMsgpack(b, p.data); err != nil {
		// Not after NewPreparedMessage checked the data.
		b = append(b[:dataStart], 0xc0)
	}
	if p.priority != PriorityNormal {
		b = appendMsgpackString(b, "priority")
		b = appendMsgpackString(b, p.priority.String())
	}
	if p.from != "" {
		b = appendMsgpackString(b, "from")
		b = appendMsgpackString(b, p.from)
	}
	b = appendMsgpackString(b, "seq")
	p.mp = b
}

// protobuf returns the fields of the ferry.v1.Message before seq, building
// them on first use.
func (p *PreparedMessage) protobuf() []byte {
	p.pbOnce.Do(func() { p.pb = appendProtobufMessageBody(nil, p) })
	return p.pb
}

// Channel returns the channel the message was published to.
func (p *PreparedMessage) Channel() string { return p.channel }

// Offset returns the message's offset in its channel.
func (p *PreparedMessage) Offset() uint64 { return p.offset }

// Epoch returns the epoch of the channel's stream.
func (p *PreparedMessage) Epoch() string { return p.epoch }

// Priority returns the delivery class.
func (p *PreparedMessage) Priority() Priority { return p.priority }

// Data returns the payload as compact JSON ("null" for none). It shares
// memory with the prepared frame: the caller must not modify it.
func (p *PreparedMessage) Data() RawJSON { return p.data }

// From returns the publisher's user id ("" when not given).
func (p *PreparedMessage) From() string { return p.from }

// Size returns the approximate size of one encoded frame in bytes: the JSON
// frame with the longest seq. Outbound queues bound their bytes with it; the
// MessagePack frame is usually smaller.
func (p *PreparedMessage) Size() int { return len(p.json) + maxUint64Digits + 1 }
