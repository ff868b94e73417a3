// Browser-test helpers of the examples: the real ferry binary (through the
// SDK's own test helpers), each app's Go program built and started on a
// random port, and Debian's chromium driven by playwright-core.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { freePort, repoRoot, startFerry, until } from "../../clients/js/test/ferry.mjs";

export { startFerry, until, repoRoot };

export const examplesDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Where screenshots go: $ARTIFACTS_DIR or examples/artifacts. */
export const artifactsDir = process.env.ARTIFACTS_DIR || path.join(examplesDir, "artifacts");

/**
 * The app's namespace rules (examples/APP/namespaces.json) as
 * FERRY_NAMESPACES, with each {{NAME}} in it replaced by vars.NAME (the
 * auction's publish hook URL names the app's address so).
 */
export function namespaces(app, vars = {}) {
  const file = path.join(examplesDir, app, "namespaces.json");
  const text = readFileSync(file, "utf8").replace(/\{\{(\w+)\}\}/g, (_, name) => {
    if (!(name in vars)) throw new Error(`${file}: no value for {{${name}}}`);
    return vars[name];
  });
  return JSON.stringify(JSON.parse(text));
}

const built = new Map();
/** Builds examples/APP (its page, and its Go program into a temp dir) once per process. */
function appBinary(app) {
  if (!built.has(app)) {
    execFileSync(process.execPath, [path.join(examplesDir, "build.mjs"), app], { stdio: "inherit" });
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), `ferry-example-${app}-`)), app);
    execFileSync("go", ["build", "-o", out, `./examples/${app}`], { cwd: repoRoot, stdio: "inherit" });
    built.set(app, out);
  }
  return built.get(app);
}

/**
 * Starts the app's Go program against ferry ({url, apiKey, secret}) on a
 * random port (an "--addr" in args wins: Go's flags take the last value);
 * resolves once it prints its address. env adds to its environment.
 */
export async function startApp(app, ferry, args = [], env = {}) {
  const proc = spawn(appBinary(app), ["--addr", "127.0.0.1:0", "--ferry", ferry.url, "--web", path.join(examplesDir, app, "web"), ...args], {
    env: { ...process.env, FERRY_API_KEY: ferry.apiKey, FERRY_TOKEN_HMAC_SECRET: ferry.secret, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let exited = false;
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  proc.on("exit", () => (exited = true));
  const url = await until(`${app} to listen`, () => {
    if (exited) throw new Error(`${app} exited:\n${out}`);
    return /listening on (http:\/\/\S+)/.exec(out)?.[1];
  });
  return {
    url,
    output: () => out,
    stop() {
      return new Promise((resolve) => {
        if (exited) return resolve();
        proc.on("exit", resolve);
        proc.kill("SIGTERM");
      });
    },
  };
}

/**
 * Starts the auction: a node whose bids namespace asks the app's publish
 * hook, and the app (args: its flags). The node must know the hook's URL
 * when it starts, and the app the node's, so the app's port is chosen
 * first (a free one, as startFerry chooses the node's), then the node
 * starts with the hook on that port, then the app listens there. Both
 * share a fresh hooks secret. Resolves with {ferry, app}.
 */
export async function startAuction(args = []) {
  const addr = `127.0.0.1:${await freePort()}`;
  const hooksSecret = randomBytes(32).toString("hex");
  const ferry = await startFerry({ FERRY_NAMESPACES: namespaces("auction", { APP: addr }), FERRY_HOOKS_SECRET: hooksSecret });
  try {
    const app = await startApp("auction", ferry, ["--addr", addr, ...args], { FERRY_HOOKS_SECRET: hooksSecret });
    return { ferry, app };
  } catch (err) {
    await ferry.stop();
    throw err;
  }
}

/** Debian's chromium, headless, with a fresh profile (playwright makes one per launch). */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A page in a new browser context, with its console kept for failures. */
export async function openPage(browser, url) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}${m.location()?.url ? " (" + m.location().url + ")" : ""}`));
  page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
  // A server error's body says which part answered and why.
  page.on("response", (r) => {
    if (r.status() >= 500) r.text().then((b) => logs.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}: ${b.slice(0, 200)}`), () => {});
  });
  page.logs = logs;
  await page.goto(url);
  return page;
}

/** Saves a screenshot as ARTIFACTS/NAME.png and returns its path. */
export async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Polls fn inside the page until it returns truthy. */
export async function pageUntil(page, what, fn, arg, timeoutMs = 30000) {
  return until(what, () => page.evaluate(fn, arg), timeoutMs).catch((err) => {
    err.message += `\npage console:\n${page.logs.slice(-20).join("\n")}`;
    throw err;
  });
}

/** GETs (or POSTs) JSON from an app's server. */
export async function appJSON(app, pathAndQuery, method = "GET") {
  const r = await fetch(app.url + pathAndQuery, { method });
  if (!r.ok) throw new Error(`${method} ${pathAndQuery}: HTTP ${r.status}: ${await r.text()}`);
  return r.json();
}
