// The sensor dashboard: follows sensors:readings (history first, so every
// batch the node keeps is shown) and opens each envelope with the key from
// the URL fragment, through the SDK's E2E cipher.
import type { Message } from "@ferry/client";
import { type Envelope, isEnvelope, open } from "@ferry/client/e2e";
import { esc, follow, newClient } from "../../shared/page.js";

interface Reading {
  seq: number;
  temp_c: number;
  rh: number;
  pm25: number;
  at: number;
}
interface Batch {
  device: string;
  readings: Reading[];
}

const $ = (id: string) => document.getElementById(id)!;

/** What the page shows; read by the browser test. */
const state = {
  /** "device/seq" of every reading decrypted, once each. */
  readings: new Set<string>(),
  latest: new Map<string, Reading>(),
  undecryptable: 0,
};
(window as unknown as { sensors: unknown }).sensors = {
  state,
  count: () => state.readings.size,
  has: (ids: string[]) => ids.every((id) => state.readings.has(id)),
};

function keyFromFragment(): Uint8Array | undefined {
  const b64 = new URLSearchParams(location.hash.slice(1)).get("key");
  if (!b64) return undefined;
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const key = keyFromFragment();
if (!key) $("error").textContent = "No key: open this page with #key=BASE64 (the devices' SENSORS_KEY).";


let dirty = false;
function render(): void {
  dirty = false;
  $("devices").textContent = String(state.latest.size);
  $("readings").textContent = String(state.readings.size);
  $("undecryptable").textContent = String(state.undecryptable);
  const rows = [...state.latest.entries()].sort((a, b) => b[1].at - a[1].at).slice(0, 15);
  $("latest").innerHTML = rows
    .map(([d, r]) => `<tr><td>${esc(d)}</td><td>${r.seq}</td><td>${r.temp_c.toFixed(1)}</td><td>${r.rh.toFixed(0)}</td><td>${r.pm25.toFixed(1)}</td></tr>`)
    .join("");
}

// Each envelope is opened here rather than by the SDK's cipher option, so
// that one batch this key cannot open is counted and shown instead of
// failing the whole history read.
function onMessage(m: Message): void {
  const env = m.data as Envelope;
  if (!key || !isEnvelope(env) || env.kid !== "k1") return undecryptable(new Error(`not an envelope of key k1 at offset ${m.offset}`));
  open(m.channel, { kid: "k1", key }, env).then((b) => onBatch(b as Batch), undecryptable);
}

function undecryptable(err: unknown): void {
  state.undecryptable++;
  console.warn("sensors:", String(err));
  render();
}

function onBatch(b: Batch): void {
  for (const r of b.readings) {
    state.readings.add(`${b.device}/${r.seq}`);
    const prev = state.latest.get(b.device);
    if (!prev || prev.seq < r.seq) state.latest.set(b.device, r);
  }
  if (!dirty) {
    dirty = true;
    requestAnimationFrame(render);
  }
}

const client = newClient();
follow(client, "sensors:readings", onMessage).catch((err) => ($("error").textContent = `subscribe failed: ${err}`));
