// Everything the SDK does, against the real ferry binary, over each transport.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { Client, ServerError } from "../../dist/index.js";
import { startFerry, until } from "../ferry.mjs";

let node;
before(async () => {
  node = await startFerry();
});
after(() => node?.stop());

const transports = [["websocket"], ["sse"], ["poll"]];

for (const tr of transports) {
  describe(`over ${tr[0]}`, () => {
    test("connect, subscribe, publish, history, presence, refresh", async () => {
      const c = new Client({ url: node.url, token: node.token("alice"), WebSocket, transports: tr, watchEnvironment: false });
      try {
        await c.connect();
        assert.equal(c.transport, tr[0]);
        const got = [];
        const ch = `chat:${tr[0]}-basic`;
        await c.subscribe(ch, { onMessage: (m) => got.push(m) });
        const r1 = await c.publish(ch, { n: 1 }, { key: "k1" });
        assert.equal(r1.offset, 1);
        assert.equal(r1.duplicate, false);
        const r2 = await c.publish(ch, { n: 1 }, { key: "k1" });
        assert.equal(r2.duplicate, true);
        assert.equal(r2.offset, 1);
        await node.apiPublish(ch, { n: 2 });
        await until("two messages", () => got.length === 2);
        assert.deepEqual(got.map((m) => m.offset), [1, 2]);
        assert.deepEqual(got[0].data, { n: 1 });
        assert.equal(got[0].from, "alice");
        const h = await c.history(ch, { since: { offset: 1, epoch: got[0].epoch } });
        assert.deepEqual(h.messages.map((m) => m.data), [{ n: 2 }]);
        const p = await c.presence(ch);
        assert.equal(p.count, 1);
        assert.equal(p.clients[0].user, "alice");
        await c.refresh(node.token("alice", 7200));
        await assert.rejects(c.refresh(node.token("bob")), (e) => e instanceof ServerError && e.code === 403);
        await assert.rejects(c.subscribe("nope:{x}"), /channel/);
      } finally {
        c.close();
      }
    });

    test("batched frames: many publishes in one task arrive in order", async () => {
      const c = new Client({ url: node.url, token: node.token("alice"), WebSocket, transports: tr, watchEnvironment: false });
      try {
        await c.connect();
        const ch = `chat:${tr[0]}-batch`;
        const got = [];
        await c.subscribe(ch, { onMessage: (m) => got.push(m.data) });
        const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => c.publish(ch, i)));
        assert.deepEqual(rs.map((r) => r.offset), Array.from({ length: 50 }, (_, i) => i + 1));
        await until("50 messages", () => got.length === 50);
        assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
      } finally {
        c.close();
      }
    });
  });
}

test("a bad token is fatal; getToken is asked once on HTTP 401", async () => {
  let asked = 0;
  const c = new Client({
    url: node.url,
    token: "not.a.jwt",
    getToken: async () => {
      asked++;
      return node.token("alice");
    },
    WebSocket,
    watchEnvironment: false,
  });
  await c.connect();
  assert.equal(asked, 1);
  c.close();
  const bad = new Client({ url: node.url, token: "not.a.jwt", WebSocket, watchEnvironment: false });
  await assert.rejects(bad.connect(), /401/);
  assert.equal(bad.state, "closed");
});

test("an expired token (4015) is replaced through getToken and the session resumes", async () => {
  const c = new Client({ url: node.url, token: node.token("alice", 2), getToken: async () => node.token("alice", 3600), refreshBefore: 0, WebSocket, watchEnvironment: false, backoff: { initial: 50 } });
  try {
    await c.connect();
    const got = [];
    await c.subscribe("chat:expiry", { onMessage: (m) => got.push(m.offset) });
    await node.apiPublish("chat:expiry", 1);
    await until("message 1", () => got.length === 1);
    // The refresh timer fires at once (refreshBefore 0, at most half the life): the connection stays.
    await new Promise((r) => setTimeout(r, 3000));
    await node.apiPublish("chat:expiry", 2);
    await until("message 2", () => got.length === 2);
    assert.deepEqual(got, [1, 2]);
  } finally {
    c.close();
  }
});

test("fallback: WebSocket refused -> SSE, then upgrade back to WebSocket keeping the session", async () => {
  let refuse = true;
  class FlakyWS extends WebSocket {
    constructor(url, protocols) {
      super(refuse ? url.replace("/v1/ws", "/v1/nowhere") : url, protocols);
    }
  }
  const c = new Client({ url: node.url, token: node.token("alice"), WebSocket: FlakyWS, upgradeAfter: 300, watchEnvironment: false });
  try {
    await c.connect();
    assert.equal(c.transport, "sse");
    const session = c.sessionId;
    const got = [];
    await c.subscribe("chat:upgrade", { onMessage: (m) => got.push(m.offset) });
    await node.apiPublish("chat:upgrade", 1);
    await until("message over SSE", () => got.length === 1);
    refuse = false;
    await until("upgrade to websocket", () => c.transport === "websocket");
    assert.equal(c.sessionId, session);
    await node.apiPublish("chat:upgrade", 2);
    await until("message over websocket", () => got.length === 2);
    assert.deepEqual(got, [1, 2]);
  } finally {
    c.close();
  }
});

test("msgpack codec over WebSocket (@ferry/client/msgpack)", async () => {
  const { msgpackCodec } = await import("../../dist/msgpack.js");
  const c = new Client({ url: node.url, token: node.token("alice"), WebSocket, codec: msgpackCodec, transports: ["websocket"], watchEnvironment: false });
  try {
    await c.connect();
    const got = [];
    await c.subscribe("chat:mp", { onMessage: (m) => got.push(m) });
    const r = await c.publish("chat:mp", { n: 1, s: "é", list: [1, 2.5] });
    assert.equal(r.offset, 1);
    await until("the message", () => got.length === 1);
    assert.deepEqual(got[0].data, { n: 1, s: "é", list: [1, 2.5] });
  } finally {
    c.close();
  }
});
