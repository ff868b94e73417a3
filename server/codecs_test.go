package server_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/ferry-io/ferry/protocol"
)

// pbClient is a raw ferry.v1.protobuf client over coder/websocket, using
// protocol's client-side protobuf encoder and decoder.
type pbClient struct {
	t      testing.TB
	c      *websocket.Conn
	frames chan protocol.ServerFrame
	done   chan struct{}
	err    error // why the read loop ended; read after done is closed
}

func dialProtobuf(t testing.TB, n *node, user string) *pbClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, n.url+"/v1/ws", &websocket.DialOptions{
		Subprotocols: []string{protocol.SubprotocolProtobuf},
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != protocol.SubprotocolProtobuf {
		t.Fatalf("subprotocol %q", got)
	}
	c.SetReadLimit(1 << 20)
	pc := &pbClient{t: t, c: c, frames: make(chan protocol.ServerFrame, 1024), done: make(chan struct{})}
	go pc.readLoop()
	t.Cleanup(func() {
		_ = c.Close(websocket.StatusNormalClosure, "")
		<-pc.done
	})
	if user != "" {
		pc.send(protocol.ClientFrame{Type: protocol.TypeConnect, ID: 1, Token: token(t, user, time.Hour, nil)})
		if f := pc.expect(protocol.TypeConnected).(*protocol.Connected); f.User != user {
			t.Fatalf("connected as %q", f.User)
		}
	}
	return pc
}

func (pc *pbClient) readLoop() {
	defer close(pc.done)
	defer close(pc.frames)
	for {
		typ, b, err := pc.c.Read(context.Background())
		if err != nil {
			pc.err = err
			return
		}
		if typ != websocket.MessageBinary {
			pc.err = errors.New("a text message on ferry.v1.protobuf")
			return
		}
		frames, err := protocol.DecodeProtobufServer(nil, b)
		if err != nil {
			pc.err = err
			return
		}
		for _, f := range frames {
			pc.frames <- f
		}
	}
}

func (pc *pbClient) sendRaw(b []byte) {
	pc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pc.c.Write(ctx, websocket.MessageBinary, b); err != nil {
		pc.t.Fatalf("write: %v", err)
	}
}

func (pc *pbClient) send(frames ...protocol.ClientFrame) {
	pc.t.Helper()
	var msg []byte
	for i := range frames {
		var err error
		if msg, err = protocol.AppendProtobufClientFrame(msg, &frames[i]); err != nil {
			pc.t.Fatal(err)
		}
	}
	pc.sendRaw(msg)
}

// expect skips frames until one of type typ arrives (a hang guard of 10 s,
// not a timing assertion); an error or disconnect fails the test.
func (pc *pbClient) expect(typ string) protocol.ServerFrame {
	pc.t.Helper()
	for {
		select {
		case f, ok := <-pc.frames:
			if !ok {
				<-pc.done
				pc.t.Fatalf("connection ended: %v", pc.err)
			}
			if f.FrameType() == typ {
				return f
			}
			if typ != protocol.TypeError && (f.FrameType() == protocol.TypeError || f.FrameType() == protocol.TypeDisconnect) {
				pc.t.Fatalf("want %s, got %+v", typ, f)
			}
		case <-time.After(10 * time.Second):
			pc.t.Fatalf("no %s frame within 10s", typ)
		}
	}
}

// dialMsgpack connects a MessagePack client (frames read by the shared
// helper, which decodes binary messages as MessagePack).
func dialMsgpack(t testing.TB, n *node, user string) (*client, func(map[string]any)) {
	t.Helper()
	cl, _, err := dial(t, n, dialOpts{subprotocol: protocol.SubprotocolMsgpack})
	if err != nil {
		t.Fatal(err)
	}
	send := func(v map[string]any) {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.c.Write(t.Context(), websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "connect", "id": 1, "token": token(t, user, time.Hour, nil)})
	cl.expect("connected")
	return cl, send
}

// TestMixedCodecDelivery publishes with each codec to subscribers of all
// three and checks the payload rules of docs/protocol.md.
func TestMixedCodecDelivery(t *testing.T) {
	n := startNode(t, nil)
	const ch = "chat:mixed"
	js := connectClient(t, n, "js")
	js.request(map[string]any{"type": "subscribe", "id": 2, "channel": ch})
	mp, mpSend := dialMsgpack(t, n, "mp")
	mpSend(map[string]any{"type": "subscribe", "id": 2, "channel": ch})
	mp.expect("subscribed")
	pb := dialProtobuf(t, n, "pb")
	pb.send(protocol.ClientFrame{Type: protocol.TypeSubscribe, ID: 2, Channel: ch})
	pb.expect(protocol.TypeSubscribed)

	bin := []byte{0x00, 0xff, 0x10, 0x80, 'Y'}
	wrapper := string(protocol.BinaryJSON(bin))

	t.Run("JSON publisher", func(t *testing.T) {
		js.request(map[string]any{"type": "publish", "id": 3, "channel": ch, "data": map[string]any{"text": "hi"}})
		m := pb.expect(protocol.TypeMessage).(*protocol.Message)
		if got, _ := m.Data.Binary(); got != nil || string(m.Data) != `{"text":"hi"}` {
			t.Fatalf("protobuf subscriber got %s", m.Data)
		}
		if d, _ := mp.expect("message")["data"].(map[string]any); d["text"] != "hi" {
			t.Fatalf("msgpack subscriber got %v", d)
		}
		if m.From != "js" || m.Seq == 0 {
			t.Fatalf("message %+v", m)
		}
	})
	t.Run("protobuf publisher of binary", func(t *testing.T) {
		pb.send(protocol.ClientFrame{Type: protocol.TypePublish, ID: 4, Channel: ch, Data: protocol.BinaryJSON(bin)})
		if p := pb.expect(protocol.TypePublished).(*protocol.Published); p.ID != 4 || p.Offset != 2 {
			t.Fatalf("published %+v", p)
		}
		jm := js.expect("message")
		d, _ := jm["data"].(map[string]any)
		if len(d) != 1 || d[protocol.BinaryKey] == nil {
			t.Fatalf("JSON subscriber got %v, want %s", jm["data"], wrapper)
		}
		back, ok := protocol.RawJSON(`{"$bin":"` + d[protocol.BinaryKey].(string) + `"}`).Binary()
		if !ok || !bytes.Equal(back, bin) {
			t.Fatalf("JSON subscriber's wrapper holds %x", back)
		}
		if d, _ := mp.expect("message")["data"].(map[string]any); d[protocol.BinaryKey] != jm["data"].(map[string]any)[protocol.BinaryKey] {
			t.Fatalf("msgpack subscriber got %v", d)
		}
	})
	t.Run("MessagePack publisher", func(t *testing.T) {
		mpSend(map[string]any{"type": "publish", "id": 5, "channel": ch, "data": map[string]any{"n": 7}})
		mp.expect("published")
		m := pb.expect(protocol.TypeMessage).(*protocol.Message)
		if string(m.Data) != `{"n":7}` {
			t.Fatalf("protobuf subscriber got %s", m.Data)
		}
		if d, _ := js.expect("message")["data"].(map[string]any); num(d["n"]) != 7 {
			t.Fatalf("JSON subscriber got %v", d)
		}
	})
	t.Run("history over protobuf keeps the bytes", func(t *testing.T) {
		pb.send(protocol.ClientFrame{Type: protocol.TypeHistory, ID: 6, Channel: ch})
		h := pb.expect(protocol.TypeHistory).(*protocol.History)
		if len(h.Messages) != 3 || h.ID != 6 {
			t.Fatalf("history %+v", h)
		}
		if got, ok := h.Messages[1].Data.Binary(); !ok || !bytes.Equal(got, bin) {
			t.Fatalf("history message 2: %s", h.Messages[1].Data)
		}
	})
}

func TestProtobufErrorAnswers(t *testing.T) {
	n := startNode(t, nil)
	pb := dialProtobuf(t, n, "pb")

	// A batch: ping, a frame of a kind this server does not know (field
	// 90), ping. The unknown one gets error 400 with its id; the others go
	// on.
	var msg []byte
	msg, _ = protocol.AppendProtobufClientFrame(msg, &protocol.ClientFrame{Type: protocol.TypePing, ID: 7})
	msg = append(msg, 0x0a, 0x05, 0x08, 0x08, 0xd2, 0x05, 0x00) // Frame{id: 8, field 90: ""}
	msg, _ = protocol.AppendProtobufClientFrame(msg, &protocol.ClientFrame{Type: protocol.TypePing, ID: 9})
	pb.sendRaw(msg)
	if p := pb.expect(protocol.TypePong).(*protocol.Pong); p.ID != 7 {
		t.Fatalf("pong %+v", p)
	}
	e := pb.expect(protocol.TypeError).(*protocol.ErrorFrame)
	if e.ID != 8 || e.Code != 400 || e.Reason != "unknown frame type (field 90 of ferry.v1.Frame)" {
		t.Fatalf("error %+v", e)
	}
	if p := pb.expect(protocol.TypePong).(*protocol.Pong); p.ID != 9 {
		t.Fatalf("pong %+v", p)
	}

	// Bytes that are not a Batch: disconnect 4014, then close 4014.
	pb.sendRaw([]byte{0xff, 0xff, 0xff})
	d := pb.expect(protocol.TypeDisconnect).(*protocol.Disconnect)
	if d.Code != protocol.CloseProtocolError {
		t.Fatalf("disconnect %+v", d)
	}
	for range pb.frames {
	}
	<-pb.done
	var ce websocket.CloseError
	if !errors.As(pb.err, &ce) || int(ce.Code) != protocol.CloseProtocolError {
		t.Fatalf("closed with %v, want %d", pb.err, protocol.CloseProtocolError)
	}
}
