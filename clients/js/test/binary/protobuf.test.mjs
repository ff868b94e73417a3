// The protobuf codec (@ferry/client/protobuf) against the real ferry
// binary: a protobuf subscriber gets what JSON publishers send, binary
// payloads round-trip as bytes, and JSON, MessagePack and protobuf
// subscribers of one channel all receive the same messages.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { Client } from "../../dist/index.js";
import { msgpackCodec } from "../../dist/msgpack.js";
import { binary, bytesOf, protobufCodec } from "../../dist/protobuf.js";
import { startFerry, until } from "../ferry.mjs";

let node;
before(async () => {
  node = await startFerry();
});
after(() => node?.stop());

const codecs = { json: undefined, msgpack: msgpackCodec, protobuf: protobufCodec };

async function client(user, codec) {
  const c = new Client({ url: node.url, token: node.token(user), WebSocket, codec, transports: ["websocket"], watchEnvironment: false });
  await c.connect();
  return c;
}

test("protobuf: a JSON publisher's message reaches a protobuf subscriber with the same data; history and presence", async () => {
  const sub = await client("alice", protobufCodec);
  const pub = await client("bob");
  try {
    const ch = "chat:pb-json";
    const got = [];
    await sub.subscribe(ch, { onMessage: (m) => got.push(m), presence: true });
    const data = { text: "hé ☃", n: [1, 2.5, null, true], nested: { deep: [{}] } };
    const r = await pub.publish(ch, data, { priority: "critical" });
    await node.apiPublish(ch, 42);
    await until("two messages", () => got.length === 2);
    assert.deepEqual(got.map((m) => [m.offset, m.data]), [[r.offset, data], [r.offset + 1, 42]]);
    assert.equal(got[0].from, "bob");
    assert.equal(got[0].priority, "critical");
    const h = await sub.history(ch, { since: { offset: 0, epoch: got[0].epoch } });
    assert.deepEqual(h.messages.map((m) => m.data), [data, 42]);
    const p = await sub.presence(ch);
    assert.equal(p.count, 1);
    const own = await sub.publish(ch, { from: "pb" });
    assert.equal(own.offset, r.offset + 2);
    await until("own message", () => got.length === 3);
    assert.deepEqual(got[2].data, { from: "pb" });
  } finally {
    sub.close();
    pub.close();
  }
});

test("protobuf: binary payloads round-trip as bytes; JSON subscribers see the $bin object", async () => {
  const pbSub = await client("alice", protobufCodec);
  const jsSub = await client("carol");
  const pbPub = await client("bob", protobufCodec);
  const jsPub = await client("dave");
  try {
    const ch = "files:pb-bin";
    const pbGot = [];
    const jsGot = [];
    await pbSub.subscribe(ch, { onMessage: (m) => pbGot.push(m) });
    await jsSub.subscribe(ch, { onMessage: (m) => jsGot.push(m) });
    const bytes = new Uint8Array(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919) & 0xff;
    const text = new TextEncoder().encode("hello"); // UTF-8, but not JSON
    await pbPub.publish(ch, bytes);
    await pbPub.publish(ch, text);
    await jsPub.publish(ch, binary(new Uint8Array([0, 1, 0xfe, 0xff]))); // JSON publishing binary for protobuf subscribers
    await until("three messages each", () => pbGot.length === 3 && jsGot.length === 3);
    assert.deepEqual(bytesOf(pbGot[0].data), bytes);
    assert.deepEqual(bytesOf(pbGot[1].data), text);
    assert.deepEqual(bytesOf(pbGot[2].data), new Uint8Array([0, 1, 0xfe, 0xff]));
    assert.deepEqual(jsGot.map((m) => m.data), pbGot.map((m) => m.data));
    assert.deepEqual(jsGot[1].data, { $bin: "aGVsbG8=" });
  } finally {
    for (const c of [pbSub, jsSub, pbPub, jsPub]) c.close();
  }
});

test("mixed codecs: JSON, MessagePack and protobuf subscribers of one channel receive the same messages", async () => {
  const ch = "chat:mixed";
  const subs = {};
  const got = {};
  const pubs = {};
  try {
    for (const [name, codec] of Object.entries(codecs)) {
      subs[name] = await client(`sub-${name}`, codec);
      got[name] = [];
      await subs[name].subscribe(ch, { onMessage: (m) => got[name].push(m) });
      pubs[name] = await client(`pub-${name}`, codec);
    }
    const sent = [];
    for (let i = 0; i < 30; i++) {
      const name = Object.keys(codecs)[i % 3];
      const data = i % 5 === 4 ? binary(new Uint8Array([i, 0xff, 0])) : { i, by: name, s: "ü".repeat(i % 4), f: i / 4 };
      sent.push(data);
      await pubs[name].publish(ch, data);
    }
    await node.apiPublish(ch, { i: 30, by: "api" });
    sent.push({ i: 30, by: "api" });
    await until("every subscriber has every message", () => Object.values(got).every((g) => g.length === sent.length));
    for (const [name, g] of Object.entries(got)) {
      assert.deepEqual(g.map((m) => m.offset), sent.map((_, i) => i + 1), `${name}: offsets`);
      assert.deepEqual(g.map((m) => m.data), sent, `${name}: data`);
    }
  } finally {
    for (const c of [...Object.values(subs), ...Object.values(pubs)]) c.close();
  }
});
