// The admin page (/admin) in a real browser: Debian's Chromium driven by
// playwright-core (no browser download). A wrong secret is refused; the
// right one logs in; the page follows the node live over its admin stream
// and shows a connected SDK client, its channel and its publishes; the
// channel's history (its newest 50 messages) is shown; the client is disconnected from the page
// and the disconnect appears. Screenshots go to artifacts/admin*.png.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import WebSocket from "ws";
import { Client } from "../../dist/index.js";
import { startFerry, until } from "../ferry.mjs";

const artifacts = fileURLToPath(new URL("../../artifacts/", import.meta.url));
mkdirSync(artifacts, { recursive: true });
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const adminSecret = "admin-page-browser-test-0123456789";
// Every wait is bounded by this guard against hangs (not a timing check).
const hang = 30000;

let node, browser;

before(async () => {
  node = await startFerry({ FERRY_ADMIN_SECRET: adminSecret });
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferry-admin-chromium-"));
  browser = await chromium.launchPersistentContext(dir, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test("admin page: log in, see a client live, read history, disconnect it", async () => {
  const page = await browser.newPage();
  // A Content-Security-Policy violation or a script error shows up here.
  const problems = [];
  page.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && problems.push(m.text()));
  page.on("pageerror", (e) => problems.push(String(e)));
  // Every refused request, by method and path (the wrong login's 401 is
  // the one expected).
  const refused = [];
  page.on("response", (r) => r.status() >= 400 && refused.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`));

  const bob = new Client({ url: node.url, token: node.token("bob"), WebSocket, transports: ["websocket"], watchEnvironment: false });
  let bobClosed = null;
  bob.on("state", (s) => s.state === "closed" && (bobClosed = s));
  try {
    await bob.connect();
    const ch = "chat:admin-demo";
    await bob.subscribe(ch, { onMessage: () => {} });
    for (let i = 1; i <= 3; i++) await bob.publish(ch, { text: `hello ${i}` });

    const res = await page.goto(`${node.url}/admin`);
    assert.match(res.headers()["content-security-policy"], /script-src 'self'/);
    await page.fill("#secret", "not-the-secret-at-all");
    await page.click("button[type=submit]");
    assert.match(await page.locator("#error").innerText(), /wrong admin secret/);

    await page.fill("#secret", adminSecret);
    await page.click("button[type=submit]");
    await page.waitForSelector("#live.live", { timeout: hang });
    const cookie = (await browser.cookies(`${node.url}/admin`)).find((c) => c.name === "ferry_admin");
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", `admin cookie ${JSON.stringify(cookie)}`);

    // The live report shows bob's connection, channel and publishes.
    const bobRow = page.locator("#conns tbody tr", { hasText: "bob" });
    await bobRow.waitFor({ timeout: hang });
    assert.match(await bobRow.innerText(), /websocket|ws/);
    const chanRow = page.locator("#channels tbody tr", { hasText: ch });
    await chanRow.waitFor();
    assert.match(await chanRow.innerText(), /\b1\b/);
    assert.match(await page.locator("#publishers tbody tr", { hasText: "bob" }).innerText(), /\b3\b/);
    assert.equal(await page.locator("#node-count").innerText(), "1");
    assert.match(await page.locator("#nodes tbody").innerText(), /memory/);

    // The channel's history, through the server API's history call.
    await chanRow.getByRole("button", { name: "History" }).click();
    await until("history shown", async () => (await page.locator("#history tbody tr").count()) === 3, hang);
    assert.match(await page.locator("#history").innerText(), /hello 3/);
    await page.screenshot({ path: path.join(artifacts, "admin.png"), fullPage: true });

    // A longer history shows its newest 50, newest first.
    const long = "chat:admin-long";
    for (let i = 1; i <= 55; i++) await node.apiPublish(long, { n: i });
    await page.fill("#history-channel", long);
    await page.click("#history-form button");
    await until("the long history shown", async () => (await page.locator("#action-result").innerText()).includes(long), hang);
    assert.equal(await page.locator("#history tbody tr").count(), 50);
    assert.match(await page.locator("#history tbody tr").first().innerText(), /^55\s/);
    assert.match(await page.locator("#history tbody tr").last().innerText(), /^6\s/);

    // Disconnect bob from his row: his client is closed with 4003.
    await bobRow.getByRole("button", { name: "Disconnect" }).click();
    await until("bob's client closed", () => bobClosed !== null, hang);
    assert.equal(bobClosed.error?.code, 4003);
    // The page says so once the API call's answer is in (it may come after
    // the close reaches bob).
    await until("the disconnect reported", async () => /Disconnected bob: 1 connection/.test(await page.locator("#action-result").innerText()), hang);
    await page.locator("#disconnects tbody tr", { hasText: "disconnected by an administrator" }).waitFor({ timeout: hang });
    await page.locator("#conns tbody tr.empty").waitFor({ timeout: hang });
    await page.screenshot({ path: path.join(artifacts, "admin-after-disconnect.png"), fullPage: true });

    assert.deepEqual(problems, [], "console errors on the admin page");
    assert.deepEqual(refused, ["POST /admin/login 401"], "refused requests");
  } finally {
    bob.close();
    await page.close();
  }
});
