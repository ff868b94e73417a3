// Test helpers: build the real ferry binary once, start `ferry serve --dev`
// on a random loopback port with its own secrets, mint tokens, poll until.
import { execFileSync, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

let binary;
/** Builds ./cmd/ferry into a temp dir (once per process), or uses FERRY_BIN. */
export function ferryBinary() {
  if (binary) return binary;
  if (process.env.FERRY_BIN && existsSync(process.env.FERRY_BIN)) return (binary = process.env.FERRY_BIN);
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferry-js-bin-"));
  binary = path.join(dir, "ferry");
  execFileSync("go", ["build", "-o", binary, "./cmd/ferry"], { cwd: repoRoot, stdio: "inherit" });
  return binary;
}

/** A free loopback port (the listener is closed before it is used). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls fn until it returns a truthy value, or throws after timeoutMs with what. */
export async function until(what, fn, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function b64url(b) {
  return Buffer.from(b).toString("base64url");
}

/** An HS256 JWT for sub, valid ttlSec. */
export function mintToken(secret, sub, ttlSec = 3600, extra = {}) {
  const h = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const p = b64url(JSON.stringify({ sub, exp: Math.floor(Date.now() / 1000) + ttlSec, ...extra }));
  const sig = createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url");
  return `${h}.${p}.${sig}`;
}

/** Starts ferry serve --dev with env; resolves when /healthz answers. */
export async function startFerry(env = {}) {
  const port = await freePort();
  const secret = randomBytes(32).toString("hex");
  const apiKey = randomBytes(16).toString("hex");
  const proc = spawn(ferryBinary(), ["serve", "--dev", "--addr", `127.0.0.1:${port}`], {
    env: {
      ...process.env,
      FERRY_TOKEN_HMAC_SECRET: secret,
      FERRY_API_KEY: apiKey,
      FERRY_HANDSHAKE_RATE: "0",
      FERRY_MAX_CONNECTIONS_PER_USER: "1000",
      FERRY_CLIENT_PUBLISH_RATE: "0",
      FERRY_LOGS_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  let exited = false;
  proc.on("exit", () => (exited = true));
  await until("ferry to answer /healthz", async () => {
    if (exited) throw new Error(`ferry exited:\n${out}`);
    try {
      return (await fetch(url + "/healthz")).ok;
    } catch {
      return false;
    }
  });
  return {
    url,
    port,
    pid: proc.pid,
    secret,
    apiKey,
    output: () => out,
    token: (sub = "alice", ttl = 3600, extra = {}) => mintToken(secret, sub, ttl, extra),
    /** Publishes through the server API. */
    async apiPublish(channel, data, key) {
      const r = await fetch(url + "/v1/api/publish", { method: "POST", headers: { Authorization: `Bearer ${apiKey}` }, body: JSON.stringify({ channel, data, ...(key ? { key } : {}) }) });
      if (!r.ok) throw new Error(`api publish: ${r.status} ${await r.text()}`);
      return r.json();
    },
    stop() {
      return new Promise((resolve) => {
        if (exited) return resolve();
        proc.on("exit", resolve);
        proc.kill("SIGTERM");
      });
    },
  };
}
