// In a real browser: Debian's Chromium driven by playwright-core (no
// browser download). The playground served by ferry serve --dev works;
// behind nginx without Upgrade the page falls back to SSE, with SSE
// blocked too to long-poll, and gets every message; a page on a foreign
// origin is refused. Screenshots go to artifacts/.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { freePort, repoRoot, startFerry, until } from "../ferry.mjs";

const artifacts = new URL("../../artifacts/", import.meta.url);
mkdirSync(artifacts, { recursive: true });
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const nginxPath = process.env.NGINX_PATH || (existsSync("/usr/sbin/nginx") ? "/usr/sbin/nginx" : "nginx");

let node, browser, nginx, workerPort;
const cleanup = [];

before(async () => {
  // The worker test's page lives on another origin that the node allows.
  workerPort = await freePort();
  node = await startFerry({ FERRY_ALLOWED_ORIGINS: `http://127.0.0.3:${workerPort}` });
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferry-chromium-"));
  browser = await chromium.launchPersistentContext(dir, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  nginx = await startNginx(node.port);
});

after(async () => {
  await browser?.close();
  for (const fn of cleanup.reverse()) await fn();
  await node?.stop();
});

/** nginx in front of ferry: no Upgrade forwarded on either port; the second also refuses /v1/sse. */
async function startNginx(ferryPort) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferry-nginx-"));
  const [plain, noSSE] = [await freePort(), await freePort()];
  const proxy = `proxy_pass http://127.0.0.1:${ferryPort}; proxy_http_version 1.1; proxy_buffering off; proxy_read_timeout 60s; proxy_set_header Host $http_host;`;
  const conf = `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  # No "proxy_set_header Upgrade/Connection": WebSocket handshakes reach ferry as plain GETs and fail.
  server { listen 127.0.0.1:${plain}; location / { ${proxy} } }
  server { listen 127.0.0.1:${noSSE}; location /v1/sse { return 403; } location / { ${proxy} } }
}
`;
  writeFileSync(`${dir}/nginx.conf`, conf);
  const proc = spawn(nginxPath, ["-c", `${dir}/nginx.conf`, "-p", dir, "-e", `${dir}/error.log`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stderr.on("data", (d) => (out += d));
  let exited = false;
  proc.on("exit", () => (exited = true));
  cleanup.push(() => new Promise((r) => (exited ? r() : (proc.on("exit", r), proc.kill("SIGTERM")))));
  await until("nginx to answer", async () => {
    if (exited) throw new Error(`nginx exited: ${out}`);
    try {
      return (await fetch(`http://127.0.0.1:${plain}/healthz`)).ok && (await fetch(`http://127.0.0.1:${noSSE}/healthz`)).ok;
    } catch {
      return false;
    }
  });
  return { plain: `http://127.0.0.1:${plain}`, noSSE: `http://127.0.0.1:${noSSE}` };
}

const text = (page, sel) => page.locator(sel).innerText();

/** Opens the playground at pageURL, connects to nodeURL (default: the page's origin) with alice's token. */
async function openPlayground(pageURL, { nodeURL, transports } = {}) {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.log("page error:", e.message));
  await page.goto(pageURL);
  if (nodeURL) await page.fill("#url", nodeURL);
  await page.fill("#token", node.token("alice"));
  if (transports) await page.selectOption("#transports", transports);
  await page.click("#connect");
  return { page };
}

async function waitText(page, sel, want, timeout = 20000) {
  await page.waitForFunction(([s, w]) => document.querySelector(s)?.textContent?.includes(w), [sel, want], { timeout });
}

// waitExact waits for an element's whole text ("connected" is also part of
// "disconnected").
async function waitExact(page, sel, want, timeout = 20000) {
  await page.waitForFunction(([s, w]) => document.querySelector(s)?.textContent?.trim() === w, [sel, want], { timeout });
}

test("the playground: connect, subscribe, publish, history, presence, forced fallback", async () => {
  const { page } = await openPlayground(node.url + "/");
  await waitExact(page, "#state", "connected");
  assert.equal(await text(page, "#transport"), "websocket");
  await page.fill("#channel", "chat:play");
  await page.click("#subscribe");
  await waitText(page, "#log", "subscribed to chat:play");
  await page.click("#publish");
  await waitText(page, "#messages", "hello from the playground");
  await node.apiPublish("chat:play", { text: "from the API" });
  await waitText(page, "#messages", "from the API");
  await page.click("#history");
  await waitText(page, "#historyList", "#2 api");
  await page.click("#presence");
  await waitText(page, "#presenceList", "alice");
  const lines = await page.locator("#messages li").allInnerTexts();
  assert.deepEqual(lines.map((l) => l.split(" ")[1]), ["#1", "#2"]);
  await page.screenshot({ path: new URL("playground.png", artifacts).pathname, fullPage: true });
  await page.click("#fallback");
  await waitText(page, "#transport", "sse");
  await node.apiPublish("chat:play", { text: "after the fallback" });
  await waitText(page, "#messages", "after the fallback");
  assert.equal(await page.locator("#messages li").count(), 3, "nothing lost or repeated across the fallback");
  await page.close();
});

/**
 * Publishes messages from through n through the API (the page is subscribed
 * to channel unless subscribe) and checks that the page shows #1 to #n,
 * each once, in order.
 */
async function everyMessage(page, channel, n, { from = 1, subscribe = true } = {}) {
  if (subscribe) {
    await page.fill("#channel", channel);
    await page.click("#subscribe");
    await waitText(page, "#log", `subscribed to ${channel}`);
  }
  const t = Date.now();
  for (let i = from; i <= n; i++) await node.apiPublish(channel, { n: i });
  await page.waitForFunction((want) => document.querySelectorAll("#messages li").length >= want, n, { timeout: 30000 });
  const lines = await page.locator("#messages li").allInnerTexts();
  assert.deepEqual(lines.map((l) => l.split(" ")[1]), Array.from({ length: n }, (_, i) => `#${i + 1}`));
  return Date.now() - t;
}

/**
 * Issue 14's figure: the time from the connect call to the first
 * application message received over the fallback. Opens the playground at
 * pageURL, clicks Connect and at once Subscribe to channel (the SDK holds
 * the subscription until it is connected), publishes one message as soon
 * as the page is subscribed, and measures in the page, with
 * performance.now(), from the click on Connect to the message appearing.
 * Returns the page and the figures in ms: connected (the state pill says
 * connected) and firstMessage.
 */
async function timeToFirstMessage(pageURL, channel) {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.log("page error:", e.message));
  await page.goto(pageURL);
  await page.fill("#token", node.token("alice"));
  await page.fill("#channel", channel);
  await page.evaluate(() => {
    const t = (window.__ferryTimes = {});
    document.querySelector("#connect").addEventListener("click", () => (t.connect = performance.now()), { capture: true });
    const watch = (sel, key, ok) =>
      new MutationObserver((_, obs) => {
        if (ok()) {
          t[key] = performance.now();
          obs.disconnect();
        }
      }).observe(document.querySelector(sel), { childList: true, subtree: true, characterData: true });
    watch("#state", "connected", () => document.querySelector("#state").textContent.trim() === "connected");
    watch("#messages", "firstMessage", () => document.querySelector("#messages li") !== null);
  });
  await page.click("#connect");
  await page.click("#subscribe");
  await waitText(page, "#log", `subscribed to ${channel}`);
  await node.apiPublish(channel, { n: 1 });
  await page.waitForFunction(() => window.__ferryTimes.firstMessage !== undefined, null, { timeout: 20000 });
  const t = await page.evaluate(() => window.__ferryTimes);
  return { page, connectedMs: Math.round(t.connected - t.connect), firstMessageMs: Math.round(t.firstMessage - t.connect) };
}

test("behind nginx without Upgrade: falls back to SSE and gets every message", async () => {
  const { page, connectedMs, firstMessageMs } = await timeToFirstMessage(nginx.plain + "/", "chat:nginx-sse");
  assert.equal(await text(page, "#transport"), "sse");
  assert.match(await text(page, "#log"), /websocket failed .*: trying the next transport/);
  console.log(`blocked WebSocket -> SSE: connected ${connectedMs} ms, first message ${firstMessageMs} ms after the connect call`);
  await everyMessage(page, "chat:nginx-sse", 30, { from: 2, subscribe: false });
  await page.screenshot({ path: new URL("behind-nginx-sse.png", artifacts).pathname, fullPage: true });
  await page.close();
});

test("SSE blocked too: falls back to long-poll and gets every message", async () => {
  const { page, connectedMs, firstMessageMs } = await timeToFirstMessage(nginx.noSSE + "/", "chat:nginx-poll");
  assert.equal(await text(page, "#transport"), "poll");
  console.log(`blocked WebSocket and SSE -> long-poll: connected ${connectedMs} ms, first message ${firstMessageMs} ms after the connect call`);
  await everyMessage(page, "chat:nginx-poll", 30, { from: 2, subscribe: false });
  await page.close();
});

test("a page on a foreign origin is refused", async () => {
  const html = readFileSync(path.join(repoRoot, "web/playground.html"));
  const srv = http.createServer((_req, res) => res.writeHead(200, { "Content-Type": "text/html" }).end(html));
  await new Promise((r) => srv.listen(0, "127.0.0.2", r));
  cleanup.push(() => new Promise((r) => srv.close(r)));
  // 127.0.0.2 vs 127.0.0.1: another origin for the browser and for ferry.
  const origin = `http://127.0.0.2:${srv.address().port}`;
  const { page } = await openPlayground(origin + "/", { nodeURL: node.url });
  await waitText(page, "#log", "disconnected: ");
  await page.waitForTimeout(500);
  assert.notEqual(await text(page, "#state"), "connected");
  const r = await fetch(node.url + "/v1/tickets", { method: "POST", headers: { Origin: origin, Authorization: `Bearer ${node.token("alice")}` } });
  assert.equal(r.status, 403, "ferry refuses the origin");
  await page.close();
});

test("in a Web Worker on an allowed origin: connect, subscribe, publish", async () => {
  const sdk = (await build({ entryPoints: [new URL("../../src/index.ts", import.meta.url).pathname], bundle: true, format: "esm", write: false, logLevel: "error" })).outputFiles[0].text;
  const worker = `import { Client } from "./sdk.js";
onmessage = async ({ data: { url, token } }) => {
  try {
    const c = new Client({ url, token });
    await c.connect();
    const got = new Promise((resolve) => c.subscribe("chat:worker", { onMessage: resolve }));
    await new Promise((r) => setTimeout(r, 50));
    await c.publish("chat:worker", { from: "worker" });
    const m = await got;
    postMessage({ transport: c.transport, offset: m.offset, data: m.data });
    c.close();
  } catch (err) {
    postMessage({ error: String(err && err.message || err) });
  }
};`;
  const files = { "/": ["text/html", "<!doctype html><title>worker</title>"], "/sdk.js": ["text/javascript", sdk], "/worker.js": ["text/javascript", worker] };
  const srv = http.createServer((req, res) => {
    const f = files[req.url];
    if (!f) return res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": f[0] }).end(f[1]);
  });
  await new Promise((r) => srv.listen(workerPort, "127.0.0.3", r));
  cleanup.push(() => new Promise((r) => srv.close(r)));
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.3:${workerPort}/`);
  const result = await page.evaluate(
    ([url, token]) =>
      new Promise((resolve) => {
        const w = new Worker("/worker.js", { type: "module" });
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => resolve({ error: e.message });
        w.postMessage({ url, token });
      }),
    [node.url, node.token("alice")],
  );
  assert.deepEqual(result, { transport: "websocket", offset: 1, data: { from: "worker" } });
  await page.close();
});
