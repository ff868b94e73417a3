// rpc against the real ferry binary and a real HTTP back end (this process),
// over each transport: the answer, a refusal, and a back end that is down.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import http from "node:http";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { Client, ServerError } from "../../dist/index.js";
import { freePort, startFerry } from "../ferry.mjs";

const secret = "js-rpc-test-secret";
let node;
let backend;
let badSignatures = 0;

/** Checks Ferry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">. */
function signed(header, body) {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.split("=")));
  const want = createHmac("sha256", secret).update(`${parts.t}.${body}`).digest("hex");
  return parts.v1 === want && Math.abs(Date.now() / 1000 - Number(parts.t)) < 300;
}

before(async () => {
  backend = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (!signed(req.headers["ferry-signature"], body)) {
        badSignatures++;
        res.writeHead(401).end();
        return;
      }
      const r = JSON.parse(body);
      res.setHeader("Content-Type", "application/json");
      if (r.method === "app.deny") {
        res.end(JSON.stringify({ error: { code: 403, reason: "not yours" } }));
        return;
      }
      res.end(JSON.stringify({ data: { echo: r.data ?? null, user: r.user, transport: r.transport } }));
    });
  });
  await new Promise((resolve) => backend.listen(0, "127.0.0.1", resolve));
  const down = await freePort();
  const rpc = { "app.": `http://127.0.0.1:${backend.address().port}/rpc`, "down.": `http://127.0.0.1:${down}/rpc` };
  node = await startFerry({ FERRY_HOOKS_RPC: JSON.stringify(rpc), FERRY_HOOKS_SECRET: secret });
});
after(() => {
  node?.stop();
  backend?.close();
});

const wire = { websocket: "ws", sse: "sse", poll: "poll" };
for (const tr of ["websocket", "sse", "poll"]) {
  describe(`rpc over ${tr}`, () => {
    test("answer, refusal, back end down, no back end", async () => {
      const c = new Client({ url: node.url, token: node.token("alice"), WebSocket, transports: [tr], watchEnvironment: false });
      try {
        await c.connect();
        assert.deepEqual(await c.rpc("app.echo", { q: [1, 2] }), { echo: { q: [1, 2] }, user: "alice", transport: wire[tr] });
        await assert.rejects(c.rpc("app.deny", 1), (e) => e instanceof ServerError && e.code === 403);
        await assert.rejects(c.rpc("down.x"), (e) => e instanceof ServerError && e.code === 503 && e.retry);
        await assert.rejects(c.rpc("nowhere"), (e) => e instanceof ServerError && e.code === 404);
        assert.deepEqual(await c.rpc("app.again"), { echo: null, user: "alice", transport: wire[tr] });
        assert.equal(badSignatures, 0);
      } finally {
        c.close();
      }
    });
  });
}
