// The closing note's figures, each on fresh ferry nodes started here
// (random loopback ports, temp dirs), printed as JSON:
//
//   node examples/figures.mjs auction   flash-sale overload: boards dropped,
//                                       price current, accepted bids lost
//   node examples/figures.mjs sensors   always-on vs short-lived devices at
//                                       the same reading rate: ferry's CPU
//                                       seconds and peak RSS
//   node examples/figures.mjs ticker    messages/s, batches/s, rendered
//                                       frames/s and main-thread time of the
//                                       page, with and without batch.delay
//   node examples/figures.mjs all
//
// Sizes come from the environment (defaults in brackets): BIDDERS [200],
// SALE_FOR [10s]; DEVICES [2000], BATCHES [3], EVERY [5s]; TICK_RATE
// [2000], MEASURE_SECONDS [10]. Take the figures on a quiet machine: they
// measure the machine as much as Ferry.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { launchBrowser, namespaces, openPage, repoRoot, startApp, startAuction, startFerry } from "./test/harness.mjs";

const run = promisify(execFile);
const env = (name, dflt) => process.env[name] || dflt;
const ticksPerSecond = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, and its RSS in MiB. */
function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;
  return { cpu, rss };
}

/** Runs fn while sampling pid every 200 ms: CPU seconds used and peak RSS. */
async function measured(pid, fn) {
  const before = usage(pid);
  let peak = before.rss;
  const timer = setInterval(() => (peak = Math.max(peak, usage(pid).rss)), 200);
  try {
    const result = await fn();
    const after = usage(pid);
    return { result, cpu_seconds: +(after.cpu - before.cpu).toFixed(2), rss_peak_mib: +Math.max(peak, after.rss).toFixed(1) };
  } finally {
    clearInterval(timer);
  }
}

async function goRun(args, extraEnv) {
  const { stdout } = await run("go", ["run", ...args], { cwd: repoRoot, env: { ...process.env, ...extraEnv }, maxBuffer: 16 << 20 });
  // One JSON report: flashsale indents it, devices prints it on one line
  // after its log lines.
  const text = stdout.trim();
  return JSON.parse(text.startsWith("{") ? text : text.slice(text.lastIndexOf("\n{") + 1));
}

async function auction() {
  const { ferry, app } = await startAuction(["--bid-rate", "5", "--bid-burst", "10"]);
  try {
    const r = await measured(ferry.pid, () =>
      goRun(["./examples/auction/flashsale", "--ferry", ferry.url, "--app", app.url, "--bidders", env("BIDDERS", "200"), "--for", env("SALE_FOR", "10s")], {
        FERRY_TOKEN_HMAC_SECRET: ferry.secret,
        FERRY_API_KEY: ferry.apiKey,
      }),
    );
    return { bidders: Number(env("BIDDERS", "200")), for: env("SALE_FOR", "10s"), ...r.result, ferry_cpu_seconds: r.cpu_seconds, ferry_rss_peak_mib: r.rss_peak_mib };
  } finally {
    await app.stop();
    await ferry.stop();
  }
}

async function sensors() {
  const key = randomBytes(32).toString("base64");
  const out = {};
  for (const mode of ["always", "short"]) {
    // A fresh node per mode, so that neither pays for the other's heap.
    const ferry = await startFerry({ FERRY_NAMESPACES: namespaces("sensors") });
    try {
      const r = await measured(ferry.pid, () =>
        goRun(["./examples/sensors/devices", "--ferry", ferry.url, "--mode", mode, "--devices", env("DEVICES", "2000"), "--batches", env("BATCHES", "3"), "--every", env("EVERY", "5s")], {
          FERRY_TOKEN_HMAC_SECRET: ferry.secret,
          SENSORS_KEY: key,
        }),
      );
      out[mode] = { devices: r.result, ferry_cpu_seconds: r.cpu_seconds, ferry_rss_peak_mib: r.rss_peak_mib };
    } finally {
      await ferry.stop();
    }
  }
  const a = out.always;
  const s = out.short;
  out.short_vs_always = { cpu: +(s.ferry_cpu_seconds / a.ferry_cpu_seconds).toFixed(2), rss_peak: +(s.ferry_rss_peak_mib / a.ferry_rss_peak_mib).toFixed(2) };
  return out;
}

async function ticker() {
  const ns = namespaces("ticker");
  const batched = await startFerry({ FERRY_NAMESPACES: ns, FERRY_BATCH_DELAY: "200ms" });
  // Both nodes check the tokens the page server mints with batched's secret.
  const raw = await startFerry({ FERRY_NAMESPACES: ns, FERRY_TOKEN_HMAC_SECRET: batched.secret });
  const app = await startApp("ticker", batched, ["--rate", env("TICK_RATE", "2000"), "--unbatched", raw.url]);
  const browser = await launchBrowser();
  const seconds = Number(env("MEASURE_SECONDS", "10"));
  const out = {};
  try {
    for (const [name, query] of [
      ["batched", "?user=m1&measure=1"],
      ["unbatched", "?user=m2&measure=1&node=raw"],
    ]) {
      const page = await openPage(browser, app.url + "/" + query);
      await new Promise((r) => setTimeout(r, (seconds + 2) * 1000));
      const samples = (await page.evaluate(() => window.tickerMeasure)).slice(2); // the first seconds connect
      const avg = (k) => +(samples.reduce((a, s) => a + s[k], 0) / Math.max(1, samples.length)).toFixed(1);
      out[name] = { seconds: samples.length, messagesPerSec: avg("messagesPerSec"), batchesPerSec: avg("batchesPerSec"), fps: avg("fps"), handlerMsPerSec: avg("handlerMsPerSec"), longTaskMsPerSec: avg("longTaskMsPerSec") };
      await page.context().close();
    }
    return { tick_rate: Number(env("TICK_RATE", "2000")), ...out };
  } finally {
    await browser.close();
    await app.stop();
    await raw.stop();
    await batched.stop();
  }
}

const which = process.argv[2] ?? "all";
const all = { auction, sensors, ticker };
if (which !== "all" && !all[which]) {
  console.error("usage: node examples/figures.mjs auction|sensors|ticker|all");
  process.exit(2);
}
for (const [name, fn] of Object.entries(all)) {
  if (which !== "all" && which !== name) continue;
  console.log(JSON.stringify({ [name]: await fn() }, null, 1));
}
