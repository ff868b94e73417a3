// What every example page shares: a Ferry client for this page's visitor,
// with tokens from the page server's /config.json, and a status line.
import { Client, type ClientOptions, type Message, type Subscription } from "@ferry/client";

/** The query parameters of the page. */
export const params = new URLSearchParams(location.search);

/** The visitor's name: ?user=, or a random one. */
export const user = params.get("user") ?? "guest-" + Math.random().toString(36).slice(2, 8);

async function fetchToken(): Promise<string> {
  const r = await fetch(`/config.json?user=${encodeURIComponent(user)}`);
  if (!r.ok) throw new Error(`config.json: HTTP ${r.status}: ${await r.text()}`);
  return ((await r.json()) as { token: string }).token;
}

/**
 * A client of the node behind this page's server (prefix "" is /v1/; a
 * prefix such as "/raw" reaches another node mounted there). The state
 * and transport show in the element #status, and in window.ferryStatus
 * for the browser tests.
 */
export function newClient(prefix = "", opts: Partial<ClientOptions> = {}): Client {
  const status = { state: "connecting", transport: "", wsMessages: 0 };
  // Counts the WebSocket messages that reach the page (each may carry many
  // frames: what the node's batch.delay gathers), for the ticker's figures
  // and tests.
  class CountingWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      this.addEventListener("message", () => status.wsMessages++);
    }
  }
  const c = new Client({ url: location.origin + prefix, getToken: fetchToken, upgradeAfter: 0, backoff: { initial: 200, max: 2000 }, WebSocket: CountingWebSocket, ...opts } as ClientOptions);
  (window as unknown as { ferryStatus: typeof status }).ferryStatus = status;
  const show = () => {
    const el = document.getElementById("status");
    if (el) el.textContent = `${user} · ${status.state}${status.transport ? " over " + status.transport : ""}`;
  };
  c.on("state", (s) => {
    status.state = s.state;
    if (s.transport) status.transport = s.transport;
    show();
  });
  c.on("transport", (t) => {
    status.transport = t;
    show();
  });
  show();
  return c;
}

/** Escapes text for innerHTML. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

/**
 * WORKAROUND (missing in @ferry/client): the SDK treats a skipped offset
 * as a lost message and fetches it with a history request before it
 * delivers the next one, one round trip per skipped offset. On a conflated
 * channel every replaced message is such a gap, by design, so a batch of
 * 40 conflated ticks cost 40 round trips and delivery fell behind the feed.
 * Until the SDK has a subscribe option for it, this replaces the client's
 * gap filler with one that just moves the position on: the page wants the
 * newest value, not the ones conflation replaced.
 */
export function acceptConflationGaps(c: Client): void {
  (c as unknown as { fill: (sub: { pos?: { offset: number; epoch: string } }, to: number, epoch: string) => Promise<void> }).fill = async (sub, to, epoch) => {
    if (sub.pos && sub.pos.epoch === epoch && sub.pos.offset < to) sub.pos = { offset: to, epoch };
  };
}

/**
 * Shows a channel's retained history, then follows it from there: a page
 * opened late sees everything the channel keeps, each message once.
 *
 * The subscribe always names where the history ended, even when the
 * channel was empty (offset 0: from the start): without `since` it would
 * start live from the channel's position at the subscribe, and a message
 * published between the history read and the subscribe (two round trips,
 * longer over SSE) would reach neither. The editor's pages lost an early
 * update of the other page so, and Yjs then held back every later one.
 */
export async function follow(c: Client, channel: string, onMessage: (m: Message) => void): Promise<Subscription> {
  await c.connect();
  const h = await c.history(channel);
  for (const m of h.messages) onMessage(m);
  return c.subscribe(channel, { onMessage, since: { offset: h.offset, epoch: h.epoch } });
}
