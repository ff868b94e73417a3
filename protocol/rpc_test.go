package protocol

import (
	"testing"
)

// TestRPCClientFrame checks that every codec reads an rpc frame's method
// and data, and that Validate asks for an id and a method.
func TestRPCClientFrame(t *testing.T) {
	want := ClientFrame{Type: TypeRPC, ID: 3, Method: "auction.bid", Data: RawJSON(`{"amount":5}`)}
	jsonMsg := []byte(`{"type":"rpc","id":3,"method":"auction.bid","data":{"amount":5}}`)
	mp, err := JSONToMsgpack(nil, jsonMsg)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := AppendProtobufClientFrame(nil, &want)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codec Codec
		msg   []byte
	}{{JSON, jsonMsg}, {Msgpack, mp}, {Protobuf, pb}} {
		frames, err := tc.codec.DecodeClient(nil, tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.codec.Name(), err)
		}
		if len(frames) != 1 {
			t.Fatalf("%s: %d frames", tc.codec.Name(), len(frames))
		}
		f := frames[0]
		if f.Type != TypeRPC || f.ID != 3 || f.Method != "auction.bid" {
			t.Errorf("%s: got %+v", tc.codec.Name(), f)
		}
		if got := string([]byte(f.Data)); got != `{"amount":5}` {
			t.Errorf("%s: data %s", tc.codec.Name(), got)
		}
		if perr := f.Validate(); perr != nil {
			t.Errorf("%s: %v", tc.codec.Name(), perr)
		}
	}
	for _, bad := range []ClientFrame{
		{Type: TypeRPC, Method: "m"},
		{Type: TypeRPC, ID: 1},
		{Type: TypeRPC, ID: 1, Method: string(make([]byte, MaxMethodLen+1))},
	} {
		if perr := bad.Validate(); perr == nil || perr.Code != CodeBadRequest {
			t.Errorf("%+v: got %v, want a 400", bad, perr)
		}
	}
}
