package client

import (
	"github.com/coder/websocket"

	"github.com/ferry-io/ferry/protocol"
)

// wireFormat is the encoding of the connection's messages, chosen by
// Config.Codec.
type wireFormat uint8

const (
	wireJSON wireFormat = iota
	wireMsgpack
	wireProtobuf
)

func wireFormatOf(c protocol.Codec) wireFormat {
	switch c.Name() {
	case protocol.SubprotocolMsgpack:
		return wireMsgpack
	case protocol.SubprotocolProtobuf:
		return wireProtobuf
	}
	return wireJSON
}

// codec is the protocol codec that reads messages in the encoding w.
func (w wireFormat) codec() protocol.Codec {
	switch w {
	case wireMsgpack:
		return protocol.Msgpack
	case wireProtobuf:
		return protocol.Protobuf
	}
	return protocol.JSON
}

// forMessage is the encoding of a received message of WebSocket type typ:
// text is always JSON.
func (w wireFormat) forMessage(typ websocket.MessageType) wireFormat {
	if typ == websocket.MessageText {
		return wireJSON
	}
	return w
}

// encodeProtobuf encodes frames as one ferry.v1.Batch.
func encodeProtobuf(frames []protocol.ClientFrame) ([]byte, error) {
	var msg []byte
	for i := range frames {
		var err error
		if msg, err = protocol.AppendProtobufClientFrame(msg, &frames[i]); err != nil {
			return nil, err
		}
	}
	return msg, nil
}
