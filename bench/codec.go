package bench

import (
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
)

// Codec names for Config.Codec (ferry bench --codec).
const (
	CodecJSON     = "json"
	CodecMsgpack  = "msgpack"
	CodecProtobuf = "protobuf"
)

// wireCodec is how a group's connections encode frames: the subprotocol
// they ask for, the opcode of their messages, and, for the binary codecs,
// the conversion of server messages to the JSON the frame scanner reads.
type wireCodec struct {
	codec protocol.Codec
	op    byte // opText or opBinary
}

// codecNamed resolves a Config.Codec name ("" is json).
func codecNamed(name string) (wireCodec, error) {
	switch name {
	case "", CodecJSON:
		return wireCodec{codec: protocol.JSON, op: opText}, nil
	case CodecMsgpack:
		return wireCodec{codec: protocol.Msgpack, op: opBinary}, nil
	case CodecProtobuf:
		return wireCodec{codec: protocol.Protobuf, op: opBinary}, nil
	}
	return wireCodec{}, fmt.Errorf("%w: unknown codec %q (json, msgpack or protobuf)", ErrConfig, name)
}

// encode encodes one client frame as a whole message. It runs at connect,
// subscribe and, with PublishWS, per publish of a binary codec; the JSON
// publish path writes its frames by hand.
func (w wireCodec) encode(f *protocol.ClientFrame) ([]byte, error) {
	var b []byte
	var err error
	switch w.codec {
	case protocol.Msgpack:
		b, err = msgpack.Marshal(f)
	case protocol.Protobuf:
		b, err = protocol.AppendProtobufClientFrame(nil, f)
	default:
		b, err = json.Marshal(f)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	return b, nil
}

// asJSON returns a server message as the JSON the frame scanner reads (the
// message itself for JSON). The binary codecs cost the bench client a
// conversion per message; the server's cost, which is what --codec
// compares, is untouched by it.
func (w wireCodec) asJSON(dst, msg []byte) ([]byte, error) {
	switch w.codec {
	case protocol.Msgpack:
		// Server maps keep the field order of the JSON frames, so the
		// converted text has "type" first and "data":{"ts": as the
		// scanner expects.
		return protocol.MsgpackToJSON(dst, msg)
	case protocol.Protobuf:
		frames, err := protocol.DecodeProtobufServer(nil, msg)
		if err != nil {
			return dst, err
		}
		if len(frames) != 1 {
			dst = protocol.JSON.BeginBatch(dst, len(frames))
		}
		for i, f := range frames {
			if i > 0 {
				dst = protocol.JSON.BatchSeparator(dst)
			}
			if dst, err = protocol.JSON.AppendFrame(dst, f); err != nil {
				return dst, err
			}
		}
		if len(frames) != 1 {
			dst = protocol.JSON.EndBatch(dst)
		}
		return dst, nil
	}
	return msg, nil
}
