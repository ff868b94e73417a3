// A small cluster for the editor's test: redis-server from Debian, two
// ferry nodes on it, nginx from Debian in front with round-robin (no
// sticky sessions), with or without WebSocket upgrades. Everything on
// random loopback ports, in temp dirs.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { ferryBinary, freePort } from "../../clients/js/test/ferry.mjs";
import { until } from "./harness.mjs";

/** Spawns cmd; the returned handle kills it (SIGKILL: a crash) or stops it. */
function launch(cmd, args, opts = {}) {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  let out = "";
  let exited = false;
  proc.stdout.on("data", (d) => (out += d));
  proc.stderr.on("data", (d) => (out += d));
  const done = new Promise((resolve) => proc.on("exit", () => ((exited = true), resolve())));
  return {
    output: () => out,
    exited: () => exited,
    kill(signal = "SIGTERM") {
      if (!exited) proc.kill(signal);
      return done;
    },
  };
}

function which(bin) {
  for (const dir of ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]) if (existsSync(path.join(dir, bin))) return path.join(dir, bin);
  throw new Error(`${bin} not found: apt-get install -y ${bin === "redis-server" ? "redis-server" : bin}`);
}

async function redisPing(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => resolve(false));
    s.on("data", (d) => {
      s.destroy();
      resolve(String(d).startsWith("+PONG"));
    });
    s.write("PING\r\n");
  });
}

async function httpOK(url) {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

/**
 * Starts redis, two nodes and nginx. websocket false: nginx forwards no
 * Upgrade, as a proxy that does not know WebSocket, and clients fall back.
 */
export async function startCluster(namespacesJSON, { websocket = true } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ferry-editor-cluster-"));
  // Started as root (CI), nginx's workers run as nobody: they must reach
  // the temp dirs nginx makes in here, or a request body too big for
  // memory gets an nginx 500 (client_body_buffer_size below keeps every
  // body under max_frame_bytes in memory anyway).
  chmodSync(dir, 0o755);
  const secret = randomBytes(32).toString("hex");
  const apiKey = randomBytes(16).toString("hex");
  const procs = [];

  const redisPort = await freePort();
  const redis = launch(which("redis-server"), ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]);
  procs.push(redis);
  await until("redis to answer PING", () => {
    if (redis.exited()) throw new Error(`redis-server exited:\n${redis.output()}`);
    return redisPing(redisPort);
  });

  const nodes = [];
  for (const id of ["a", "b"]) {
    const port = await freePort();
    const n = launch(ferryBinary(), ["serve", "--dev", "--addr", `127.0.0.1:${port}`, "--node-id", `node-${id}`], {
      env: {
        ...process.env,
        FERRY_BROKER: `redis://127.0.0.1:${redisPort}/0`,
        FERRY_TOKEN_HMAC_SECRET: secret,
        FERRY_API_KEY: apiKey,
        FERRY_NAMESPACES: namespacesJSON,
        FERRY_HANDSHAKE_RATE: "0",
        FERRY_MAX_CONNECTIONS_PER_USER: "100",
        FERRY_CLIENT_PUBLISH_RATE: "0",
        FERRY_LOGS_LEVEL: process.env.FERRY_LOGS_LEVEL || "warn",
      },
    });
    procs.push(n);
    n.url = `http://127.0.0.1:${port}`;
    n.port = port;
    nodes.push(n);
  }
  for (const n of nodes) {
    await until("a node to answer /healthz", () => {
      if (n.exited()) throw new Error(`ferry exited:\n${n.output()}`);
      return httpOK(n.url + "/readyz");
    });
  }

  const nginxPort = await freePort();
  const upgrade = websocket ? "proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection $connection_upgrade;" : 'proxy_set_header Connection "";';
  const conf = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_buffer_size 256k;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream ferry {
${nodes.map((n) => `    server 127.0.0.1:${n.port} max_fails=1 fail_timeout=2s;`).join("\n")}
  }
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      proxy_pass http://ferry;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      ${upgrade}
      proxy_buffering off;
      proxy_read_timeout 75s;
      proxy_next_upstream error timeout http_503;
    }
  }
}
`;
  writeFileSync(path.join(dir, "nginx.conf"), conf);
  const nginx = launch(which("nginx"), ["-p", dir, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"]);
  procs.push(nginx);
  const url = `http://127.0.0.1:${nginxPort}`;
  await until("nginx to answer", () => {
    if (nginx.exited()) throw new Error(`nginx exited:\n${nginx.output()}\n${existsSync(path.join(dir, "nginx-error.log")) ? readFileSync(path.join(dir, "nginx-error.log"), "utf8") : ""}`);
    return httpOK(url + "/healthz");
  });

  return {
    url,
    secret,
    apiKey,
    nodes,
    async stop() {
      // nginx gets SIGTERM: its master then stops its workers (a killed
      // master would leave them running, holding the test's pipes open).
      await nginx.kill("SIGTERM");
      for (const p of procs.reverse()) await p.kill("SIGKILL");
    },
  };
}
