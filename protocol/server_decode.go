package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// ServerMessage holds the fields of every frame a server sends, as a client
// reads them; Type says which apply. Field names and types follow the frame
// structs above (Connected, Subscribed, Message, ...), so that the server
// and the SDKs share one wire model: DecodeServer reads what AppendFrame and
// AppendMessage write (a round-trip test ties them together).
type ServerMessage struct {
	Type string `json:"type" msgpack:"type"`
	ID   uint32 `json:"id,omitempty" msgpack:"id,omitempty"`

	// connected
	Session     string    `json:"session,omitempty" msgpack:"session,omitempty"`
	ResumeToken string    `json:"resume_token,omitempty" msgpack:"resume_token,omitempty"`
	Node        string    `json:"node,omitempty" msgpack:"node,omitempty"`
	User        string    `json:"user,omitempty" msgpack:"user,omitempty"`
	Heartbeat   Heartbeat `json:"heartbeat" msgpack:"heartbeat"`
	Limits      Limits    `json:"limits" msgpack:"limits"`
	Resumed     bool      `json:"resumed,omitempty" msgpack:"resumed,omitempty"`
	ExpiresAt   int64     `json:"expires_at,omitempty" msgpack:"expires_at,omitempty"`

	// subscribed, unsubscribed, message, published, history, presence,
	// join, leave
	Channel   string  `json:"channel,omitempty" msgpack:"channel,omitempty"`
	Offset    uint64  `json:"offset,omitempty" msgpack:"offset,omitempty"`
	Epoch     string  `json:"epoch,omitempty" msgpack:"epoch,omitempty"`
	Recovered bool    `json:"recovered,omitempty" msgpack:"recovered,omitempty"`
	Missed    uint64  `json:"missed,omitempty" msgpack:"missed,omitempty"`
	Data      RawJSON `json:"data,omitempty" msgpack:"data,omitempty"`
	Priority  string  `json:"priority,omitempty" msgpack:"priority,omitempty"`
	From      string  `json:"from,omitempty" msgpack:"from,omitempty"`
	Seq       uint64  `json:"seq,omitempty" msgpack:"seq,omitempty"`
	Duplicate bool    `json:"duplicate,omitempty" msgpack:"duplicate,omitempty"`
	Conn      string  `json:"conn,omitempty" msgpack:"conn,omitempty"`

	Messages []HistoryMessage `json:"messages,omitempty" msgpack:"messages,omitempty"`
	Clients  []ClientInfo     `json:"clients,omitempty" msgpack:"clients,omitempty"`
	Count    int              `json:"count,omitempty" msgpack:"count,omitempty"`

	// error, disconnect (and the reason of unsubscribed)
	Code         int    `json:"code,omitempty" msgpack:"code,omitempty"`
	Reason       string `json:"reason,omitempty" msgpack:"reason,omitempty"`
	Retry        bool   `json:"retry,omitempty" msgpack:"retry,omitempty"`
	Reconnect    bool   `json:"reconnect,omitempty" msgpack:"reconnect,omitempty"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty" msgpack:"retry_after_ms,omitempty"`

	// upload.ready, upload.progress, upload.done (Offset above is the
	// upload's offset)
	Upload string `json:"upload,omitempty" msgpack:"upload,omitempty"`
	Size   int64  `json:"size,omitempty" msgpack:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty" msgpack:"sha256,omitempty"`
	URL    string `json:"url,omitempty" msgpack:"url,omitempty"`
}

// DecodeServer reads one message from a server, a frame or an array of
// frames (a batch) in codec's encoding (for Protobuf, a ferry.v1.Batch),
// appending to dst. It returns an
// error wrapping ErrMalformed when the message cannot be read, and one
// naming the codec when there is no server-frame decoder for it.
func DecodeServer(codec Codec, dst []ServerMessage, msg []byte) ([]ServerMessage, error) {
	switch codec.Name() {
	case JSON.Name():
		return decodeServerJSON(dst, msg)
	case Msgpack.Name():
		return decodeServerMsgpack(dst, msg)
	case Protobuf.Name():
		return decodeServerProtobuf(dst, msg)
	}
	return dst, fmt.Errorf("decode server message: no decoder for codec %q", codec.Name())
}

func decodeServerJSON(dst []ServerMessage, msg []byte) ([]ServerMessage, error) {
	trimmed := bytes.TrimLeft(msg, " \t\r\n")
	if len(trimmed) == 0 {
		return dst, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	switch trimmed[0] {
	case '{':
		var f ServerMessage
		if err := json.Unmarshal(msg, &f); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return append(dst, f), nil
	case '[':
		var fs []ServerMessage
		if err := json.Unmarshal(msg, &fs); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if len(fs) > MaxFramesPerMessage {
			return dst, fmt.Errorf("%w: %d frames in one message", ErrMalformed, len(fs))
		}
		return append(dst, fs...), nil
	}
	return dst, fmt.Errorf("%w: not a JSON object or array", ErrMalformed)
}

func decodeServerMsgpack(dst []ServerMessage, msg []byte) ([]ServerMessage, error) {
	if len(msg) == 0 {
		return dst, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(msg))
	c := msg[0]
	isArray := c&0xf0 == 0x90 || c == 0xdc || c == 0xdd
	if !isArray {
		var f ServerMessage
		if err := dec.Decode(&f); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return append(dst, f), nil
	}
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if n < 0 || n > MaxFramesPerMessage {
		return dst, fmt.Errorf("%w: batch of %d frames", ErrMalformed, n)
	}
	for range n {
		var f ServerMessage
		if err := dec.Decode(&f); err != nil {
			return dst, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		dst = append(dst, f)
	}
	return dst, nil
}
