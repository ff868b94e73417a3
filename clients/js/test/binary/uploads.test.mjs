// One upload, two paths, against the real ferry binary: begun over the
// WebSocket and finished with tus-js-client (a real third-party tus
// client), and begun with tus-js-client and finished with the SDK.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import * as tus from "tus-js-client";
import WebSocket from "ws";
import { Client } from "../../dist/index.js";
import { tusUploadOptions } from "../../dist/tus.js";
import { startFerry } from "../ferry.mjs";

let node;
before(async () => {
  node = await startFerry();
});
after(() => node?.stop());

const sha256 = (b) => createHash("sha256").update(b).digest("hex");

/** Sends frames over a raw WebSocket and returns the reply to each, by id. */
async function rawSession(token) {
  const ws = new WebSocket(node.url.replace("http", "ws") + "/v1/ws", ["ferry.v1.json"], { headers: { Authorization: `Bearer ${token}` } });
  const waiting = new Map();
  ws.on("message", (m) => {
    for (const f of [JSON.parse(m.toString())].flat()) waiting.get(f.id)?.(f);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let id = 0;
  const request = (f) =>
    new Promise((resolve) => {
      f.id = ++id;
      waiting.set(f.id, resolve);
      ws.send(JSON.stringify(f));
    });
  const c = await request({ type: "connect" });
  assert.equal(c.type, "connected");
  return { request, close: () => ws.close() };
}

/** Runs a tus-js-client upload to its end (or to abort()); resolves with the upload. */
function tusUpload(data, opts) {
  return new Promise((resolve, reject) => {
    const up = new tus.Upload(data, {
      endpoint: node.url + "/v1/uploads/",
      retryDelays: [0, 100, 500],
      storeFingerprintForResuming: false,
      ...opts,
      onSuccess: () => resolve(up),
      onError: reject,
    });
    if (opts.onUpload) opts.onUpload(up, resolve);
    up.start();
  });
}

test("begun over the WebSocket, finished with tus-js-client", async () => {
  const token = node.token("ann");
  const data = randomBytes(300_000);
  const s = await rawSession(token);
  const ready = await s.request({ type: "upload.begin", name: "ws-then-tus.bin", size: data.length, sha256: sha256(data) });
  assert.equal(ready.type, "upload.ready");
  const half = 40_000;
  const prog = await s.request({ type: "upload.chunk", upload: ready.upload, offset: 0, data: data.subarray(0, half).toString("base64") });
  assert.equal(prog.offset, half);

  let firstOffset = -1;
  const up = await tusUpload(data, {
    ...tusUploadOptions({ url: node.url, token, name: "ws-then-tus.bin", sha256: sha256(data), upload: ready.upload }),
    chunkSize: 100_000,
    onProgress: (sent) => {
      if (firstOffset < 0) firstOffset = sent;
    },
  });
  assert.ok(up.url.endsWith("/v1/uploads/" + ready.upload), up.url);
  assert.ok(firstOffset >= half, `tus-js-client went on from the WebSocket's ${half} bytes (first progress ${firstOffset})`);
  const done = await s.request({ type: "upload.commit", upload: ready.upload });
  assert.equal(done.type, "upload.done");
  assert.equal(done.sha256, sha256(data));
  // The owner downloads what arrived.
  const got = Buffer.from(await (await fetch(node.url + done.url, { headers: { Authorization: `Bearer ${token}` } })).arrayBuffer());
  assert.ok(got.equals(data));
  s.close();
});

test("begun with tus-js-client, finished with the SDK over the WebSocket", async () => {
  const token = node.token("bob");
  const data = randomBytes(300_000);
  const sum = sha256(data);
  // tus-js-client sends the first 100 kB, then its network goes away.
  await tusUpload(data, {
    ...tusUploadOptions({ url: node.url, token, name: "tus-then-ws.bin", sha256: sum }),
    chunkSize: 100_000,
    onUpload: (up, resolve) => {
      up.options.onChunkComplete = () => {
        up.abort();
        resolve(up);
      };
    },
  });
  const c = new Client({ url: node.url, token, WebSocket, transports: ["websocket"], watchEnvironment: false });
  try {
    await c.connect();
    const progress = [];
    const res = await c.upload("tus-then-ws.bin", data, { onProgress: (d) => progress.push(d) });
    assert.equal(res.sha256, sum);
    assert.ok(progress[0] >= 100_000, `the SDK went on from tus-js-client's bytes (first progress ${progress[0]})`);
  } finally {
    c.close();
  }
});

test("tus-js-client: another user's upload is not found (the client starts its own); no token is refused", async () => {
  const data = randomBytes(1000);
  const meta = { filename: "mine.bin", sha256: sha256(data) };
  const carl = await tusUpload(data, { headers: { Authorization: `Bearer ${node.token("carl")}` }, metadata: meta });
  const head = await fetch(carl.url, { method: "HEAD", headers: { Authorization: `Bearer ${node.token("dave")}`, "Tus-Resumable": "1.0.0" } });
  assert.equal(head.status, 404);
  // Given carl's URL, dave's tus-js-client finds nothing there and creates
  // an upload of its own.
  const dave = await tusUpload(data, { uploadUrl: carl.url, headers: { Authorization: `Bearer ${node.token("dave")}` }, metadata: meta });
  assert.notEqual(dave.url, carl.url);
  await assert.rejects(tusUpload(data, { metadata: meta, retryDelays: [] }), /401/);
});
