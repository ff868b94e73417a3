// The examples run against a real node and print what they promise.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { startFerry } from "../ferry.mjs";

const run = promisify(execFile);
let node;
before(async () => {
  node = await startFerry();
});
after(() => node?.stop());

const example = (name) => run("node", [new URL(`../../examples/${name}`, import.meta.url).pathname], { env: { ...process.env, FERRY_URL: node.url, FERRY_TOKEN: node.token("alice") }, timeout: 30000 });

test("examples/chat.mjs", async () => {
  const { stdout } = await example("chat.mjs");
  assert.match(stdout, /connected over websocket/);
  assert.match(stdout, /chat:lobby #3 from alice: \{"text":"hello 3"\}/);
});

test("examples/e2e.mjs: the client reads clear text, the server holds an envelope", async () => {
  const { stdout } = await example("e2e.mjs");
  assert.match(stdout, /decrypted by the client: \{"patient":"p-17","heartRate":72\}/);
  assert.match(stdout, /stored on the server: \{"e2e":1,"kid":"2026-12","iv":"[^"]+","ct":"[^"]+"\}/);
});
