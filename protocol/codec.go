package protocol

import "errors"

// ErrMalformed means the bytes of a message are not a frame or an array of
// frames in the codec's format at all. A connection that sends such bytes is
// closed with CloseProtocolError.
var ErrMalformed = errors.New("malformed message")

// Codec converts between wire messages and frames for one subprotocol.
// Implementations are safe for concurrent use.
type Codec interface {
	// Name is the subprotocol name, e.g. "ferry.v1.json".
	Name() string
	// Binary reports whether messages go in binary WebSocket frames.
	Binary() bool

	// DecodeClient reads one message (a single frame or an array of frames),
	// appending to dst. It returns an error wrapping ErrMalformed when the
	// message is not syntactically valid. An element that is valid but
	// cannot be read as a ClientFrame is returned with Invalid set (and ID
	// when it could be read), so the caller can answer it with an error
	// frame and go on.
	DecodeClient(dst []ClientFrame, msg []byte) ([]ClientFrame, error)

	// AppendFrame appends the encoding of f (after setting its type field).
	AppendFrame(dst []byte, f ServerFrame) ([]byte, error)

	// AppendMessage appends the message frame p prepared for one recipient
	// whose session sequence number is seq. It does not allocate when dst
	// has room.
	AppendMessage(dst []byte, p *PreparedMessage, seq uint64) []byte

	// BeginBatch, BatchSeparator and EndBatch frame n encoded frames as one
	// message (JSON: [a,b]; MessagePack: an array header of n, then the
	// frames).
	BeginBatch(dst []byte, n int) []byte
	BatchSeparator(dst []byte) []byte
	EndBatch(dst []byte) []byte
}

// CodecFor returns the codec for a subprotocol name ("" means JSON), or nil.
func CodecFor(subprotocol string) Codec {
	switch subprotocol {
	case "", SubprotocolJSON:
		return JSON
	case SubprotocolMsgpack:
		return Msgpack
	case SubprotocolProtobuf:
		return Protobuf
	}
	return nil
}
