package client

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
)

// decodeServer reads one message from the server (a frame, or a batch)
// with protocol's decoder, in the encoding w.
func decodeServer(dst []protocol.ServerMessage, msg []byte, w wireFormat) ([]protocol.ServerMessage, error) {
	return protocol.DecodeServer(w.codec(), dst, msg)
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
func messageOf(f *protocol.ServerMessage) Message {
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
func serverError(f *protocol.ServerMessage) *ServerError {
	return &ServerError{Code: f.Code, Reason: f.Reason, Retry: f.Retry}
}
