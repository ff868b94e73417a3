package client_test

import (
	"bytes"
	"testing"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// TestBinaryPayloadAcrossCodecs: binary published over ferry.v1.protobuf
// reaches a protobuf subscriber as the same bytes and a JSON subscriber as
// the documented {"$bin": base64} object; JSON published by a JSON client
// reaches the protobuf subscriber unchanged.
func TestBinaryPayloadAcrossCodecs(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	ctx := t.Context()
	const ch = "chat:binary"
	pb := dial(t, n, "pb", func(c *client.Config) { c.Codec = protocol.Protobuf })
	js := dial(t, n, "js", nil)
	pbSub, err := pb.Subscribe(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	jsSub, err := js.Subscribe(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}

	bin := []byte{0x00, 0xff, 0x01, 0x80}
	if _, err := pb.Publish(ctx, ch, protocol.BinaryJSON(bin)); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, pbSub); !bytes.Equal(mustBytes(t, m), bin) {
		t.Fatalf("protobuf subscriber: %s", m.Data)
	}
	if m := recv(t, jsSub); string(m.Data) != `{"$bin":"AP8BgA=="}` || !bytes.Equal(mustBytes(t, m), bin) {
		t.Fatalf("JSON subscriber: %s", m.Data)
	}

	if _, err := js.Publish(ctx, ch, map[string]any{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	if m := recv(t, pbSub); string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("protobuf subscriber: %s", m.Data)
	}
	recv(t, jsSub)
}

func mustBytes(t *testing.T, m client.Message) []byte {
	t.Helper()
	b, ok := m.Bytes()
	if !ok {
		t.Fatalf("not a binary payload: %s", m.Data)
	}
	return b
}
