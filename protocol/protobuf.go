package protocol

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ferryv1 "github.com/ferry-io/ferry/protocol/ferry/v1"
)

// SubprotocolProtobuf is the subprotocol of the Protobuf codec.
const SubprotocolProtobuf = "ferry.v1.protobuf"

// Protobuf is the codec of the "ferry.v1.protobuf" subprotocol (binary
// frames), whose schema is protocol/ferry/v1/ferry.proto.
//
// Every message, in both directions, is a ferry.v1.Batch: frames are
// written as field 1 of Batch (tag 0x0a, length, Frame), so one frame and a
// batch have the same shape and a batch is the frames one after the other
// (BeginBatch, BatchSeparator and EndBatch write nothing).
//
// DecodeClient refuses, as ErrMalformed: an empty message, bytes that are
// not a Batch (bad wire types, truncated fields, strings that are not
// UTF-8), a Batch without frames and one with more than MaxFramesPerMessage
// frames (counted before anything is decoded). Nesting is bounded by the
// schema, which has no recursive message (four levels at most), and by
// protobufMaxDepth; unknown fields, groups included, are skipped without
// being decoded. The size of a message is bounded by the transport
// (max_frame_bytes), as for every codec. A Frame without a kind it knows is returned with Invalid set
// (error 400 "unknown frame type", with the Frame's id); a server frame sent
// by a client becomes a ClientFrame of that type, which Validate refuses as
// unknown, as in JSON. Payloads are converted by PayloadFromBytes.
//
// Server frames are written through the generated ferry.v1 types in field
// number order, zero values omitted; the message frame of a PreparedMessage
// is written byte for byte as AppendFrame writes the same Message (with a
// non-zero seq).
var Protobuf Codec = protobufCodec{}

// protobufMaxDepth bounds the nesting of messages in one client message.
// The schema nests four deep (Batch, Frame, Subscribe, StreamPosition); the
// bound keeps a later schema change from opening deep recursion to input.
const protobufMaxDepth = 16

var protobufUnmarshal = proto.UnmarshalOptions{RecursionLimit: protobufMaxDepth}

// Field numbers written by hand on the fan-out path (see ferry.proto).
const (
	pbBatchFrames  protowire.Number = 1
	pbFrameMessage protowire.Number = 2
	pbMessageSeq   protowire.Number = 7
)

type protobufCodec struct{}

func (protobufCodec) Name() string { return SubprotocolProtobuf }
func (protobufCodec) Binary() bool { return true }

func (protobufCodec) DecodeClient(dst []ClientFrame, msg []byte) ([]ClientFrame, error) {
	if len(msg) == 0 {
		return dst, malformed("empty message")
	}
	n, err := countProtobufFrames(msg)
	if err != nil {
		return dst, err
	}
	if n == 0 {
		return dst, malformed("a Batch without frames")
	}
	var batch ferryv1.Batch
	if err := protobufUnmarshal.Unmarshal(msg, &batch); err != nil {
		return dst, malformed("not a ferry.v1.Batch: %v", err)
	}
	for _, f := range batch.GetFrames() {
		dst = append(dst, clientFrameFromProto(f))
	}
	return dst, nil
}

// countProtobufFrames walks the top-level fields of a Batch and counts its
// frames, so that a message of many empty frames is refused before any is
// decoded.
func countProtobufFrames(msg []byte) (int, error) {
	n := 0
	for len(msg) > 0 {
		num, typ, size := protowire.ConsumeField(msg)
		if size < 0 {
			return 0, malformed("not a ferry.v1.Batch: %v", protowire.ParseError(size))
		}
		if num == pbBatchFrames && typ == protowire.BytesType {
			n++
			if n > MaxFramesPerMessage {
				return 0, malformed("more than %d frames in one message", MaxFramesPerMessage)
			}
		}
		msg = msg[size:]
	}
	return n, nil
}

// clientFrameFromProto converts one decoded Frame.
func clientFrameFromProto(f *ferryv1.Frame) ClientFrame {
	c := ClientFrame{ID: f.GetId()}
	switch k := f.GetKind().(type) {
	case *ferryv1.Frame_Connect:
		c.Type = TypeConnect
		c.Token = k.Connect.GetToken()
		c.Client = k.Connect.GetClient()
		c.Window = k.Connect.GetWindow()
		if r := k.Connect.GetResume(); r != nil {
			c.Resume = &Resume{Session: r.GetSession(), Token: r.GetToken()}
		}
	case *ferryv1.Frame_Subscribe:
		c.Type = TypeSubscribe
		c.Channel = k.Subscribe.GetChannel()
		c.Since = sinceFromProto(k.Subscribe.GetSince())
		c.Presence = k.Subscribe.GetPresence()
	case *ferryv1.Frame_Unsubscribe:
		c.Type = TypeUnsubscribe
		c.Channel = k.Unsubscribe.GetChannel()
	case *ferryv1.Frame_Publish:
		p := k.Publish
		c.Type = TypePublish
		c.Channel = p.GetChannel()
		c.Data = PayloadFromBytes(p.GetData())
		c.Key = p.GetKey()
		c.Priority = priorityFromProto(p.GetPriority())
		c.Conflate = p.GetConflate()
	case *ferryv1.Frame_Ack:
		c.Type = TypeAck
		c.Seq = k.Ack.GetSeq()
	case *ferryv1.Frame_Ping:
		c.Type = TypePing
	case *ferryv1.Frame_Refresh:
		c.Type = TypeRefresh
		c.Token = k.Refresh.GetToken()
	case *ferryv1.Frame_HistoryRequest:
		c.Type = TypeHistory
		c.Channel = k.HistoryRequest.GetChannel()
		c.Since = sinceFromProto(k.HistoryRequest.GetSince())
		c.Limit = int(k.HistoryRequest.GetLimit())
	case *ferryv1.Frame_PresenceRequest:
		c.Type = TypePresence
		c.Channel = k.PresenceRequest.GetChannel()
	case *ferryv1.Frame_UploadBegin:
		u := k.UploadBegin
		c.Type = TypeUploadBegin
		c.Name, c.Size, c.SHA256, c.ChunkSize = u.GetName(), u.GetSize(), u.GetSha256(), u.GetChunkSize()
	case *ferryv1.Frame_UploadChunk:
		u := k.UploadChunk
		c.Type = TypeUploadChunk
		c.Upload, c.Offset = u.GetUpload(), u.GetOffset()
		// The chunk's bytes as the base64 string a JSON client sends, which
		// is what RawJSON.DecodeBytes reads.
		c.Data = appendJSONString(nil, base64.StdEncoding.EncodeToString(u.GetData()))
	case *ferryv1.Frame_UploadCommit:
		c.Type = TypeUploadCommit
		c.Upload = k.UploadCommit.GetUpload()
	case *ferryv1.Frame_Rpc:
		c.Type = TypeRPC
		c.Method = k.Rpc.GetMethod()
		c.Data = PayloadFromBytes(k.Rpc.GetData())
	case nil:
		if num := firstUnknownField(f); num != 0 {
			c.Invalid = fmt.Sprintf("unknown frame type (field %d of ferry.v1.Frame)", num)
		}
	case *ferryv1.Frame_History, *ferryv1.Frame_Presence:
		// Server replies whose names are also client types: refused here,
		// with a hint at the request's field.
		name := TypeHistory
		if _, ok := k.(*ferryv1.Frame_Presence); ok {
			name = TypePresence
		}
		c.Invalid = fmt.Sprintf("unknown frame type %q (the server's reply; the request is %s_request)", name, name)
	default:
		// A server frame: its name, which Validate refuses as unknown.
		c.Type = serverTypeOfKind(f)
	}
	return c
}

// firstUnknownField returns the number of the first field of f that this
// schema does not know (a frame type from a later version), or 0.
func firstUnknownField(f *ferryv1.Frame) protowire.Number {
	b := f.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, _, n := protowire.ConsumeField(b)
		if n < 0 {
			return 0
		}
		if num != 0 {
			return num
		}
		b = b[n:]
	}
	return 0
}

// serverTypeOfKind names the server frame in f.
func serverTypeOfKind(f *ferryv1.Frame) string {
	switch f.GetKind().(type) {
	case *ferryv1.Frame_Message:
		return TypeMessage
	case *ferryv1.Frame_Pong:
		return TypePong
	case *ferryv1.Frame_Published:
		return TypePublished
	case *ferryv1.Frame_Subscribed:
		return TypeSubscribed
	case *ferryv1.Frame_Connected:
		return TypeConnected
	case *ferryv1.Frame_Unsubscribed:
		return TypeUnsubscribed
	case *ferryv1.Frame_Error:
		return TypeError
	case *ferryv1.Frame_Disconnect:
		return TypeDisconnect
	case *ferryv1.Frame_Refreshed:
		return TypeRefreshed
	case *ferryv1.Frame_Join:
		return TypeJoin
	case *ferryv1.Frame_Leave:
		return TypeLeave
	case *ferryv1.Frame_UploadReady:
		return TypeUploadReady
	case *ferryv1.Frame_UploadProgress:
		return TypeUploadProgress
	case *ferryv1.Frame_UploadDone:
		return TypeUploadDone
	case *ferryv1.Frame_RpcResult:
		return TypeRPCResult
	}
	return fmt.Sprintf("%T", f.GetKind()) // not reached: every kind is named
}

func sinceFromProto(p *ferryv1.StreamPosition) *StreamPosition {
	if p == nil {
		return nil
	}
	return &StreamPosition{Offset: p.GetOffset(), Epoch: p.GetEpoch()}
}

// priorityFromProto names a priority as JSON does: "" for unspecified (the
// namespace's default), and the number of a value this version does not
// know, which Validate refuses.
func priorityFromProto(p ferryv1.Priority) string {
	switch p {
	case ferryv1.Priority_PRIORITY_UNSPECIFIED:
		return ""
	case ferryv1.Priority_PRIORITY_NORMAL:
		return PriorityNormal.String()
	case ferryv1.Priority_PRIORITY_CRITICAL:
		return PriorityCritical.String()
	case ferryv1.Priority_PRIORITY_DROPPABLE:
		return PriorityDroppable.String()
	}
	return strconv.Itoa(int(p))
}

// priorityToProto is the wire value of a priority in message and history
// frames: unspecified for normal, so that it is omitted.
func priorityToProto(p Priority) ferryv1.Priority {
	switch p {
	case PriorityCritical:
		return ferryv1.Priority_PRIORITY_CRITICAL
	case PriorityDroppable:
		return ferryv1.Priority_PRIORITY_DROPPABLE
	}
	return ferryv1.Priority_PRIORITY_UNSPECIFIED
}

// priorityNameToProto converts the priority name of a Message or
// HistoryMessage ("" or a name ParsePriority reads).
func priorityNameToProto(name string) ferryv1.Priority {
	p, _ := ParsePriority(name)
	return priorityToProto(p)
}

func (protobufCodec) AppendFrame(dst []byte, f ServerFrame) ([]byte, error) {
	f.stamp()
	pf := &ferryv1.Frame{}
	if err := fillProtoFrame(pf, f); err != nil {
		return dst, err
	}
	out, err := appendProtobufFrame(dst, pf)
	if err != nil {
		return dst, fmt.Errorf("encode %s frame: %w", f.FrameType(), err)
	}
	return out, nil
}

// fillProtoFrame sets the id and kind of pf from f.
func fillProtoFrame(pf *ferryv1.Frame, f ServerFrame) error {
	switch f := f.(type) {
	case *Connected:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Connected{Connected: &ferryv1.Connected{
			Session: f.Session, ResumeToken: f.ResumeToken, Node: f.Node, User: f.User,
			Heartbeat: &ferryv1.Heartbeat{IntervalMs: f.Heartbeat.IntervalMS, TimeoutMs: f.Heartbeat.TimeoutMS},
			Limits: &ferryv1.Limits{
				MaxFrameBytes: int64(f.Limits.MaxFrameBytes), Window: f.Limits.Window, Rate: f.Limits.Rate,
			},
			Resumed: f.Resumed, ExpiresAt: f.ExpiresAt,
			SessionToken: f.SessionToken, StreamTicket: f.StreamTicket,
		}}
	case *Subscribed:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Subscribed{Subscribed: &ferryv1.Subscribed{
			Channel: f.Channel, Offset: f.Offset, Epoch: f.Epoch, Recovered: f.Recovered, Missed: f.Missed,
		}}
	case *Unsubscribed:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Unsubscribed{Unsubscribed: &ferryv1.Unsubscribed{Channel: f.Channel, Reason: f.Reason}}
	case *Message:
		pf.Kind = &ferryv1.Frame_Message{Message: &ferryv1.Message{
			Channel: f.Channel, Offset: f.Offset, Epoch: f.Epoch, Data: f.Data.AppendPayloadBytes(nil),
			Priority: priorityNameToProto(f.Priority), From: f.From, Seq: f.Seq,
		}}
	case *Published:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Published{Published: &ferryv1.Published{
			Offset: f.Offset, Epoch: f.Epoch, Duplicate: f.Duplicate,
		}}
	case *Pong:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Pong{Pong: &ferryv1.Pong{}}
	case *Refreshed:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Refreshed{Refreshed: &ferryv1.Refreshed{ExpiresAt: f.ExpiresAt}}
	case *History:
		pf.Id = f.ID
		msgs := make([]*ferryv1.HistoryMessage, len(f.Messages))
		for i := range f.Messages {
			m := &f.Messages[i]
			msgs[i] = &ferryv1.HistoryMessage{
				Offset: m.Offset, Epoch: m.Epoch, Data: m.Data.AppendPayloadBytes(nil),
				Priority: priorityNameToProto(m.Priority), From: m.From, Time: m.Time,
			}
		}
		pf.Kind = &ferryv1.Frame_History{History: &ferryv1.History{
			Channel: f.Channel, Messages: msgs, Offset: f.Offset, Epoch: f.Epoch,
		}}
	case *Presence:
		pf.Id = f.ID
		clients := make([]*ferryv1.ClientInfo, len(f.Clients))
		for i, c := range f.Clients {
			clients[i] = &ferryv1.ClientInfo{User: c.User, Conn: c.Conn}
		}
		pf.Kind = &ferryv1.Frame_Presence{Presence: &ferryv1.Presence{
			Channel: f.Channel, Clients: clients, Count: int64(f.Count),
		}}
	case *PresenceEvent:
		ev := &ferryv1.PresenceEvent{Channel: f.Channel, User: f.User, Conn: f.Conn}
		if f.Leave {
			pf.Kind = &ferryv1.Frame_Leave{Leave: ev}
		} else {
			pf.Kind = &ferryv1.Frame_Join{Join: ev}
		}
	case *ErrorFrame:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_Error{Error: &ferryv1.Error{Code: int32(f.Code), Reason: f.Reason, Retry: f.Retry}}
	case *Disconnect:
		pf.Kind = &ferryv1.Frame_Disconnect{Disconnect: &ferryv1.Disconnect{
			Code: int32(f.Code), Reason: f.Reason, Reconnect: f.Reconnect, RetryAfterMs: f.RetryAfterMS,
		}}
	case *UploadReady:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_UploadReady{UploadReady: &ferryv1.UploadReady{Upload: f.Upload, Offset: f.Offset}}
	case *UploadProgress:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_UploadProgress{UploadProgress: &ferryv1.UploadProgress{Upload: f.Upload, Offset: f.Offset}}
	case *UploadDone:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_UploadDone{UploadDone: &ferryv1.UploadDone{
			Upload: f.Upload, Size: f.Size, Sha256: f.SHA256, Url: f.URL,
		}}
	case *RPCResult:
		pf.Id = f.ID
		pf.Kind = &ferryv1.Frame_RpcResult{RpcResult: &ferryv1.RpcResult{Data: f.Data.AppendPayloadBytes(nil)}}
	default:
		return fmt.Errorf("encode %s frame: no protobuf form for %T", f.FrameType(), f)
	}
	return nil
}

func (protobufCodec) AppendMessage(dst []byte, p *PreparedMessage, seq uint64) []byte {
	body := p.protobuf()
	msgLen := len(body) + protowire.SizeTag(pbMessageSeq) + protowire.SizeVarint(seq)
	frameLen := protowire.SizeTag(pbFrameMessage) + protowire.SizeVarint(uint64(msgLen)) + msgLen
	dst = protowire.AppendTag(dst, pbBatchFrames, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(frameLen))
	dst = protowire.AppendTag(dst, pbFrameMessage, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(msgLen))
	dst = append(dst, body...)
	dst = protowire.AppendTag(dst, pbMessageSeq, protowire.VarintType)
	return protowire.AppendVarint(dst, seq)
}

// appendProtobufMessageBody appends the fields of a ferry.v1.Message before
// seq, in field order, zero values omitted (as proto.Marshal writes them).
func appendProtobufMessageBody(b []byte, p *PreparedMessage) []byte {
	if p.channel != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, p.channel)
	}
	if p.offset != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, p.offset)
	}
	if p.epoch != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, p.epoch)
	}
	if data := p.data.AppendPayloadBytes(nil); len(data) > 0 {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, data)
	}
	if pr := priorityToProto(p.priority); pr != ferryv1.Priority_PRIORITY_UNSPECIFIED {
		b = protowire.AppendTag(b, 5, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(pr))
	}
	if p.from != "" {
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, p.from)
	}
	return b
}

func (protobufCodec) BeginBatch(dst []byte, n int) []byte { return dst }
func (protobufCodec) BatchSeparator(dst []byte) []byte    { return dst }
func (protobufCodec) EndBatch(dst []byte) []byte          { return dst }
