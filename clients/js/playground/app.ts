// The playground page: every feature of the SDK behind a button. Built by
// scripts/build-web.sh into web/playground.html (one self-contained file).
import { Client, type Message, type TransportName } from "../src/index.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id).value.trim();
let client: Client | undefined;

function item(list: string, text: string, max = 200): void {
  const li = document.createElement("li");
  li.textContent = text;
  const ol = $(list);
  ol.appendChild(li);
  while (ol.children.length > max) ol.firstChild?.remove();
  ol.scrollTop = ol.scrollHeight;
}

function log(text: string): void {
  item("log", `${new Date().toISOString().slice(11, 23)} ${text}`);
}

function pill(id: string, text: string, cls = ""): void {
  const el = $(id);
  el.textContent = text;
  el.className = `pill ${cls}`;
}

const show = (m: Message) => `#${m.offset} ${m.from ?? "api"}: ${JSON.stringify(m.data)}`;

async function run(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    log(`${what} failed: ${(err as Error).message}`);
  }
}

$("url").setAttribute("value", location.origin);

$("connect").onclick = () =>
  run("connect", async () => {
    client?.close();
    const c = new Client({ url: input("url"), token: input("token"), transports: $<HTMLSelectElement>("transports").value.split(",") as TransportName[], upgradeAfter: 10000 });
    client = c;
    c.on("state", (s) => {
      pill("state", s.state, s.state);
      if (s.state !== "connected") pill("transport", "none");
      if (s.error) log(`${s.state}: ${(s.error as Error).message ?? s.error}${s.delayMs ? `; next attempt in ${Math.round(s.delayMs)} ms` : ""}`);
    });
    c.on("transport", (t) => {
      pill("transport", t, "connected");
      pill("session", c.sessionId ?? "none");
      log(`connected over ${t}`);
    });
    c.on("fallback", (f) => log(`${f.transport} failed (${(f.error as Error).message ?? f.error}): trying the next transport`));
    c.on("gap", (g) => log(`gap on ${g.channel}: ${g.missed} missed`));
    c.on("error", (e) => log(`error: ${(e as Error).message ?? e}`));
    await c.connect();
  });

$("disconnect").onclick = () => {
  client?.close();
  client = undefined;
};

$("fallback").onclick = () => {
  if (!client) return log("connect first");
  log(`forcing a fallback from ${client.transport}`);
  client.forceFallback();
};

$("subscribe").onclick = () =>
  run("subscribe", async () => {
    if (!client) throw new Error("connect first");
    const ch = input("channel");
    await client.subscribe(ch, { onMessage: (m) => item("messages", `${m.channel} ${show(m)}`) });
    log(`subscribed to ${ch}`);
  });

$("publish").onclick = () =>
  run("publish", async () => {
    if (!client) throw new Error("connect first");
    const r = await client.publish(input("channel"), { text: input("text") });
    log(`published at offset ${r.offset}${r.duplicate ? " (duplicate)" : ""}`);
  });

$("history").onclick = () =>
  run("history", async () => {
    if (!client) throw new Error("connect first");
    const h = await client.history(input("channel"), { limit: 50 });
    $("historyList").replaceChildren();
    for (const m of h.messages) item("historyList", show(m));
    log(`history: ${h.messages.length} messages, latest offset ${h.offset}`);
  });

$("presence").onclick = () =>
  run("presence", async () => {
    if (!client) throw new Error("connect first");
    const p = await client.presence(input("channel"));
    $("presenceList").replaceChildren();
    for (const c of p.clients) item("presenceList", `${c.user || "(anonymous)"} ${c.conn}`);
    log(`presence: ${p.count}`);
  });

// For tests and the curious: the page's client.
(globalThis as { ferryPlayground?: () => Client | undefined }).ferryPlayground = () => client;
