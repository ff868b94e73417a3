// End-to-end encryption: round trip, refusals, and interop with the Go SDK
// through the vector files in test/fixtures (client/e2e_test.go opens
// e2e-ts.json and writes e2e-go.json; this test opens e2e-go.json and
// checks that e2e-ts.json is what this SDK writes; FERRY_E2E_WRITE=1
// rewrites it).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { E2E, isEnvelope, open, seal } from "../../dist/e2e.js";

const fixtures = new URL("../fixtures/", import.meta.url);
const key = (kid, b64) => ({ kid, key: new Uint8Array(Buffer.from(b64, "base64")) });

test("seal and open round trip; refusals", async () => {
  const k = { kid: "k1", key: new Uint8Array(32).fill(7) };
  const env = await seal("med:ward-3", k, { hr: 72 });
  assert.ok(isEnvelope(env));
  assert.deepEqual(await open("med:ward-3", k, env), { hr: 72 });
  await assert.rejects(open("med:ward-4", k, env), /does not open/);
  const ct = Buffer.from(env.ct, "base64");
  ct[0] ^= 1;
  await assert.rejects(open("med:ward-3", k, { ...env, ct: ct.toString("base64") }), /does not open/);
  await assert.rejects(open("med:ward-3", { kid: "k2", key: k.key }, env), /key id/);
  await assert.rejects(seal("c", { kid: "x", key: new Uint8Array(3) }, 1), /16, 24 or 32/);
  const cipher = new E2E({ sealKey: () => k, openKey: (_ch, kid) => (kid === "k1" ? k : undefined) });
  assert.deepEqual(await cipher.open("c", await cipher.seal("c", "hi")), "hi");
  await assert.rejects(cipher.open("c", "plain"), /not encrypted/);
});

test("opens what the Go SDK sealed", async () => {
  const vectors = JSON.parse(readFileSync(new URL("e2e-go.json", fixtures), "utf8"));
  assert.ok(vectors.length >= 3, "Go vectors missing: run FERRY_E2E_WRITE=1 go test -run TestE2EInterop ./client");
  for (const v of vectors) {
    assert.deepEqual(await open(v.channel, key(v.kid, v.key), v.envelope), v.data, v.channel);
  }
});

test("e2e-ts.json is what this SDK seals (the Go test opens it)", async () => {
  const cases = [
    { channel: "med:ward-3", size: 32, data: { patient: "p-17", hr: 72, note: "stable, été 😀" } },
    { channel: "chat:lobby", size: 16, data: "hello" },
    { channel: "sensors:t", size: 24, data: [1, 2.5, null, true] },
  ];
  const out = [];
  for (const [i, c] of cases.entries()) {
    const k = { kid: `t${i + 1}`, key: new Uint8Array(c.size).fill(0x30 + i) };
    const env = await seal(c.channel, k, c.data, new Uint8Array(12).fill(0xb0 + i));
    out.push({ channel: c.channel, kid: k.kid, key: Buffer.from(k.key).toString("base64"), data: c.data, envelope: env });
  }
  const path = new URL("e2e-ts.json", fixtures);
  if (process.env.FERRY_E2E_WRITE === "1") writeFileSync(path, JSON.stringify(out, null, 2) + "\n");
  assert.deepEqual(JSON.parse(readFileSync(path, "utf8")), out);
});
