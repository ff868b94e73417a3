// The three carriers of a Ferry session: WebSocket, SSE (+ POST /v1/send)
// and long-poll. Each opens a link that ends at `connected` and then
// carries frames both ways until it closes, once. The client above decides
// which to try, in what order, and what to do when one closes.

import { HandshakeError } from "./errors.js";
import { type ClientFrame, type Codec, type ServerFrame, batches, framesOf, jsonCodec } from "./frames.js";

/** The transports, in the order the client tries them by default. */
export type TransportName = "websocket" | "sse" | "poll";

/** How a link ended. */
export interface LinkClose {
  /** Close code: the server's (from its disconnect frame or the close frame), else 1006. */
  code: number;
  reason: string;
  /** retry_after_ms of the server's disconnect frame, 0 when absent. */
  retryAfterMs: number;
}

/** What a link reports to its owner. */
export interface LinkEvents {
  /** Frames from the server, in order (never the connected frame itself). */
  frames(frames: ServerFrame[]): void;
  /** Something arrived (a frame, a heartbeat comment, an empty poll). */
  alive(): void;
  /** The link ended; called once, never after close() was called. */
  closed(info: LinkClose): void;
}

/** One open connection of a session over one transport. */
export interface Link {
  readonly transport: TransportName;
  /** Sends frames in order (batched when several). */
  send(frames: ClientFrame[]): void;
  /** Ends the link without a closed event. */
  close(): void;
}

/** The environment a link is opened with. */
export interface OpenParams {
  /** http(s) base URL of the node, without a trailing slash. */
  base: string;
  /** The connection token, "" for none. */
  token: string;
  connect: ClientFrame;
  codec: Codec;
  fetch: typeof fetch;
  /** Extra headers of every HTTP request (not the WebSocket's). */
  headers: Record<string, string>;
  WebSocket?: typeof WebSocket;
  /** Bound on the whole opening (handshake and connected), in ms. */
  timeoutMs: number;
  events: LinkEvents;
  /** Told about a session the server opened before the link is known to work (so the next try resumes it). */
  sessionOpened(connected: ServerFrame): void;
}

/** A link just opened, with the connected frame and the frames that came with it. */
export interface Opened {
  link: Link;
  connected: ServerFrame;
  rest: ServerFrame[];
}

/** Opens a link over the named transport. */
export function openLink(name: TransportName, p: OpenParams): Promise<Opened> {
  switch (name) {
    case "websocket":
      return openWebSocket(p);
    case "sse":
      return openSSE(p);
    case "poll":
      return openPoll(p);
  }
}

/** The ws(s) URL of a node's WebSocket endpoint. */
export function webSocketURL(base: string): string {
  return base.replace(/^http/, "ws") + "/v1/ws";
}

/** Throws a HandshakeError for a refused HTTP response. */
async function refused(resp: Response): Promise<never> {
  let reason = resp.statusText;
  try {
    const body = await resp.json();
    if (body?.error?.reason) reason = body.error.reason;
  } catch {
    // not JSON: keep the status text
  }
  const ra = Number(resp.headers.get("Retry-After") ?? 0);
  throw new HandshakeError(resp.status, reason, Number.isFinite(ra) ? ra * 1000 : 0);
}

function authHeaders(p: OpenParams): Record<string, string> {
  return p.token ? { ...p.headers, Authorization: `Bearer ${p.token}` } : { ...p.headers };
}

/** Runs fn with a deadline: rejects with a timeout error and calls onTimeout when it passes. */
function withTimeout<T>(ms: number, what: string, fn: (abort: AbortSignal) => Promise<T>, onTimeout: () => void): Promise<T> {
  const ctl = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      ctl.abort();
      onTimeout();
      reject(new Error(`ferry: ${what} took longer than ${ms} ms`));
    }, ms);
  });
  return Promise.race([fn(ctl.signal), deadline]).finally(() => clearTimeout(timer));
}

/** The frame that ends the opening: connected, or why the server refused. */
function checkConnected(f: ServerFrame | undefined): ServerFrame {
  if (f?.type === "connected") return f;
  if (f?.type === "disconnect") throw Object.assign(new Error(`ferry: connect refused: ${f.code} ${f.reason}`), { closeCode: f.code, closeReason: f.reason });
  if (f?.type === "error") throw new Error(`ferry: connect refused: ${f.code} ${f.reason}`);
  throw new Error(`ferry: want a connected frame first, got ${f?.type}`);
}

// ---------------------------------------------------------------- WebSocket

async function ticket(p: OpenParams, signal: AbortSignal): Promise<string> {
  const resp = await p.fetch(p.base + "/v1/tickets", { method: "POST", headers: authHeaders(p), signal });
  if (!resp.ok) await refused(resp);
  const body = await resp.json();
  if (typeof body?.ticket !== "string") throw new Error("ferry: POST /v1/tickets: no ticket in the reply");
  return body.ticket;
}

function openWebSocket(p: OpenParams): Promise<Opened> {
  const WS = p.WebSocket ?? globalThis.WebSocket;
  if (!WS) return Promise.reject(new Error("ferry: no WebSocket implementation: pass one in options.WebSocket (e.g. the ws package in Node 20)"));
  let ws: WebSocket | undefined;
  return withTimeout(
    p.timeoutMs,
    "opening a WebSocket",
    async (signal) => {
      // A browser cannot set headers on a WebSocket: the token goes in a
      // header to get a single-use ticket, and only the ticket in the URL.
      const t = p.token ? await ticket(p, signal) : "";
      if (signal.aborted) throw new Error("ferry: aborted");
      return new Promise<Opened>((resolve, reject) => {
        const sock = new WS(webSocketURL(p.base) + (t ? `?ticket=${encodeURIComponent(t)}` : ""), [p.codec.subprotocol]);
        ws = sock;
        sock.binaryType = "arraybuffer";
        let link: WsLink | undefined;
        let last: ServerFrame | undefined; // a disconnect frame before the close
        sock.onopen = () => sock.send(p.codec.encode([p.connect]));
        sock.onmessage = (ev: MessageEvent) => {
          let frames: ServerFrame[];
          try {
            frames = p.codec.decode(ev.data);
          } catch (err) {
            sock.close(4014, "malformed message");
            if (!link) reject(err);
            return;
          }
          for (const f of frames) if (f.type === "disconnect") last = f;
          if (link) {
            p.events.alive();
            p.events.frames(frames);
            return;
          }
          try {
            const connected = checkConnected(frames[0]);
            link = new WsLink(sock, p.codec);
            resolve({ link, connected, rest: frames.slice(1) });
          } catch (err) {
            reject(err);
          }
        };
        sock.onerror = () => {
          // The close event follows with the details.
        };
        sock.onclose = (ev: CloseEvent) => {
          const info: LinkClose = {
            code: last?.code ?? (ev.code || 1006),
            reason: last?.reason ?? ev.reason ?? "",
            retryAfterMs: last?.retry_after_ms ?? 0,
          };
          if (!link) {
            reject(Object.assign(new Error(`ferry: WebSocket closed before connected (${info.code}${info.reason ? " " + info.reason : ""})`), { closeCode: last ? info.code : 0, closeReason: info.reason, retryAfterMs: info.retryAfterMs }));
          } else if (!link.done) {
            link.done = true;
            p.events.closed(info);
          }
        };
      });
    },
    () => ws?.close(),
  );
}

class WsLink implements Link {
  readonly transport = "websocket";
  done = false;
  constructor(
    private ws: WebSocket,
    private codec: Codec,
  ) {}
  send(frames: ClientFrame[]): void {
    if (this.done || this.ws.readyState !== 1) return; // lost with the link; the client resends what matters
    for (const b of batches(frames)) this.ws.send(this.codec.encode(b));
  }
  close(): void {
    this.done = true;
    try {
      this.ws.close(1000);
    } catch {
      // already closed
    }
  }
}

// ----------------------------------------------------- HTTP fallbacks (shared)

/** POST /v1/sessions: opens an HTTP session and returns its connected frame. */
async function openSession(p: OpenParams, mode: "sse" | "poll", signal: AbortSignal): Promise<ServerFrame> {
  const resp = await p.fetch(`${p.base}/v1/sessions?transport=${mode}`, {
    method: "POST",
    headers: { ...authHeaders(p), "Content-Type": "application/json" },
    body: jsonCodec.encode([p.connect]) as string,
    signal,
  });
  if (!resp.ok) await refused(resp);
  const connected = checkConnected(await resp.json());
  if (typeof connected.session_token !== "string") throw new Error("ferry: POST /v1/sessions: no session_token in the reply");
  p.sessionOpened(connected);
  return connected;
}

/** The state every HTTP link shares: its session, its abort switch, its end. */
abstract class HttpLink implements Link {
  abstract readonly transport: TransportName;
  done = false;
  readonly ctl = new AbortController();
  /** seq of the last message received: Last-Event-ID, which also acknowledges. */
  lastSeq = 0;
  constructor(
    readonly p: OpenParams,
    readonly sessionToken: string,
  ) {}
  private sending: Promise<void> = Promise.resolve();

  /**
   * Client frames go by POST /v1/send, one request at a time so that they
   * keep their order; their replies come on the stream or the poll.
   */
  send(frames: ClientFrame[]): void {
    if (this.done) return;
    this.sending = this.sending.then(async () => {
      for (const b of batches(frames)) {
        if (this.done) return;
        try {
          const resp = await this.p.fetch(`${this.p.base}/v1/send`, { method: "POST", headers: this.headers(), body: jsonCodec.encode(b) as string, signal: this.ctl.signal });
          if (!resp.ok) await refused(resp);
        } catch (err) {
          this.failWith(err);
          return;
        }
      }
    });
  }

  close(): void {
    this.done = true;
    this.ctl.abort();
  }
  /** Passes frames on; a disconnect frame ends the link with its code. */
  deliver(frames: ServerFrame[]): void {
    if (this.done) return;
    this.p.events.alive();
    for (const f of frames) if (f.type === "message" && typeof f.seq === "number") this.lastSeq = Math.max(this.lastSeq, f.seq);
    const d = frames.find((f) => f.type === "disconnect");
    if (frames.length) this.p.events.frames(frames);
    if (d && !this.done) this.fail({ code: d.code, reason: d.reason ?? "", retryAfterMs: d.retry_after_ms ?? 0 });
  }
  fail(info: LinkClose): void {
    if (this.done) return;
    this.done = true;
    this.ctl.abort();
    this.p.events.closed(info);
  }
  /** A failed request: a 404 means the session is gone (resume it anew); anything else is a broken link. */
  failWith(err: unknown): void {
    const status = (err as HandshakeError)?.status;
    this.fail({ code: 1006, reason: status ? `HTTP ${status}: ${(err as HandshakeError).reason}` : String((err as Error)?.message ?? err), retryAfterMs: 0 });
  }
  headers(): Record<string, string> {
    return { ...this.p.headers, "Ferry-Session": this.sessionToken, "Content-Type": "application/json" };
  }
}

// --------------------------------------------------------------------- SSE

/** A stream that broke sooner than this after opening is not opened again in place (ms). */
const minStreamLife = 1000;

function openSSE(p: OpenParams): Promise<Opened> {
  let link: SseLink | undefined;
  return withTimeout(
    p.timeoutMs,
    "opening an SSE stream",
    async (signal) => {
      const connected = await openSession(p, "sse", signal);
      link = new SseLink(p, connected.session_token);
      signal.addEventListener("abort", () => link?.close());
      // The link works once the stream delivered its first bytes: a proxy
      // that buffers or refuses the stream fails here, within the timeout.
      await link.start(connected.stream_ticket);
      return { link, connected, rest: [] };
    },
    () => link?.close(),
  );
}

class SseLink extends HttpLink {
  readonly transport = "sse";

  /**
   * Opens the stream and resolves once its first bytes arrived. A stream
   * that breaks later is opened again once on the same session (a new
   * ticket, Last-Event-ID: the node replays what the old stream wrote but
   * the client did not get), as long as it had lived a while; else the
   * link ends and the client reconnects with its backoff.
   */
  start(streamTicket: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let started = false;
      const run = async (ticket: string): Promise<void> => {
        const openedAt = Date.now();
        try {
          await this.stream(ticket, () => {
            if (!started) {
              started = true;
              resolve();
            }
          });
          if (!started) throw new Error("the stream ended before it started");
        } catch (err) {
          // A refused or broken stream is a transport problem (a proxy
          // that blocks SSE), not a refusal of the session: the next
          // transport may work.
          if (!started) return reject(new Error(`ferry: SSE stream failed: ${(err as Error)?.message ?? err}`));
        }
        if (this.done) return;
        if (Date.now() - openedAt < minStreamLife) return this.fail({ code: 1006, reason: "SSE stream ended", retryAfterMs: 0 });
        try {
          await run(await this.sessionTicket());
        } catch (err) {
          this.failWith(err);
        }
      };
      void run(streamTicket);
    });
  }

  /** A ticket for a new stream of this session. */
  private async sessionTicket(): Promise<string> {
    const resp = await this.p.fetch(`${this.p.base}/v1/tickets`, { method: "POST", headers: { ...this.p.headers, "Ferry-Session": this.sessionToken }, signal: this.ctl.signal });
    if (!resp.ok) await refused(resp);
    const body = await resp.json();
    if (typeof body?.ticket !== "string") throw new Error("ferry: POST /v1/tickets: no ticket in the reply");
    return body.ticket;
  }

  private async stream(streamTicket: string, onStart: () => void): Promise<void> {
    const resp = await this.p.fetch(`${this.p.base}/v1/sse?ticket=${encodeURIComponent(streamTicket)}`, {
      headers: { ...this.p.headers, Accept: "text/event-stream", ...(this.lastSeq > 0 ? { "Last-Event-ID": String(this.lastSeq) } : {}) },
      signal: this.ctl.signal,
    });
    if (!resp.ok) await refused(resp);
    if (!resp.body) throw new Error("ferry: SSE response without a body");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let data: string[] = [];
    let first = true;
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this.done) return;
      if (first) {
        first = false;
        onStart();
      }
      buf += value;
      const frames: ServerFrame[] = [];
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, "");
        buf = buf.slice(nl + 1);
        if (line === "") {
          if (data.length) frames.push(...framesOf(JSON.parse(data.join("\n"))));
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        }
        // event: repeats the frame's type, id: its seq (both in the JSON);
        // ": hb" comments only show the stream is alive.
      }
      this.deliver(frames);
    }
  }

}

// --------------------------------------------------------------- long-poll

function openPoll(p: OpenParams): Promise<Opened> {
  return withTimeout(
    p.timeoutMs,
    "opening a long-poll session",
    async (signal) => {
      const connected = await openSession(p, "poll", signal);
      const link = new PollLink(p, connected.session_token);
      void link.loop();
      return { link, connected, rest: [] };
    },
    () => {},
  );
}

class PollLink extends HttpLink {
  readonly transport = "poll";

  // Exactly one poll is outstanding at a time: with two, the node answers
  // the held one with [] and frames it had already taken for it can be
  // lost (replies have no seq to replay them by). Client frames go by
  // POST /v1/send (HttpLink.send) instead of riding on a new poll.
  async loop(): Promise<void> {
    while (!this.done) {
      let frames: ServerFrame[];
      try {
        const resp = await this.p.fetch(`${this.p.base}/v1/poll`, {
          method: "POST",
          headers: { ...this.headers(), "Last-Event-ID": String(this.lastSeq) },
          body: "",
          signal: this.ctl.signal,
        });
        if (!resp.ok) await refused(resp);
        frames = framesOf(await resp.json());
      } catch (err) {
        this.failWith(err);
        return;
      }
      this.deliver(frames);
    }
  }
}
