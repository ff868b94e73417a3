// Chaos: a proxy cuts connections at random for CHAOS_SECONDS (default 30)
// while 3 publishers send; a subscriber on each transport must receive
// every message exactly once, in order. The figures go to stdout and to
// artifacts/chaos.json.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { Client } from "../../dist/index.js";
import { startProxy } from "../proxy.mjs";
import { startFerry, until } from "../ferry.mjs";

const seconds = Number(process.env.CHAOS_SECONDS || 30);
let node;
let proxy;
before(async () => {
  node = await startFerry();
  proxy = await startProxy(node.port);
});
after(async () => {
  await proxy?.close();
  await node?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const opts = (transports, user) => ({
  url: proxy.url,
  token: node.token(user),
  WebSocket,
  transports,
  watchEnvironment: false,
  backoff: { initial: 100, max: 1000 },
  timeouts: { websocket: 3000, sse: 3000, poll: 3000 },
});

test(`chaos: random cuts for ${seconds} s, 3 publishers, a subscriber per transport`, { timeout: (seconds + 120) * 1000 }, async () => {
  const ch = "chat:chaos";
  const subs = {};
  for (const tr of ["websocket", "sse", "poll"]) {
    const c = new Client(opts([tr], `sub-${tr}`));
    const rec = { client: c, received: 0, duplicates: 0, reorderings: 0, seen: new Set(), lastOffset: 0, perPub: [[], [], []] };
    await c.connect();
    await c.subscribe(ch, {
      onMessage: (m) => {
        rec.received++;
        const id = `${m.data.p}:${m.data.i}`;
        if (rec.seen.has(id)) rec.duplicates++;
        rec.seen.add(id);
        if (m.offset <= rec.lastOffset) rec.reorderings++;
        rec.lastOffset = m.offset;
        rec.perPub[m.data.p].push(m.data.i);
      },
    });
    subs[tr] = rec;
  }
  const pubs = [0, 1, 2].map((p) => new Client(opts(["websocket", "sse", "poll"], `pub-${p}`)));
  await Promise.all(pubs.map((c) => c.connect()));
  const sent = [0, 0, 0];
  let stop = false;
  const publishing = pubs.map(async (c, p) => {
    for (let i = 0; !stop; i++) {
      await c.publish(ch, { p, i }); // retried across cuts with its key
      sent[p] = i + 1;
      await sleep(10);
    }
  });
  let cuts = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    await sleep(200 + Math.random() * 1300);
    cuts += proxy.cut(0.5);
  }
  stop = true;
  await Promise.all(publishing);
  const total = sent.reduce((a, b) => a + b, 0);
  for (const [tr, rec] of Object.entries(subs)) {
    await until(`${tr} subscriber to receive all ${total} messages (has ${rec.seen.size}; state ${rec.client.state} ${rec.client.transport}; ${JSON.stringify(rec.client.stats)}; missing ${[0, 1, 2].map((p) => Array.from({ length: sent[p] }, (_, i) => i).filter((i) => !rec.seen.has(`${p}:${i}`)).slice(0, 8).join(",")).join(" / ")})`, () => rec.seen.size >= total, 60000);
  }
  const figures = { seconds, cuts, sent: total, transports: {} };
  for (const [tr, rec] of Object.entries(subs)) {
    figures.transports[tr] = {
      received: rec.received,
      lost: total - rec.seen.size,
      duplicates: rec.duplicates,
      reorderings: rec.reorderings,
      connects: rec.client.stats.connects,
      resumes: rec.client.stats.resumes,
      duplicatesDroppedBySDK: rec.client.stats.duplicatesDropped,
      gapsFilledBySDK: rec.client.stats.gapsFilled,
    };
  }
  console.log("chaos figures:", JSON.stringify(figures));
  mkdirSync(new URL("../../artifacts/", import.meta.url), { recursive: true });
  writeFileSync(new URL("../../artifacts/chaos.json", import.meta.url), JSON.stringify(figures, null, 2) + "\n");
  for (const c of [...pubs, ...Object.values(subs).map((r) => r.client)]) c.close();
  assert.ok(cuts > 0, "the proxy cut connections");
  for (const [tr, rec] of Object.entries(subs)) {
    assert.equal(rec.duplicates, 0, `${tr}: duplicates`);
    assert.equal(rec.reorderings, 0, `${tr}: reorderings`);
    assert.equal(rec.received, total, `${tr}: received`);
    for (let p = 0; p < 3; p++) assert.deepEqual(rec.perPub[p], Array.from({ length: sent[p] }, (_, i) => i), `${tr}: publisher ${p} in order`);
  }
});
