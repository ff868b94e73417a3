// Client.upload against a model of the server's upload frames on a fake
// WebSocket: chunks pipelined, a refused chunk answered by asking the
// offset again, a dropped connection survived, the hash checked.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { Client, ServerError, sha256Hex } from "../../dist/index.js";
import { FakeClock, fakeWebSocket, flush, ticketFetch } from "./fakes.mjs";

/** The server side of uploads, as the protocol says it behaves. */
class UploadModel {
  uploads = new Map(); // id -> { name, size, sha256, bytes: Buffer }
  seen = new Set();
  refuseChunkAt = -1; // answer this offset with 409 once, without writing
  silentAfter = Infinity; // write chunks past this many bytes but send no reply (a cut)
  answer(ws) {
    for (const f of ws.frames()) {
      if (this.seen.has(f)) continue;
      this.seen.add(f);
      const r = this.handle(f);
      if (r) ws.serverSend(r);
    }
  }
  handle(f) {
    const err = (code, reason) => ({ type: "error", id: f.id, code, reason });
    switch (f.type) {
      case "upload.begin": {
        for (const [id, u] of this.uploads) {
          if (u.name === f.name && u.size === f.size && u.sha256 === f.sha256) return { type: "upload.ready", id: f.id, upload: id, offset: u.bytes.length };
        }
        const id = "u" + (this.uploads.size + 1);
        this.uploads.set(id, { name: f.name, size: f.size, sha256: f.sha256, bytes: Buffer.alloc(0) });
        return { type: "upload.ready", id: f.id, upload: id, offset: 0 };
      }
      case "upload.chunk": {
        const u = this.uploads.get(f.upload);
        if (!u) return err(404, "upload.chunk: upload not found");
        if (f.offset !== u.bytes.length) return err(409, `upload.chunk: continue from offset ${u.bytes.length}`);
        if (f.offset === this.refuseChunkAt) {
          this.refuseChunkAt = -1;
          return err(409, "upload.chunk: refused once by the test");
        }
        u.bytes = Buffer.concat([u.bytes, Buffer.from(f.data, "base64")]);
        if (u.bytes.length > this.silentAfter) return undefined;
        return { type: "upload.progress", id: f.id, upload: f.upload, offset: u.bytes.length };
      }
      case "upload.commit": {
        const u = this.uploads.get(f.upload);
        if (u.bytes.length < u.size) return err(409, `upload.commit: send from offset ${u.bytes.length} first`);
        const got = createHash("sha256").update(u.bytes).digest("hex");
        if (got !== u.sha256) {
          this.uploads.delete(f.upload);
          return err(409, "upload.commit: wrong sha256, the upload was removed");
        }
        return { type: "upload.done", id: f.id, upload: f.upload, size: u.size, sha256: got, url: "/v1/uploads/" + f.upload };
      }
    }
    return undefined;
  }
}

async function connected(ws) {
  const connect = ws.frames()[0];
  ws.serverSend({ type: "connected", id: connect.id, session: "s1", resume_token: "r1", heartbeat: { interval_ms: 25000, timeout_ms: 10000 }, limits: { window: 0, max_frame_bytes: 65536 } });
  await flush();
}

function newClient() {
  const clock = new FakeClock();
  const { FakeWS, sockets } = fakeWebSocket();
  const c = new Client({ url: "http://node.test", token: "tok", WebSocket: FakeWS, fetch: ticketFetch, clock, random: () => 0.5, transports: ["websocket"], watchEnvironment: false });
  return { c, clock, sockets };
}

/** Runs the model against the current socket until p settles. */
async function drive(p, sockets, model, onRound = () => {}) {
  let done = false;
  p.finally(() => (done = true)).catch(() => {});
  for (let i = 0; i < 2000 && !done; i++) {
    await flush();
    await onRound();
    model.answer(sockets.at(-1));
  }
  return p;
}

test("upload: chunks pipelined in order, a refused chunk resumes from the server's offset, progress reported", async () => {
  const { c, sockets } = newClient();
  const ready = c.connect();
  await flush();
  await connected(sockets[0]);
  await ready;
  const data = randomBytes(10_000);
  const model = new UploadModel();
  model.refuseChunkAt = 4000;
  const progress = [];
  const res = await drive(c.upload("a.bin", data, { chunkSize: 1000, window: 3, onProgress: (d) => progress.push(d) }), sockets, model);
  assert.equal(res.sha256, createHash("sha256").update(data).digest("hex"));
  assert.equal(res.size, 10_000);
  assert.equal(res.url, "/v1/uploads/" + res.id);
  assert.equal(res.resumes, 1);
  assert.deepEqual(model.uploads.get(res.id).bytes, data);
  assert.equal(progress.at(-1), 10_000);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], "progress never goes back");
  const chunks = sockets[0].frames().filter((f) => f.type === "upload.chunk");
  assert.ok(chunks.every((f) => f.data.length <= Math.ceil(1000 / 3) * 4), "chunks of at most chunkSize bytes");
  const begins = sockets[0].frames().filter((f) => f.type === "upload.begin");
  assert.equal(begins.length, 2);
  assert.equal(begins[1].upload, res.id, "the second begin names the upload");
  c.close();
});

test("upload: a dropped connection sends the unanswered chunks again on the next one", async () => {
  const { c, clock, sockets } = newClient();
  const ready = c.connect();
  await flush();
  await connected(sockets[0]);
  await ready;
  const data = randomBytes(8_000);
  const model = new UploadModel();
  model.silentAfter = 3000; // bytes past 3000 are written, their replies lost
  let cut = false;
  const res = await drive(c.upload("b.bin", data, { chunkSize: 1000, window: 2 }), sockets, model, async () => {
    const u = model.uploads.get("u1");
    if (!cut && u && u.bytes.length > 3000) {
      cut = true;
      model.silentAfter = Infinity;
      sockets[0].serverClose(1006);
      await flush();
      await clock.advance(1000);
      await flush();
      await connected(sockets[1]);
    }
  });
  assert.ok(cut, "the connection was cut");
  assert.deepEqual(model.uploads.get(res.id).bytes, data);
  assert.equal(res.sha256, await sha256Hex(data));
  c.close();
});

test("upload: a wrong hash and bad arguments are clear errors", async () => {
  const { c, sockets } = newClient();
  const ready = c.connect();
  await flush();
  await connected(sockets[0]);
  await ready;
  const model = new UploadModel();
  const p = c.upload("c.bin", randomBytes(500), { sha256: "0".repeat(64) });
  await assert.rejects(drive(p, sockets, model), (e) => e instanceof ServerError && e.code === 409 && /sha256/.test(e.message));
  await assert.rejects(c.upload("", new Uint8Array(1)), /name/);
  await assert.rejects(c.upload("d", new Uint8Array(0)), /empty/);
  await assert.rejects(c.upload("d", "not bytes"), /Uint8Array/);
  c.close();
});
