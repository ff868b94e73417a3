// The protobuf codec (@ferry/client/protobuf) against the Go codec: every
// server frame of test/fixtures/protobuf-go.json (written by
// protocol/jsvectors_test.go) must decode to the frames the Go JSON codec
// wrote for it, and every client message must encode to the bytes the Go
// codec writes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { protobufCodec, binary, bytesOf } from "../../dist/protobuf.js";
import { framesOf } from "../../dist/index.js";

const vectors = JSON.parse(readFileSync(new URL("../fixtures/protobuf-go.json", import.meta.url), "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64"));

test("protobuf vectors cover every server frame kind", () => {
  const kinds = new Set(vectors.server.flatMap((v) => framesOf(v.json).map((f) => f.type)));
  for (const k of ["connected", "subscribed", "unsubscribed", "message", "published", "pong", "refreshed", "history", "presence", "join", "leave", "error", "disconnect", "upload.ready", "upload.progress", "upload.done"]) {
    assert.ok(kinds.has(k), `no vector for ${k}`);
  }
});

for (const v of vectors.server) {
  test(`protobuf decode, Go server vector: ${v.name}`, () => {
    assert.deepEqual(protobufCodec.decode(b64(v.protobuf)), framesOf(v.json));
    // An ArrayBuffer (what a WebSocket gives) reads the same.
    const u = b64(v.protobuf);
    assert.deepEqual(protobufCodec.decode(u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength)), framesOf(v.json));
  });
}

for (const v of vectors.client) {
  test(`protobuf encode, Go client vector: ${v.name}`, () => {
    assert.equal(Buffer.from(protobufCodec.encode(v.frames)).toString("base64"), v.protobuf);
  });
}

test("protobuf: a Uint8Array payload is sent as its bytes, the same as its $bin object", () => {
  const bytes = new Uint8Array([0, 1, 0xfe, 0xff]);
  const f = (data) => [{ type: "publish", id: 8, channel: "files:x", data, key: "k3" }];
  const want = vectors.client.find((v) => v.name === "publish binary").protobuf;
  assert.equal(Buffer.from(protobufCodec.encode(f(bytes))).toString("base64"), want);
  assert.equal(Buffer.from(protobufCodec.encode(f(bytes.buffer))).toString("base64"), want);
  assert.equal(Buffer.from(protobufCodec.encode(f(binary(bytes)))).toString("base64"), want);
  assert.deepEqual(binary(bytes), { $bin: "AAH+/w==" });
  assert.deepEqual(bytesOf({ $bin: "AAH+/w==" }), bytes);
  assert.equal(bytesOf({ $bin: "AAH+/w==", x: 1 }), undefined);
  assert.equal(bytesOf("AAH+/w=="), undefined);
});

test("protobuf: malformed server messages are refused", () => {
  assert.throws(() => protobufCodec.decode("text"), /want a binary protobuf message/);
  assert.throws(() => protobufCodec.decode(new Uint8Array(0)), /without frames/);
  assert.throws(() => protobufCodec.decode(new Uint8Array([0x0a, 0x05, 0x08])), /not a ferry.v1.Batch/);
  assert.throws(() => protobufCodec.decode(new Uint8Array([0x0a, 0x02, 0x08, 0x01])), /without kind/);
  // A client frame (ping, field 5) from the server.
  assert.throws(() => protobufCodec.decode(new Uint8Array([0x0a, 0x02, 0x2a, 0x00])), /client frame/);
  assert.throws(() => protobufCodec.encode([{ type: "bogus" }]), /cannot encode/);
  assert.throws(() => protobufCodec.encode([{ type: "publish", channel: "a", data: 1, priority: "urgent" }]), /priority urgent/);
});
