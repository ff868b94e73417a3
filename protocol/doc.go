// Package protocol defines Ferry's wire protocol, version 1: every frame of
// PROTOCOL.md as a Go type, the close and error codes, and the three codecs
// (JSON for the "ferry.v1.json" subprotocol, MessagePack for
// "ferry.v1.msgpack", Protocol Buffers for "ferry.v1.protobuf", whose schema
// is protocol/ferry/v1/ferry.proto).
//
// The package is shared by the server and the Go SDK: one wire model for
// both ends. It has no dependency on any transport: a codec turns bytes into
// ClientFrames and server frames into bytes, whatever carries them, and
// DecodeServer turns a server's bytes back into ServerMessages for a client
// (a round-trip test ties the two directions together for every codec).
//
// The hot path is the message frame that a broadcast sends to many
// connections. Its body is encoded once per codec (NewPreparedMessage) and
// every recipient only appends its own session sequence number
// (Codec.AppendMessage), so fan-out never re-encodes the payload.
//
// Payloads are carried as JSON bytes (RawJSON) whichever codec they came in
// by; RawJSON documents how MessagePack values map to JSON and back.
package protocol
