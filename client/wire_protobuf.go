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

// decodeProtobuf reads a ferry.v1.Batch from the server.
func decodeProtobuf(dst []serverFrame, msg []byte) ([]serverFrame, error) {
	frames, err := protocol.DecodeProtobufServer(nil, msg)
	if err != nil {
		return dst, err
	}
	for _, f := range frames {
		dst = append(dst, serverFrameOf(f))
	}
	return dst, nil
}

// serverFrameOf copies the fields of a decoded server frame into the
// client's one struct for all frames.
func serverFrameOf(f protocol.ServerFrame) serverFrame {
	s := serverFrame{Type: f.FrameType()}
	switch f := f.(type) {
	case *protocol.Connected:
		s.ID, s.Session, s.ResumeToken, s.Node, s.User = f.ID, f.Session, f.ResumeToken, f.Node, f.User
		s.Heartbeat, s.Limits, s.Resumed, s.ExpiresAt = f.Heartbeat, f.Limits, f.Resumed, f.ExpiresAt
	case *protocol.Subscribed:
		s.ID, s.Channel, s.Offset, s.Epoch, s.Recovered, s.Missed = f.ID, f.Channel, f.Offset, f.Epoch, f.Recovered, f.Missed
	case *protocol.Unsubscribed:
		s.ID, s.Channel, s.Reason = f.ID, f.Channel, f.Reason
	case *protocol.Message:
		s.Channel, s.Offset, s.Epoch, s.Data, s.Priority, s.From, s.Seq = f.Channel, f.Offset, f.Epoch, f.Data, f.Priority, f.From, f.Seq
	case *protocol.Published:
		s.ID, s.Offset, s.Epoch, s.Duplicate = f.ID, f.Offset, f.Epoch, f.Duplicate
	case *protocol.Pong:
		s.ID = f.ID
	case *protocol.Refreshed:
		s.ID, s.ExpiresAt = f.ID, f.ExpiresAt
	case *protocol.History:
		s.ID, s.Channel, s.Messages, s.Offset, s.Epoch = f.ID, f.Channel, f.Messages, f.Offset, f.Epoch
	case *protocol.Presence:
		s.ID, s.Channel, s.Clients, s.Count = f.ID, f.Channel, f.Clients, f.Count
	case *protocol.PresenceEvent:
		s.Channel, s.User, s.Conn = f.Channel, f.User, f.Conn
	case *protocol.ErrorFrame:
		s.ID, s.Code, s.Reason, s.Retry = f.ID, f.Code, f.Reason, f.Retry
	case *protocol.Disconnect:
		s.Code, s.Reason, s.Reconnect, s.RetryAfterMS = f.Code, f.Reason, f.Reconnect, f.RetryAfterMS
	case *protocol.UploadReady:
		s.ID, s.Offset = f.ID, uint64(max(f.Offset, 0))
	case *protocol.UploadProgress:
		s.ID, s.Offset = f.ID, uint64(max(f.Offset, 0))
	case *protocol.UploadDone:
		s.ID = f.ID
	}
	return s
}
