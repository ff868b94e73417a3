package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Position is a place in a channel's stream: the offset of the last message
// seen and the epoch of the stream it belongs to. The zero Position is the
// start of any stream.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Message is one publication on a channel.
type Message struct {
	Channel string
	// Offset is the message's place in the channel (1, 2, ...), unique
	// within Epoch.
	Offset uint64
	// Epoch names the channel's stream; it changes when the server lost the
	// channel's history.
	Epoch string
	// Data is the payload as JSON (also when it travelled as MessagePack).
	Data json.RawMessage
	// Priority is "critical", "droppable" or "" (normal).
	Priority string
	// From is the publisher's user id ("" for the server API).
	From string
}

// Decode unmarshals the payload into v.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("message %s@%d: %w", m.Channel, m.Offset, err)
	}
	return nil
}

// Bytes returns the bytes of a binary payload ({"$bin": base64}, see
// protocol.BinaryKey), and false when the payload is not one. Publish
// binary with protocol.BinaryJSON(b) as data; over ferry.v1.protobuf the
// bytes travel as they are.
func (m Message) Bytes() ([]byte, bool) { return protocol.RawJSON(m.Data).Binary() }

// Position returns the message's position.
func (m Message) Position() Position { return Position{Offset: m.Offset, Epoch: m.Epoch} }

// Gap reports messages of a channel that the client will not get: the server
// answered a subscription (a re-subscription after a reconnect, or a restored
// one) with recovered: false, because the history no longer holds them or
// the stream changed epoch.
type Gap struct {
	Channel string
	// Missed is how many messages were lost, as the server counts them.
	Missed uint64
	// Epoch is the channel's epoch now; PrevEpoch the one the client had
	// (they differ when the stream was reset).
	Epoch     string
	PrevEpoch string
	// After is the last position the client had delivered.
	After Position
}

// PresenceEvent is a join or leave in a channel (for subscriptions made with
// WithPresence where the namespace sends them).
type PresenceEvent struct {
	Channel string
	User    string
	Conn    string
	Leave   bool
}

// ClientInfo names one connection present in a channel.
type ClientInfo = protocol.ClientInfo

// PublishResult says where a publish landed.
type PublishResult struct {
	Offset uint64
	Epoch  string
	// Duplicate is true when the server had already applied a publish with
	// the same key (a retry): Offset and Epoch are the original's.
	Duplicate bool
}

// HistoryResult is a page of a channel's retained messages, oldest first,
// with the channel's latest position.
type HistoryResult struct {
	Messages []Message
	Offset   uint64
	Epoch    string
}

// PresenceResult lists the connections present in a channel.
type PresenceResult struct {
	Clients []ClientInfo
	Count   int
}

// State is the client's connection state.
type State int

const (
	// StateDisconnected: not connected; a connection attempt follows
	// (after a delay) unless the client is closed. The state of a new
	// client before Connect.
	StateDisconnected State = iota
	// StateConnecting: an attempt is under way.
	StateConnecting
	// StateConnected: the server answered connect.
	StateConnected
	// StateClosed: the client stopped for good (Close, or a close code
	// after which it must not reconnect; see Err).
	StateClosed
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateDisconnected:
		return "disconnected"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange describes a transition, for Config.OnState.
type StateChange struct {
	State State
	Prev  State
	// Err is why the connection ended or the attempt failed
	// (StateDisconnected), or why the client stopped (StateClosed; nil
	// after Close).
	Err error
	// Code is the close code the server sent, 0 when there was none.
	Code int
	// RetryIn is the delay before the next attempt (StateDisconnected).
	RetryIn time.Duration
	// Resumed is true when the server resumed the session (StateConnected).
	Resumed bool
}

// Stats are the client's counters since New.
type Stats struct {
	// Connects counts connections that reached StateConnected.
	Connects int
	// Resumed counts connections on which the server resumed the session.
	Resumed int
	// ResumeFallbacks counts resumed connections dropped because the
	// server's replay would have skipped messages (see the package doc).
	ResumeFallbacks int
	// Delivered counts messages handed to the application.
	Delivered int
	// DuplicatesDropped counts messages dropped because their offset was
	// already delivered (replays).
	DuplicatesDropped int
	// PublishRetries counts publish frames sent again on a new connection.
	PublishRetries int
	// Gaps counts Gap reports.
	Gaps int
}
