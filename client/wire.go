package client

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
)

// serverFrame holds the fields of every server frame the client reads; Type
// says which apply. Field names and types follow protocol's frame structs.
type serverFrame struct {
	Type string `json:"type" msgpack:"type"`
	ID   uint32 `json:"id,omitempty" msgpack:"id,omitempty"`

	// connected
	Session     string             `json:"session,omitempty" msgpack:"session,omitempty"`
	ResumeToken string             `json:"resume_token,omitempty" msgpack:"resume_token,omitempty"`
	Node        string             `json:"node,omitempty" msgpack:"node,omitempty"`
	User        string             `json:"user,omitempty" msgpack:"user,omitempty"`
	Heartbeat   protocol.Heartbeat `json:"heartbeat" msgpack:"heartbeat"`
	Limits      protocol.Limits    `json:"limits" msgpack:"limits"`
	Resumed     bool               `json:"resumed,omitempty" msgpack:"resumed,omitempty"`
	ExpiresAt   int64              `json:"expires_at,omitempty" msgpack:"expires_at,omitempty"`

	// subscribed, unsubscribed, message, published, history, presence,
	// join, leave
	Channel   string           `json:"channel,omitempty" msgpack:"channel,omitempty"`
	Offset    uint64           `json:"offset,omitempty" msgpack:"offset,omitempty"`
	Epoch     string           `json:"epoch,omitempty" msgpack:"epoch,omitempty"`
	Recovered bool             `json:"recovered,omitempty" msgpack:"recovered,omitempty"`
	Missed    uint64           `json:"missed,omitempty" msgpack:"missed,omitempty"`
	Data      protocol.RawJSON `json:"data,omitempty" msgpack:"data,omitempty"`
	Priority  string           `json:"priority,omitempty" msgpack:"priority,omitempty"`
	From      string           `json:"from,omitempty" msgpack:"from,omitempty"`
	Seq       uint64           `json:"seq,omitempty" msgpack:"seq,omitempty"`
	Duplicate bool             `json:"duplicate,omitempty" msgpack:"duplicate,omitempty"`
	Conn      string           `json:"conn,omitempty" msgpack:"conn,omitempty"`

	Messages []protocol.HistoryMessage `json:"messages,omitempty" msgpack:"messages,omitempty"`
	Clients  []protocol.ClientInfo     `json:"clients,omitempty" msgpack:"clients,omitempty"`
	Count    int                       `json:"count,omitempty" msgpack:"count,omitempty"`

	// error, disconnect (and the reason of unsubscribed)
	Code         int    `json:"code,omitempty" msgpack:"code,omitempty"`
	Reason       string `json:"reason,omitempty" msgpack:"reason,omitempty"`
	Retry        bool   `json:"retry,omitempty" msgpack:"retry,omitempty"`
	Reconnect    bool   `json:"reconnect,omitempty" msgpack:"reconnect,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty" msgpack:"retry_after_ms,omitempty"`
}

// maxBatch is the most frames decoded from one message (the protocol's own
// bound on batches).
const maxBatch = protocol.MaxFramesPerMessage

// decodeServer reads one message from the server: a frame, or an array of
// frames (a batch), in the encoding w.
func decodeServer(dst []serverFrame, msg []byte, w wireFormat) ([]serverFrame, error) {
	switch w {
	case wireMsgpack:
		return decodeMsgpack(dst, msg)
	case wireProtobuf:
		return decodeProtobuf(dst, msg)
	}
	trimmed := bytes.TrimLeft(msg, " \t\r\n")
	if len(trimmed) == 0 {
		return dst, fmt.Errorf("%w: empty message", protocol.ErrMalformed)
	}
	switch trimmed[0] {
	case '{':
		var f serverFrame
		if err := json.Unmarshal(msg, &f); err != nil {
			return dst, fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
		}
		return append(dst, f), nil
	case '[':
		var fs []serverFrame
		if err := json.Unmarshal(msg, &fs); err != nil {
			return dst, fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
		}
		if len(fs) > maxBatch {
			return dst, fmt.Errorf("%w: %d frames in one message", protocol.ErrMalformed, len(fs))
		}
		return append(dst, fs...), nil
	}
	return dst, fmt.Errorf("%w: not a JSON object or array", protocol.ErrMalformed)
}

func decodeMsgpack(dst []serverFrame, msg []byte) ([]serverFrame, error) {
	if len(msg) == 0 {
		return dst, fmt.Errorf("%w: empty message", protocol.ErrMalformed)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(msg))
	c := msg[0]
	isArray := c&0xf0 == 0x90 || c == 0xdc || c == 0xdd
	if !isArray {
		var f serverFrame
		if err := dec.Decode(&f); err != nil {
			return dst, fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
		}
		return append(dst, f), nil
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return dst, fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
	}
	if n < 0 || n > maxBatch {
		return dst, fmt.Errorf("%w: batch of %d frames", protocol.ErrMalformed, n)
	}
	for range n {
		var f serverFrame
		if err := dec.Decode(&f); err != nil {
			return dst, fmt.Errorf("%w: %v", protocol.ErrMalformed, err)
		}
		dst = append(dst, f)
	}
	return dst, nil
}

// encodeClient encodes frames as one message: a frame alone, or a batch
// (JSON array, MessagePack array, protobuf Batch).
func encodeClient(frames []protocol.ClientFrame, w wireFormat) ([]byte, error) {
	switch w {
	case wireProtobuf:
		return encodeProtobuf(frames)
	case wireMsgpack:
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		if len(frames) != 1 {
			if err := enc.EncodeArrayLen(len(frames)); err != nil {
				return nil, err
			}
		}
		for i := range frames {
			if err := enc.Encode(&frames[i]); err != nil {
				return nil, fmt.Errorf("encode %s frame: %w", frames[i].Type, err)
			}
		}
		return buf.Bytes(), nil
	}
	var v any = frames
	if len(frames) == 1 {
		v = &frames[0]
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return b, nil
}

// messageOf converts a message frame.
func messageOf(f *serverFrame) Message {
	return Message{
		Channel:  f.Channel,
		Offset:   f.Offset,
		Epoch:    f.Epoch,
		Data:     rawData(f.Data),
		Priority: f.Priority,
		From:     f.From,
	}
}

// serverError converts an error frame.
func serverError(f *serverFrame) *ServerError {
	return &ServerError{Code: f.Code, Reason: f.Reason, Retry: f.Retry}
}
