package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The protobuf vectors shared with the TypeScript SDK
// (clients/js/test/fixtures/protobuf-go.json, read by
// clients/js/test/unit/protobuf.test.mjs): every server frame as this
// codec writes it in protobuf and in JSON (the TS codec must read the
// protobuf bytes as the JSON frames), and client frames as the JSON the TS
// client builds next to the protobuf bytes this package writes for them
// (the TS codec must write the same bytes). FERRY_PROTO_VECTORS_WRITE=1
// rewrites the file.

// jsServerVector is one server message: a frame or a batch.
type jsServerVector struct {
	Name     string          `json:"name"`
	JSON     json.RawMessage `json:"json"`
	Protobuf []byte          `json:"protobuf"` // base64 in JSON
}

// jsClientVector is one client message: its frames as JSON, and the bytes.
type jsClientVector struct {
	Name     string          `json:"name"`
	Frames   json.RawMessage `json:"frames"`
	Protobuf []byte          `json:"protobuf"`
}

type jsVectors struct {
	Server []jsServerVector `json:"server"`
	Client []jsClientVector `json:"client"`
}

var jsVectorsPath = filepath.Join("..", "clients", "js", "test", "fixtures", "protobuf-go.json")

// serverMessage encodes frames (a *PreparedMessage is a message frame with
// seq 7) as one message of codec c.
func serverMessage(tb testing.TB, c Codec, frames ...any) []byte {
	tb.Helper()
	var b []byte
	if len(frames) > 1 {
		b = c.BeginBatch(b, len(frames))
	}
	for i, f := range frames {
		if i > 0 {
			b = c.BatchSeparator(b)
		}
		switch f := f.(type) {
		case *PreparedMessage:
			b = c.AppendMessage(b, f, 7)
		case ServerFrame:
			var err error
			if b, err = c.AppendFrame(b, f); err != nil {
				tb.Fatalf("%s: %T: %v", c.Name(), f, err)
			}
		}
	}
	if len(frames) > 1 {
		b = c.EndBatch(b)
	}
	return b
}

func buildJSVectors(tb testing.TB) jsVectors {
	tb.Helper()
	var v jsVectors
	server := func(name string, frames ...any) {
		v.Server = append(v.Server, jsServerVector{Name: name, JSON: serverMessage(tb, JSON, frames...), Protobuf: serverMessage(tb, Protobuf, frames...)})
	}
	server("connected", &Connected{ID: 1, Session: "s1", ResumeToken: "rt", Node: "n1", User: "alice",
		Heartbeat: Heartbeat{IntervalMS: 25000, TimeoutMS: 60000}, Limits: Limits{MaxFrameBytes: 65536, Window: 64, Rate: 2.5}, ExpiresAt: 1893456000})
	server("connected, resumed, fallback tickets", &Connected{ID: 2, Session: "s1", Resumed: true, SessionToken: "st", StreamTicket: "tk"})
	server("subscribed", &Subscribed{ID: 3, Channel: "chat:a", Offset: 42, Epoch: "e1", Recovered: true, Missed: 2})
	server("unsubscribed by the server", &Unsubscribed{Channel: "chat:a", Reason: "permission revoked"})
	server("unsubscribed", &Unsubscribed{ID: 4, Channel: "chat:a"})
	server("message JSON", NewPreparedMessage("chat:a", 9, "e1", RawJSON(`{"text":"hé","n":[1,2.5,null,true]}`), PriorityNormal, "bob"))
	server("message critical, server API", NewPreparedMessage("chat:a", 10, "e1", RawJSON(`42`), PriorityCritical, ""))
	server("message droppable", NewPreparedMessage("chat:a", 11, "e1", RawJSON(`"s"`), PriorityDroppable, "bob"))
	server("message binary", NewPreparedMessage("files:x", 12, "e1", RawJSON(`{"$bin":"AAH+/w=="}`), PriorityNormal, "bob"))
	server("published", &Published{ID: 5, Offset: 13, Epoch: "e1"})
	server("published duplicate", &Published{ID: 6, Offset: 13, Epoch: "e1", Duplicate: true})
	server("pong", &Pong{ID: 7})
	server("refreshed", &Refreshed{ID: 8, ExpiresAt: 1893459600})
	server("history", &History{ID: 9, Channel: "chat:a", Offset: 3, Epoch: "e1", Messages: []HistoryMessage{
		{Offset: 1, Epoch: "e1", Data: RawJSON(`{"a":1}`), From: "bob", Time: 1765000000000},
		{Offset: 2, Epoch: "e1", Data: RawJSON(`{"$bin":"gA=="}`), Priority: "critical", Time: 1765000000001},
	}})
	server("history empty", &History{ID: 10, Channel: "chat:b", Messages: []HistoryMessage{}})
	server("presence", &Presence{ID: 11, Channel: "chat:a", Count: 2, Clients: []ClientInfo{{User: "alice", Conn: "c1"}, {User: "bob", Conn: "c2"}}})
	server("join", &PresenceEvent{Channel: "chat:a", User: "bob", Conn: "c2"})
	server("leave", &PresenceEvent{Channel: "chat:a", User: "bob", Conn: "c2", Leave: true})
	server("error", &ErrorFrame{ID: 12, Code: 403, Reason: "permission denied"})
	server("error retry", &ErrorFrame{ID: 13, Code: 429, Reason: "rate limited", Retry: true})
	server("disconnect", &Disconnect{Code: 4015, Reason: "token expired", Reconnect: true, RetryAfterMS: 1500})
	server("upload.ready", &UploadReady{ID: 14, Upload: "u1", Offset: 1024})
	server("upload.progress", &UploadProgress{ID: 15, Upload: "u1", Offset: 2048})
	server("upload.done", &UploadDone{ID: 16, Upload: "u1", Size: 4096, SHA256: "ab", URL: "/v1/uploads/u1"})
	server("batch", NewPreparedMessage("chat:a", 14, "e1", RawJSON(`[1]`), PriorityNormal, "bob"),
		&Published{ID: 17, Offset: 14, Epoch: "e1"}, NewPreparedMessage("chat:a", 15, "e1", RawJSON(`{"$bin":"AP8="}`), PriorityNormal, ""))

	client := func(name string, frames ...ClientFrame) {
		var pb []byte
		for i := range frames {
			var err error
			if pb, err = AppendProtobufClientFrame(pb, &frames[i]); err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
		}
		js, err := json.Marshal(frames)
		if err != nil {
			tb.Fatal(err)
		}
		v.Client = append(v.Client, jsClientVector{Name: name, Frames: js, Protobuf: pb})
	}
	client("connect", ClientFrame{Type: TypeConnect, ID: 1, Token: "tok", Client: "ferry-js/0.1.0", Window: 64})
	client("connect resume", ClientFrame{Type: TypeConnect, ID: 2, Client: "ferry-js/0.1.0", Resume: &Resume{Session: "s1", Token: "rt"}})
	client("subscribe", ClientFrame{Type: TypeSubscribe, ID: 3, Channel: "chat:a", Since: &StreamPosition{Offset: 9, Epoch: "e1"}, Presence: true})
	client("subscribe from 0", ClientFrame{Type: TypeSubscribe, ID: 4, Channel: "chat:a", Since: &StreamPosition{Epoch: "e1"}})
	client("unsubscribe", ClientFrame{Type: TypeUnsubscribe, ID: 5, Channel: "chat:a"})
	client("publish JSON", ClientFrame{Type: TypePublish, ID: 6, Channel: "chat:a", Data: RawJSON(`{"text":"hé","n":[1,2.5,null,true]}`), Key: "k1"})
	client("publish priority, conflate", ClientFrame{Type: TypePublish, ID: 7, Channel: "ticks:x", Data: RawJSON(`1.5`), Key: "k2", Priority: "droppable", Conflate: "px"})
	client("publish binary", ClientFrame{Type: TypePublish, ID: 8, Channel: "files:x", Data: RawJSON(`{"$bin":"AAH+/w=="}`), Key: "k3"})
	client("ack", ClientFrame{Type: TypeAck, Seq: 77})
	client("ping", ClientFrame{Type: TypePing, ID: 9})
	client("refresh", ClientFrame{Type: TypeRefresh, ID: 10, Token: "tok2"})
	client("history", ClientFrame{Type: TypeHistory, ID: 11, Channel: "chat:a", Since: &StreamPosition{Offset: 2, Epoch: "e1"}, Limit: 10})
	client("presence", ClientFrame{Type: TypePresence, ID: 12, Channel: "chat:a"})
	client("upload.begin", ClientFrame{Type: TypeUploadBegin, ID: 13, Name: "a.bin", Size: 4096, SHA256: "ab", ChunkSize: 1024})
	client("upload.chunk", ClientFrame{Type: TypeUploadChunk, ID: 14, Upload: "u1", Offset: 1024, Data: RawJSON(`"AAH+/w=="`)})
	client("upload.commit", ClientFrame{Type: TypeUploadCommit, ID: 15, Upload: "u1"})
	client("batch", ClientFrame{Type: TypeAck, Seq: 78}, ClientFrame{Type: TypePublish, ID: 16, Channel: "chat:a", Data: RawJSON(`[1]`), Key: "k4"})
	return v
}

func TestProtobufJSVectors(t *testing.T) {
	want := buildJSVectors(t)
	b, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("FERRY_PROTO_VECTORS_WRITE") == "1" {
		if err := os.WriteFile(jsVectorsPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(jsVectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("%s is not what this codec writes (run with FERRY_PROTO_VECTORS_WRITE=1 to rewrite it)", jsVectorsPath)
	}
	// The client bytes decode to the frames they stand for.
	for _, c := range want.Client {
		frames, err := Protobuf.DecodeClient(nil, c.Protobuf)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		for _, f := range frames {
			if f.Invalid != "" {
				t.Fatalf("%s: %s", c.Name, f.Invalid)
			}
		}
	}
}
