// The ticker page: one subscription to ticks:all. The node gathers the
// messages of each connection for batch.delay (200 ms) and keeps only the
// newest tick of each symbol meanwhile (conflation by symbol), so the page
// gets one WebSocket message with at most one tick per symbol every
// 200 ms, however fast the feed runs.
import type { Message } from "@ferry/client";
import { acceptConflationGaps, esc, newClient, params } from "../../shared/page.js";

interface Tick {
  s: string;
  p: number;
  n: number;
  t: number;
}

const raw = params.get("node") === "raw";
const measuring = params.has("measure");

/** What the page saw; read by the browser test. */
const state = {
  node: raw ? "raw" : "batched",
  messages: 0,
  batches: 0,
  /** Arrival times (performance.now()) of the last 100 batches. */
  batchTimes: [] as number[],
  last: {} as Record<string, number>,
  lastSeq: 0,
  /** The feed's number of the first tick this page received (0: none yet). */
  firstSeq: 0,
  /** Most messages seen in one batch (conflation bounds it by the symbols). */
  maxBatch: 0,
};
let inBatch = 0;
(window as unknown as { ticker: typeof state }).ticker = state;

// Messages of one WebSocket message reach the page in one task; a new
// batch is a message that arrives after a quiet gap.
const batchGapMs = 40;
let lastArrival = -Infinity;

const rows = new Map<string, HTMLElement>();
const board = document.getElementById("board")!;

function row(sym: string): HTMLElement {
  let el = rows.get(sym);
  if (!el) {
    el = document.createElement("div");
    el.className = "row";
    el.innerHTML = `<b>${esc(sym)}</b><span></span>`;
    // keep the board sorted by symbol
    const after = [...rows.keys()].filter((k) => k > sym).sort()[0];
    board.insertBefore(el, after ? rows.get(after)! : null);
    rows.set(sym, el);
  }
  return el;
}

// Main-thread time spent on messages, for the measurement mode.
let busyMs = 0;

function onMessage(m: Message): void {
  const t0 = performance.now();
  if (t0 - lastArrival > batchGapMs) {
    state.batches++;
    state.batchTimes.push(t0);
    if (state.batchTimes.length > 100) state.batchTimes.shift();
    inBatch = 0;
  }
  inBatch++;
  state.maxBatch = Math.max(state.maxBatch, inBatch);
  lastArrival = t0;
  state.messages++;
  const k = m.data as Tick;
  const prev = state.last[k.s];
  state.last[k.s] = k.p;
  state.lastSeq = Math.max(state.lastSeq, k.n);
  if (!state.firstSeq) state.firstSeq = k.n;
  // The DOM is updated per message, on purpose: the cost the page pays
  // grows with what it receives, which is what batching cuts.
  const span = row(k.s).lastElementChild as HTMLElement;
  span.textContent = (k.p / 100).toFixed(2);
  span.className = prev === undefined || prev === k.p ? "" : prev < k.p ? "up" : "down";
  busyMs += performance.now() - t0;
}

const summary = document.getElementById("summary")!;
setInterval(() => {
  summary.textContent = `${state.messages} messages in ${state.batches} batches`;
}, 500);

if (measuring) startMeasuring();

/**
 * Measurement mode: every second, prints the messages ("frames") per second
 * reaching the page, the batches per second, the rendered frames per second
 * (requestAnimationFrame) and the main-thread time: spent in the message
 * handler, and in long tasks (> 50 ms, PerformanceObserver). The figures
 * are also kept in window.tickerMeasure.
 */
function startMeasuring(): void {
  const out = document.getElementById("measure")!;
  let rafFrames = 0;
  let longTaskMs = 0;
  const tick = () => {
    rafFrames++;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) longTaskMs += e.duration;
    }).observe({ type: "longtask", buffered: false });
  } catch {
    /* no long-task timing in this browser */
  }
  const samples: { messagesPerSec: number; batchesPerSec: number; fps: number; handlerMsPerSec: number; longTaskMsPerSec: number }[] = [];
  (window as unknown as { tickerMeasure: typeof samples }).tickerMeasure = samples;
  let lastMsgs = 0;
  let lastBatches = 0;
  let t = performance.now();
  setInterval(() => {
    const now = performance.now();
    const sec = (now - t) / 1000;
    samples.push({
      messagesPerSec: (state.messages - lastMsgs) / sec,
      batchesPerSec: (state.batches - lastBatches) / sec,
      fps: rafFrames / sec,
      handlerMsPerSec: busyMs / sec,
      longTaskMsPerSec: longTaskMs / sec,
    });
    lastMsgs = state.messages;
    lastBatches = state.batches;
    rafFrames = 0;
    busyMs = 0;
    longTaskMs = 0;
    t = now;
    const s = samples[samples.length - 1];
    out.textContent =
      `node: ${state.node}\n` +
      `messages/s to the page: ${s.messagesPerSec.toFixed(0)}   batches/s: ${s.batchesPerSec.toFixed(1)}\n` +
      `frames/s rendered:      ${s.fps.toFixed(0)}\n` +
      `main thread, handler:   ${s.handlerMsPerSec.toFixed(1)} ms/s   long tasks: ${s.longTaskMsPerSec.toFixed(0)} ms/s`;
  }, 1000);
}

const client = newClient(raw ? "/raw" : "");
acceptConflationGaps(client);
client.connect().catch(() => {});
client.subscribe("ticks:all", { onMessage }).catch((err) => {
  document.getElementById("status")!.textContent = `subscribe failed: ${err}`;
});
