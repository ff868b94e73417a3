// Unit tests without a server: backoff and jitter with an injected clock,
// frame batching, delivery once and in order, the reconnect state machine.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, backoffDelay, backoffWithDefaults, batches, jsonCodec, maxFramesPerMessage } from "../../dist/index.js";
import { FakeClock, fakeWebSocket, flush, ticketFetch } from "./fakes.mjs";

test("backoff: 1 s doubling to 30 s, jitter within +/-20%", () => {
  const b = backoffWithDefaults();
  const mid = () => 0.5;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 10].map((n) => backoffDelay(b, n, mid)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(backoffDelay(b, 0, () => 0), 800);
  assert.equal(backoffDelay(b, 0, () => 0.999999) > 1199.99, true);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(b, 3, Math.random);
    assert.ok(d >= 6400 && d <= 9600, `${d}`);
  }
  const none = backoffWithDefaults({ jitter: -1, initial: 100, max: 250, multiplier: 3 });
  assert.deepEqual([0, 1, 2].map((n) => backoffDelay(none, n, Math.random)), [100, 250, 250]);
});

test("backoff: bad options get a clear error", () => {
  assert.throws(() => backoffWithDefaults({ jitter: 2 }), /jitter/);
  assert.throws(() => backoffWithDefaults({ multiplier: 0.5 }), /multiplier/);
  assert.throws(() => backoffWithDefaults({ initial: 5000, max: 10 }), /max/);
  assert.throws(() => backoffWithDefaults({ initial: -1 }), /initial/);
  assert.throws(() => new Client({ url: "http://x", window: 70000 }), /window/);
  assert.throws(() => new Client({ url: "http://x/?token=abc" }), /token in the URL/);
  assert.throws(() => new Client({ url: "not a url" }), /not a URL/);
  assert.throws(() => new Client({ url: "http://x", transports: ["carrier-pigeon"] }), /transports/);
});

test("batching: decode arrays and single frames; encode batches of at most 1024", () => {
  assert.deepEqual(jsonCodec.decode('{"type":"pong","id":1}'), [{ type: "pong", id: 1 }]);
  assert.deepEqual(jsonCodec.decode('[{"type":"pong","id":1},{"type":"pong","id":2}]').map((f) => f.id), [1, 2]);
  assert.throws(() => jsonCodec.decode("[1]"), /malformed/);
  assert.throws(() => jsonCodec.decode('{"id":1}'), /malformed/);
  assert.equal(jsonCodec.encode([{ type: "ping", id: 1 }]), '{"type":"ping","id":1}');
  assert.equal(jsonCodec.encode([{ type: "ping", id: 1 }, { type: "ping", id: 2 }]), '[{"type":"ping","id":1},{"type":"ping","id":2}]');
  const many = Array.from({ length: 2500 }, (_, i) => ({ type: "ack", seq: i + 1 }));
  assert.deepEqual(batches(many).map((b) => b.length), [maxFramesPerMessage, maxFramesPerMessage, 452]);
});

/** A client on a fake WebSocket, connected as session s1 with one subscription. */
async function connectedClient(opts = {}) {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeWebSocket();
  const states = [];
  const c = new Client({ url: "http://node.test", token: "tok", WebSocket: FakeWS, fetch: ticketFetch, clock, random: () => 0.5, transports: ["websocket"], watchEnvironment: false, ...opts });
  c.on("state", (s) => states.push(s));
  const ready = c.connect();
  await flush();
  const ws = sockets[0];
  assert.equal(ws.url, "ws://node.test/v1/ws?ticket=" + "t".repeat(22));
  assert.deepEqual(ws.protocols, ["ferry.v1.json"]);
  const connect = ws.frames()[0];
  assert.equal(connect.type, "connect");
  assert.equal(connect.token, undefined, "the token travels in the ticket request only");
  ws.serverSend({ type: "connected", id: connect.id, session: "s1", resume_token: "r1", heartbeat: { interval_ms: 25000, timeout_ms: 10000 }, limits: { window: 0 } });
  await ready;
  return { c, clock, sockets, ws, states };
}

test("delivery: once and in offset order; duplicates by offset dropped; acks batched", async () => {
  const { c, clock, ws } = await connectedClient();
  const got = [];
  const subP = c.subscribe("chat:a", { onMessage: (m) => got.push(m.offset) });
  await flush();
  const sub = ws.frames().find((f) => f.type === "subscribe");
  ws.serverSend({ type: "subscribed", id: sub.id, channel: "chat:a", offset: 0, epoch: "" });
  await subP;
  const msg = (offset, seq) => ({ type: "message", channel: "chat:a", offset, epoch: "e1", data: offset, seq });
  ws.serverSend([msg(1, 1), msg(2, 2), msg(2, 3), msg(1, 4), msg(3, 5)]);
  await flush();
  assert.deepEqual(got, [1, 2, 3]);
  assert.equal(c.stats.duplicatesDropped, 2);
  assert.equal(ws.frames().filter((f) => f.type === "ack").length, 0, "acks wait for the interval");
  await clock.advance(100);
  assert.deepEqual(ws.frames().filter((f) => f.type === "ack"), [{ type: "ack", seq: 5 }]);
  c.close();
});

test("state machine: reconnect with backoff, resume, resubscribe with since, publish resent with its key", async () => {
  const { c, clock, sockets, ws, states } = await connectedClient();
  const got = [];
  const subP = c.subscribe("chat:a", { onMessage: (m) => got.push(m.offset) });
  await flush();
  ws.serverSend({ type: "subscribed", id: ws.frames().find((f) => f.type === "subscribe").id, channel: "chat:a", offset: 4, epoch: "e1" });
  await subP;
  ws.serverSend({ type: "message", channel: "chat:a", offset: 5, epoch: "e1", data: 5, seq: 1 });
  await flush();
  const pub = c.publish("chat:a", { x: 1 });
  await flush();
  const first = ws.frames().find((f) => f.type === "publish");
  assert.ok(first.key.length >= 16);

  ws.serverClose(1006);
  await flush();
  const disc = states.at(-1);
  assert.equal(disc.state, "disconnected");
  assert.equal(disc.code, 1006);
  assert.equal(disc.delayMs, 1000, "1 s (jitter at its middle)");
  assert.equal(sockets.length, 1);
  await clock.advance(999);
  assert.equal(sockets.length, 1, "no attempt before the delay");
  await clock.advance(1);
  await flush();
  const ws2 = sockets[1];
  const connect = ws2.frames()[0];
  assert.deepEqual(connect.resume, { session: "s1", token: "r1" });
  // The node could not resume: a new session; the client subscribes again
  // from its position and sends the publish again with the same key.
  ws2.serverSend({ type: "connected", id: connect.id, session: "s2", resume_token: "r2", resumed: false });
  await flush();
  const again = ws2.frames().find((f) => f.type === "subscribe");
  assert.deepEqual(again.since, { offset: 5, epoch: "e1" });
  const resent = ws2.frames().find((f) => f.type === "publish");
  assert.equal(resent.key, first.key);
  ws2.serverSend([
    { type: "subscribed", id: again.id, channel: "chat:a", offset: 6, epoch: "e1", recovered: true, missed: 0 },
    { type: "message", channel: "chat:a", offset: 5, epoch: "e1", data: 5, seq: 1 },
    { type: "message", channel: "chat:a", offset: 6, epoch: "e1", data: 6, seq: 2 },
    { type: "published", id: resent.id, offset: 6, epoch: "e1", duplicate: true },
  ]);
  assert.deepEqual(await pub, { offset: 6, epoch: "e1", duplicate: true });
  await flush();
  assert.deepEqual(got, [5, 6]);
  c.close();
});

test("state machine: fatal close codes stop the client; 4008 waits retry_after_ms; gap reported", async () => {
  for (const code of [4001, 4003, 4011, 4014, 4016]) {
    const { c, ws, states } = await connectedClient();
    ws.serverSend({ type: "disconnect", code, reason: "test", reconnect: false });
    ws.serverClose(code);
    await flush();
    assert.equal(states.at(-1).state, "closed", `after ${code}`);
    assert.equal(c.state, "closed");
    await assert.rejects(c.publish("chat:a", 1), /closed/);
  }
  const { c, ws, states } = await connectedClient();
  ws.serverSend({ type: "disconnect", code: 4008, reason: "rate limited", reconnect: true, retry_after_ms: 1000 });
  ws.serverClose(4008);
  await flush();
  assert.equal(states.at(-1).delayMs, 1100, "retry_after_ms spread upward only");
  c.close();

  const gaps = [];
  const { c: c2, ws: w2 } = await connectedClient();
  const p = c2.subscribe("chat:g", { since: { offset: 3, epoch: "e1" }, onGap: (g) => gaps.push(g) });
  await flush();
  w2.serverSend({ type: "subscribed", id: w2.frames().find((f) => f.type === "subscribe").id, channel: "chat:g", offset: 10, epoch: "e1", recovered: false, missed: 4 });
  await p;
  assert.deepEqual(gaps, [{ channel: "chat:g", missed: 4, epoch: "e1", prevEpoch: "e1", after: { offset: 3, epoch: "e1" } }]);
  c2.close();
});

test("delivery: a stream reset under a live subscription is one gap, with a re-subscription's fields", async () => {
  const { c, ws } = await connectedClient();
  const events = [];
  const subP = c.subscribe("chat:r", { onMessage: (m) => events.push(`${m.epoch}:${m.offset}`), onGap: (g) => events.push(g) });
  await flush();
  const sub = ws.frames().find((f) => f.type === "subscribe");
  ws.serverSend({ type: "subscribed", id: sub.id, channel: "chat:r", offset: 2, epoch: "old" });
  await subP;
  const msg = (epoch, offset, seq) => ({ type: "message", channel: "chat:r", offset, epoch, data: offset, seq });
  // The broker lost the stream: new:1 never came, new:2 is the first.
  ws.serverSend([msg("old", 3, 1), msg("new", 2, 2), msg("new", 3, 3)]);
  await flush();
  assert.deepEqual(events, [
    "old:3",
    { channel: "chat:r", missed: 1, epoch: "new", prevEpoch: "old", after: { offset: 3, epoch: "old" } },
    "new:2",
    "new:3",
  ]);
  c.close();

  // Reported by a subscribed frame (recovered false, new epoch) first:
  // the new epoch's first message does not report it again.
  const { c: c2, ws: w2 } = await connectedClient();
  const ev2 = [];
  const p2 = c2.subscribe("chat:r", { since: { offset: 7, epoch: "old" }, onMessage: (m) => ev2.push(`${m.epoch}:${m.offset}`), onGap: (g) => ev2.push(g) });
  await flush();
  w2.serverSend({ type: "subscribed", id: w2.frames().find((f) => f.type === "subscribe").id, channel: "chat:r", offset: 1, epoch: "new", recovered: false, missed: 0 });
  await p2;
  w2.serverSend([msg("new", 1, 1)]);
  await flush();
  assert.deepEqual(ev2, [{ channel: "chat:r", missed: 0, epoch: "new", prevEpoch: "old", after: { offset: 7, epoch: "old" } }, "new:1"]);
  c2.close();
});

test("state machine: gives up after maxAttempts", async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeWebSocket();
  const states = [];
  const c = new Client({ url: "http://node.test", token: "tok", WebSocket: FakeWS, fetch: ticketFetch, clock, random: () => 0.5, transports: ["websocket"], watchEnvironment: false, backoff: { maxAttempts: 3 } });
  c.on("state", (s) => states.push(s));
  // Every socket fails before connected.
  const push = sockets.push.bind(sockets);
  sockets.push = (s) => push(Object.assign(s, { refuse: true }));
  const failed = assert.rejects(c.connect(), /gave up after 3/);
  for (let i = 0; i < 10 && c.state !== "closed"; i++) await clock.advance(5000);
  await failed;
  assert.equal(sockets.length, 3);
  assert.deepEqual(states.filter((s) => s.state === "disconnected").map((s) => s.delayMs), [1000, 2000]);
});

test("token: refresh sent refreshBefore the expiry, with getToken's token", async () => {
  let tokens = 0;
  const clock = new FakeClock();
  clock.t = 1_000_000;
  const { FakeWS, sockets } = fakeWebSocket();
  const c = new Client({ url: "http://node.test", token: "tok", getToken: async () => `new${++tokens}`, WebSocket: FakeWS, fetch: ticketFetch, clock, transports: ["websocket"], watchEnvironment: false });
  const ready = c.connect();
  await flush();
  const w = sockets[0];
  w.autoPong = true;
  w.serverSend({ type: "connected", id: 1, session: "s", resume_token: "r", expires_at: (clock.t + 120000) / 1000 });
  await ready;
  for (let i = 0; i < 89; i++) await clock.advance(1000);
  assert.equal(w.frames().filter((f) => f.type === "refresh").length, 0);
  assert.ok(w.frames().some((f) => f.type === "ping"), "a quiet link is pinged");
  assert.equal(c.state, "connected");
  await clock.advance(1000);
  const ref = w.frames().find((f) => f.type === "refresh");
  assert.equal(ref?.token, "new1", "refresh sent 30 s before expiry");
  w.serverSend({ type: "refreshed", id: ref.id, expires_at: 0 });
  c.close();
});

test("subscribe before connected waits for the connection; a silent link is dropped after interval + timeout", async () => {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeWebSocket();
  const states = [];
  const c = new Client({ url: "http://node.test", token: "tok", WebSocket: FakeWS, fetch: ticketFetch, clock, random: () => 0.5, transports: ["websocket"], watchEnvironment: false });
  c.on("state", (s) => states.push(s));
  const ready = c.connect();
  let subscribed = false;
  const sp = c.subscribe("chat:early").then(() => (subscribed = true));
  await flush();
  const ws = sockets[0];
  ws.serverSend({ type: "connected", id: 1, session: "s1", resume_token: "r1", heartbeat: { interval_ms: 25000, timeout_ms: 10000 } });
  await ready;
  await flush();
  const sub = ws.frames().find((f) => f.type === "subscribe");
  assert.equal(sub?.channel, "chat:early");
  assert.equal(subscribed, false);
  ws.serverSend({ type: "subscribed", id: sub.id, channel: "chat:early", offset: 0, epoch: "" });
  await sp;
  // Nothing from the node from now on.
  for (let t = 0; t < 34000; t += 1000) await clock.advance(1000);
  assert.equal(c.state, "connected");
  assert.ok(ws.frames().some((f) => f.type === "ping"), "pinged after a quiet interval");
  for (let t = 0; t < 6000 && c.state === "connected"; t += 1000) await clock.advance(1000);
  assert.equal(states.at(-1).state, "disconnected");
  assert.equal(states.at(-1).code, 4012);
  c.close();
  await assert.rejects(c.subscribe("chat:late"), /closed/);
});

test("rpc: sent once with method and data, resolved by rpc.result, rejected by an error frame", async () => {
  const { c, ws } = await connectedClient();
  const p = c.rpc("auction.bid", { amount: 5 });
  await flush();
  const f = ws.frames().find((x) => x.type === "rpc");
  assert.equal(f.method, "auction.bid");
  assert.deepEqual(f.data, { amount: 5 });
  ws.serverSend({ type: "rpc.result", id: f.id, data: { accepted: true } });
  assert.deepEqual(await p, { accepted: true });

  const q = c.rpc("auction.slow");
  await flush();
  const g = ws.frames().filter((x) => x.type === "rpc")[1];
  assert.equal("data" in g, false, "no data field when none is given");
  ws.serverSend({ type: "error", id: g.id, code: 504, reason: "rpc: back end timed out", retry: true });
  await assert.rejects(q, (e) => e.name === "ServerError" && e.code === 504);
  await assert.rejects(c.rpc(""), /method/);
  c.close();
});
