// Sensors: 300 simulated devices (the Go program, Go SDK) each connect,
// publish one encrypted batch of 3 readings and disconnect; a dashboard
// open before and one opened after both decrypt and show every reading.
// The node relays ciphertext only, and reports itself at /v1/transparency.
// Run over WebSocket and with WebSocket blocked (SSE / long-poll).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { launchBrowser, namespaces, openPage, pageUntil, repoRoot, screenshot, startApp, startFerry } from "./harness.mjs";

const run = promisify(execFile);
let browser, devicesBin;
before(async () => {
  browser = await launchBrowser();
  devicesBin = path.join(mkdtempSync(path.join(os.tmpdir(), "ferry-devices-")), "devices");
  await run("go", ["build", "-o", devicesBin, "./examples/sensors/devices"], { cwd: repoRoot });
});
after(async () => {
  await browser?.close();
});

const devices = 300;
const readings = 3;

for (const blocked of [false, true]) {
  const name = blocked ? "websocket blocked" : "websocket";
  test(`sensors: every reading reaches the dashboards (${name})`, async () => {
    const ferry = await startFerry({ FERRY_NAMESPACES: namespaces("sensors") });
    const app = await startApp("sensors", ferry, blocked ? ["--block-websocket"] : []);
    const key = randomBytes(32).toString("base64");
    try {
      const url = `${app.url}/?user=viewer1#key=${encodeURIComponent(key)}`;
      const early = await openPage(browser, url);
      await pageUntil(early, "connected", () => window.ferryStatus.state === "connected");
      const { stdout } = await run(devicesBin, ["--ferry", ferry.url, "--devices", String(devices), "--readings", String(readings), "--parallel", "25"], {
        env: { ...process.env, FERRY_TOKEN_HMAC_SECRET: ferry.secret, SENSORS_KEY: key },
      });
      const sum = JSON.parse(stdout.trim().split("\n").pop());
      assert.equal(sum.readings, devices * readings);
      assert.equal(sum.failures, 0);
      const late = await openPage(browser, url.replace("viewer1", "viewer2"));
      const ids = [];
      for (let d = 0; d < devices; d++) for (let s = 1; s <= readings; s++) ids.push(`dev-${String(d).padStart(5, "0")}/${s}`);
      for (const p of [early, late]) {
        await pageUntil(p, "every reading", (want) => window.sensors.has(want), ids, 60000);
        assert.equal(await p.evaluate(() => window.sensors.count()), ids.length);
        assert.equal(await p.evaluate(() => window.sensors.state.undecryptable), 0);
        if (blocked) assert.notEqual(await p.evaluate(() => window.ferryStatus.transport), "websocket");
      }
      // The node stores ciphertext only: its history holds envelopes.
      const h = await (await fetch(`${ferry.url}/v1/api/history?channel=sensors:readings&limit=1`, { headers: { Authorization: `Bearer ${ferry.apiKey}` } })).json();
      assert.equal(h.messages[0].data.e2e, 1);
      assert.ok(!JSON.stringify(h.messages[0].data).includes("temp_c"));
      // The page links the transparency report, served through the page's origin.
      const tr = await early.evaluate(async () => (await fetch(document.getElementById("transparency").href)).json());
      assert.ok(tr && typeof tr === "object", "transparency report");
      await screenshot(late, `sensors-${blocked ? "fallback" : "websocket"}`);
      // A dashboard without the key sees that it cannot open them.
      const keyless = await openPage(browser, `${app.url}/?user=viewer3#key=${encodeURIComponent(randomBytes(32).toString("base64"))}`);
      await pageUntil(keyless, "undecryptable batches", () => window.sensors.state.undecryptable > 0);
      assert.equal(await keyless.evaluate(() => window.sensors.count()), 0);
    } finally {
      await app.stop();
      await ferry.stop();
    }
  });
}
