package protocol

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-io/ferry/protocol/ferry/v1"
)

// The client's half of the protobuf codec: what the Codec interface leaves
// out because the server never needs it. The Go SDK and tests use it.

// AppendProtobufClientFrame appends f as one frame of a ferry.v1.Batch
// (field 1: tag, length, Frame). A batch is several such frames one after
// the other. The payload of publish and rpc is converted by
// RawJSON.AppendPayloadBytes; the data of upload.chunk must be a base64
// string (RawJSON.DecodeBytes) and goes as its bytes. It fails for a type
// that has no client frame in the schema.
func AppendProtobufClientFrame(dst []byte, f *ClientFrame) ([]byte, error) {
	pf := &ferryv1.Frame{Id: f.ID}
	switch f.Type {
	case TypeConnect:
		c := &ferryv1.Connect{Token: f.Token, Client: f.Client, Window: f.Window}
		if f.Resume != nil {
			c.Resume = &ferryv1.Resume{Session: f.Resume.Session, Token: f.Resume.Token}
		}
		pf.Kind = &ferryv1.Frame_Connect{Connect: c}
	case TypeSubscribe:
		pf.Kind = &ferryv1.Frame_Subscribe{Subscribe: &ferryv1.Subscribe{
			Channel: f.Channel, Since: sinceToProto(f.Since), Presence: f.Presence,
		}}
	case TypeUnsubscribe:
		pf.Kind = &ferryv1.Frame_Unsubscribe{Unsubscribe: &ferryv1.Unsubscribe{Channel: f.Channel}}
	case TypePublish:
		prio := ferryv1.Priority_PRIORITY_UNSPECIFIED
		if f.Priority != "" {
			p, err := ParsePriority(f.Priority)
			if err != nil {
				return dst, fmt.Errorf("encode publish frame: %w", err)
			}
			prio = ferryv1.Priority_PRIORITY_NORMAL
			if p != PriorityNormal {
				prio = priorityToProto(p)
			}
		}
		pf.Kind = &ferryv1.Frame_Publish{Publish: &ferryv1.Publish{
			Channel: f.Channel, Data: f.Data.AppendPayloadBytes(nil), Key: f.Key,
			Priority: prio, Conflate: f.Conflate,
		}}
	case TypeAck:
		pf.Kind = &ferryv1.Frame_Ack{Ack: &ferryv1.Ack{Seq: f.Seq}}
	case TypePing:
		pf.Kind = &ferryv1.Frame_Ping{Ping: &ferryv1.Ping{}}
	case TypeRefresh:
		pf.Kind = &ferryv1.Frame_Refresh{Refresh: &ferryv1.Refresh{Token: f.Token}}
	case TypeHistory:
		if f.Limit < 0 || uint64(f.Limit) > uint64(^uint32(0)) {
			return dst, fmt.Errorf("encode history frame: limit %d out of range", f.Limit)
		}
		pf.Kind = &ferryv1.Frame_HistoryRequest{HistoryRequest: &ferryv1.HistoryRequest{
			Channel: f.Channel, Since: sinceToProto(f.Since), Limit: uint32(f.Limit),
		}}
	case TypePresence:
		pf.Kind = &ferryv1.Frame_PresenceRequest{PresenceRequest: &ferryv1.PresenceRequest{Channel: f.Channel}}
	case TypeUploadBegin:
		pf.Kind = &ferryv1.Frame_UploadBegin{UploadBegin: &ferryv1.UploadBegin{
			Name: f.Name, Size: f.Size, Sha256: f.SHA256, ChunkSize: f.ChunkSize,
		}}
	case TypeUploadChunk:
		chunk, err := f.Data.DecodeBytes(nil)
		if err != nil {
			return dst, fmt.Errorf("encode upload.chunk frame: %w", err)
		}
		pf.Kind = &ferryv1.Frame_UploadChunk{UploadChunk: &ferryv1.UploadChunk{
			Upload: f.Upload, Offset: f.Offset, Data: chunk,
		}}
	case TypeUploadCommit:
		pf.Kind = &ferryv1.Frame_UploadCommit{UploadCommit: &ferryv1.UploadCommit{Upload: f.Upload}}
	case TypeRPC:
		pf.Kind = &ferryv1.Frame_Rpc{Rpc: &ferryv1.Rpc{Method: f.Method, Data: f.Data.AppendPayloadBytes(nil)}}
	default:
		return dst, fmt.Errorf("encode frame: type %q has no protobuf client frame", f.Type)
	}
	return appendProtobufFrame(dst, pf)
}

// appendProtobufFrame appends pf as field 1 of a Batch.
func appendProtobufFrame(dst []byte, pf *ferryv1.Frame) ([]byte, error) {
	dst = protowire.AppendTag(dst, pbBatchFrames, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(proto.Size(pf)))
	return proto.MarshalOptions{}.MarshalAppend(dst, pf)
}

func sinceToProto(p *StreamPosition) *ferryv1.StreamPosition {
	if p == nil {
		return nil
	}
	return &ferryv1.StreamPosition{Offset: p.Offset, Epoch: p.Epoch}
}

// DecodeProtobufServer reads a message from the server (a ferry.v1.Batch)
// and appends its frames as the frame structs of this package, payloads
// converted by PayloadFromBytes. It returns an error wrapping ErrMalformed
// when msg is not a Batch of at most MaxFramesPerMessage frames, and one
// naming the field for a frame of a kind this version does not know.
func DecodeProtobufServer(dst []ServerFrame, msg []byte) ([]ServerFrame, error) {
	if _, err := countProtobufFrames(msg); err != nil {
		return dst, err
	}
	var batch ferryv1.Batch
	if err := protobufUnmarshal.Unmarshal(msg, &batch); err != nil {
		return dst, malformed("not a ferry.v1.Batch: %v", err)
	}
	for _, pf := range batch.GetFrames() {
		f, err := serverFrameFromProto(pf)
		if err != nil {
			return dst, err
		}
		dst = append(dst, f)
	}
	return dst, nil
}

// serverFrameFromProto converts one server frame, with its type stamped.
func serverFrameFromProto(pf *ferryv1.Frame) (ServerFrame, error) {
	id := pf.GetId()
	var f ServerFrame
	switch k := pf.GetKind().(type) {
	case *ferryv1.Frame_Connected:
		c := k.Connected
		f = &Connected{
			ID: id, Session: c.GetSession(), ResumeToken: c.GetResumeToken(), Node: c.GetNode(), User: c.GetUser(),
			Heartbeat: Heartbeat{IntervalMS: c.GetHeartbeat().GetIntervalMs(), TimeoutMS: c.GetHeartbeat().GetTimeoutMs()},
			Limits: Limits{
				MaxFrameBytes: int(c.GetLimits().GetMaxFrameBytes()), Window: c.GetLimits().GetWindow(),
				Rate: c.GetLimits().GetRate(),
			},
			Resumed: c.GetResumed(), ExpiresAt: c.GetExpiresAt(),
			SessionToken: c.GetSessionToken(), StreamTicket: c.GetStreamTicket(),
		}
	case *ferryv1.Frame_Subscribed:
		s := k.Subscribed
		f = &Subscribed{ID: id, Channel: s.GetChannel(), Offset: s.GetOffset(), Epoch: s.GetEpoch(),
			Recovered: s.GetRecovered(), Missed: s.GetMissed()}
	case *ferryv1.Frame_Unsubscribed:
		f = &Unsubscribed{ID: id, Channel: k.Unsubscribed.GetChannel(), Reason: k.Unsubscribed.GetReason()}
	case *ferryv1.Frame_Message:
		m := k.Message
		f = &Message{Channel: m.GetChannel(), Offset: m.GetOffset(), Epoch: m.GetEpoch(),
			Data: PayloadFromBytes(m.GetData()), Priority: priorityNameFromProto(m.GetPriority()),
			From: m.GetFrom(), Seq: m.GetSeq()}
	case *ferryv1.Frame_Published:
		p := k.Published
		f = &Published{ID: id, Offset: p.GetOffset(), Epoch: p.GetEpoch(), Duplicate: p.GetDuplicate()}
	case *ferryv1.Frame_Pong:
		f = &Pong{ID: id}
	case *ferryv1.Frame_Refreshed:
		f = &Refreshed{ID: id, ExpiresAt: k.Refreshed.GetExpiresAt()}
	case *ferryv1.Frame_History:
		h := k.History
		msgs := make([]HistoryMessage, len(h.GetMessages()))
		for i, m := range h.GetMessages() {
			msgs[i] = HistoryMessage{Offset: m.GetOffset(), Epoch: m.GetEpoch(), Data: PayloadFromBytes(m.GetData()),
				Priority: priorityNameFromProto(m.GetPriority()), From: m.GetFrom(), Time: m.GetTime()}
		}
		f = &History{ID: id, Channel: h.GetChannel(), Messages: msgs, Offset: h.GetOffset(), Epoch: h.GetEpoch()}
	case *ferryv1.Frame_Presence:
		p := k.Presence
		clients := make([]ClientInfo, len(p.GetClients()))
		for i, c := range p.GetClients() {
			clients[i] = ClientInfo{User: c.GetUser(), Conn: c.GetConn()}
		}
		f = &Presence{ID: id, Channel: p.GetChannel(), Clients: clients, Count: int(p.GetCount())}
	case *ferryv1.Frame_Join:
		f = &PresenceEvent{Channel: k.Join.GetChannel(), User: k.Join.GetUser(), Conn: k.Join.GetConn()}
	case *ferryv1.Frame_Leave:
		f = &PresenceEvent{Channel: k.Leave.GetChannel(), User: k.Leave.GetUser(), Conn: k.Leave.GetConn(), Leave: true}
	case *ferryv1.Frame_Error:
		e := k.Error
		f = &ErrorFrame{ID: id, Code: int(e.GetCode()), Reason: e.GetReason(), Retry: e.GetRetry()}
	case *ferryv1.Frame_Disconnect:
		d := k.Disconnect
		f = &Disconnect{Code: int(d.GetCode()), Reason: d.GetReason(), Reconnect: d.GetReconnect(),
			RetryAfterMS: d.GetRetryAfterMs()}
	case *ferryv1.Frame_UploadReady:
		f = &UploadReady{ID: id, Upload: k.UploadReady.GetUpload(), Offset: k.UploadReady.GetOffset()}
	case *ferryv1.Frame_UploadProgress:
		f = &UploadProgress{ID: id, Upload: k.UploadProgress.GetUpload(), Offset: k.UploadProgress.GetOffset()}
	case *ferryv1.Frame_UploadDone:
		u := k.UploadDone
		f = &UploadDone{ID: id, Upload: u.GetUpload(), Size: u.GetSize(), SHA256: u.GetSha256(), URL: u.GetUrl()}
	case *ferryv1.Frame_RpcResult:
		f = &RPCResult{ID: id, Data: PayloadFromBytes(k.RpcResult.GetData())}
	default:
		return nil, malformed("decode server frame: unknown kind (field %d of ferry.v1.Frame)", firstUnknownField(pf))
	}
	f.stamp()
	return f, nil
}

// priorityNameFromProto names the priority of a message or history entry
// as JSON does: "" for normal.
func priorityNameFromProto(p ferryv1.Priority) string {
	switch p {
	case ferryv1.Priority_PRIORITY_CRITICAL:
		return PriorityCritical.String()
	case ferryv1.Priority_PRIORITY_DROPPABLE:
		return PriorityDroppable.String()
	}
	return ""
}

// decodeServerProtobuf reads a ferry.v1.Batch from a server as
// ServerMessages (DecodeServer's protobuf case).
func decodeServerProtobuf(dst []ServerMessage, msg []byte) ([]ServerMessage, error) {
	if len(msg) == 0 {
		return dst, malformed("empty message")
	}
	frames, err := DecodeProtobufServer(nil, msg)
	if err != nil {
		return dst, err
	}
	for _, f := range frames {
		dst = append(dst, serverMessageOf(f))
	}
	return dst, nil
}

// serverMessageOf copies the fields of a decoded server frame into the one
// struct a client reads every frame into.
func serverMessageOf(f ServerFrame) ServerMessage {
	s := ServerMessage{Type: f.FrameType()}
	switch f := f.(type) {
	case *Connected:
		s.ID, s.Session, s.ResumeToken, s.Node, s.User = f.ID, f.Session, f.ResumeToken, f.Node, f.User
		s.Heartbeat, s.Limits, s.Resumed, s.ExpiresAt = f.Heartbeat, f.Limits, f.Resumed, f.ExpiresAt
	case *Subscribed:
		s.ID, s.Channel, s.Offset, s.Epoch, s.Recovered, s.Missed = f.ID, f.Channel, f.Offset, f.Epoch, f.Recovered, f.Missed
	case *Unsubscribed:
		s.ID, s.Channel, s.Reason = f.ID, f.Channel, f.Reason
	case *Message:
		s.Channel, s.Offset, s.Epoch, s.Data, s.Priority, s.From, s.Seq = f.Channel, f.Offset, f.Epoch, f.Data, f.Priority, f.From, f.Seq
	case *Published:
		s.ID, s.Offset, s.Epoch, s.Duplicate = f.ID, f.Offset, f.Epoch, f.Duplicate
	case *Pong:
		s.ID = f.ID
	case *Refreshed:
		s.ID, s.ExpiresAt = f.ID, f.ExpiresAt
	case *History:
		s.ID, s.Channel, s.Messages, s.Offset, s.Epoch = f.ID, f.Channel, f.Messages, f.Offset, f.Epoch
	case *Presence:
		s.ID, s.Channel, s.Clients, s.Count = f.ID, f.Channel, f.Clients, f.Count
	case *PresenceEvent:
		s.Channel, s.User, s.Conn = f.Channel, f.User, f.Conn
	case *ErrorFrame:
		s.ID, s.Code, s.Reason, s.Retry = f.ID, f.Code, f.Reason, f.Retry
	case *Disconnect:
		s.Code, s.Reason, s.Reconnect, s.RetryAfterMS = f.Code, f.Reason, f.Reconnect, f.RetryAfterMS
	case *UploadReady:
		s.ID, s.Upload, s.Offset = f.ID, f.Upload, uint64(max(f.Offset, 0))
	case *UploadProgress:
		s.ID, s.Upload, s.Offset = f.ID, f.Upload, uint64(max(f.Offset, 0))
	case *UploadDone:
		s.ID, s.Upload, s.Size, s.SHA256, s.URL = f.ID, f.Upload, f.Size, f.SHA256, f.URL
	case *RPCResult:
		s.ID, s.Data = f.ID, f.Data
	}
	return s
}
