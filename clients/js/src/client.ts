// The client: one session with a Ferry node, kept across reconnects and
// transports. The run loop opens links (WebSocket, then SSE, then long-poll),
// waits for each to end, and decides from its close code whether and when
// to come back. Subscriptions remember their last delivered position, so
// every message reaches the application once, in offset order per channel.

import { type Backoff, type BackoffOptions, type Clock, backoffDelay, backoffUpward, backoffWithDefaults, systemClock } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { CloseError, ClosedError, GaveUpError, HandshakeError, ServerError } from "./errors.js";
import { type ClientFrame, type Codec, type Position, type ServerFrame, jsonCodec, validChannel } from "./frames.js";
import { type Link, type LinkClose, type Opened, type TransportName, openLink } from "./transport.js";
import { type UploadOptions, type UploadResult, type UploadSource, runUpload } from "./upload.js";

/** Encrypts and decrypts message data (see the e2e entry). */
export interface PayloadCipher {
  seal(channel: string, data: unknown): Promise<unknown>;
  open(channel: string, data: unknown): Promise<unknown>;
}

/** Options of a Client. Every field but url is optional; each states its default. */
export interface ClientOptions {
  /** Base URL of the node: http(s)://host[:port][/prefix]; ws(s):// works too. */
  url: string;
  /** The connection token (JWT). Sent in headers only, never in a URL. Default: none. */
  token?: string;
  /** Returns a fresh token: before the first connection without token, after 4015 or an HTTP 401 (once in a row), and before expiry. Default: none. */
  getToken?: () => Promise<string>;
  /** How long before the token's expiry getToken is called (at most half the remaining life), ms. Default 30000. */
  refreshBefore?: number;
  /** The WebSocket codec. Default JSON; msgpack from "@ferry/client/msgpack". HTTP fallbacks always use JSON. */
  codec?: Codec;
  /** Credit window: most unacknowledged messages in flight (at most 65536). Default 0: none. */
  window?: number;
  /** Send an ack once this many delivered messages are unacknowledged. Default: half the granted window, or 64. */
  ackEvery?: number;
  /** And at least this often, ms. Default 100. */
  ackInterval?: number;
  /** Delays between attempts. Default 1 s doubling to 30 s, +/-20% jitter, unlimited attempts. */
  backoff?: BackoffOptions;
  /** Transports to try, in order. Default ["websocket", "sse", "poll"]. */
  transports?: TransportName[];
  /** Per-transport bound on opening (handshake to connected), ms. Default websocket 5000, sse 5000, poll 10000. */
  timeouts?: Partial<Record<TransportName, number>>;
  /** After falling back, try the first transport again this often (ms), keeping the session. Default 60000; 0: never. */
  upgradeAfter?: number;
  /** Sent in connect. Default "ferry-js/1". */
  clientName?: string;
  /** WebSocket implementation. Default globalThis.WebSocket (Node 20: pass the ws package's). */
  WebSocket?: typeof WebSocket;
  /** fetch implementation. Default globalThis.fetch. */
  fetch?: typeof fetch;
  /**
   * Extra headers of the HTTP requests (tickets, SSE, send, poll). Default
   * in browsers: none. Outside a browser (Node): Origin set to the node's
   * own origin, because Node's fetch sends Sec-Fetch-Mode, which the
   * node's origin policy takes for a browser request without Origin.
   */
  headers?: Record<string, string>;
  /** Reconnect promptly when the page becomes visible or the browser goes online. Default true (where those events exist). */
  watchEnvironment?: boolean;
  /** Encrypts published data and decrypts received data (see E2E in "@ferry/client/e2e"). Default: none. */
  cipher?: PayloadCipher;
  /** Time source, for tests. Default: the system clock. */
  clock?: Clock;
  /** Random numbers in [0, 1) for the jitter, for tests. Default Math.random. */
  random?: () => number;
}

/** The states of a client. */
export type State = "connecting" | "connected" | "disconnected" | "closed";

/** A state change. */
export interface StateChange {
  state: State;
  /** The transport of a connected client. */
  transport?: TransportName;
  /** Why the client is disconnected or closed. */
  error?: unknown;
  /** The close code that ended the last link, when there was one. */
  code?: number;
  /** The delay before the next attempt (disconnected), ms. */
  delayMs?: number;
}

/** A channel message delivered to the application. */
export interface Message {
  channel: string;
  offset: number;
  epoch: string;
  data: unknown;
  from?: string;
  priority?: string;
  time?: number;
}

/**
 * Messages a subscription lost: recovered false on a (re)subscription, or an
 * epoch change on a live subscription (the broker lost the channel's stream),
 * reported with the same fields either way, once per new epoch.
 */
export interface Gap {
  channel: string;
  /** How many messages the server could not replay. */
  missed: number;
  /** The channel's epoch now. */
  epoch: string;
  /** The epoch the client had; differs from epoch when the stream was reset. */
  prevEpoch: string;
  /** The last position delivered before the gap. */
  after: Position;
}

/** A join or leave event of a channel. */
export interface PresenceEvent {
  type: "join" | "leave";
  channel: string;
  user: string;
  conn: string;
}

/** Counters of what the client did, for tests and dashboards. */
export interface Stats {
  connects: number;
  resumes: number;
  /** Messages missing from a channel's offsets that the client fetched with history. */
  gapsFilled: number;
  duplicatesDropped: number;
  upgrades: number;
}

interface ClientEvents {
  state: (s: StateChange) => void;
  transport: (t: TransportName) => void;
  fallback: (f: { transport: TransportName; error: unknown }) => void;
  error: (err: unknown) => void;
  gap: (g: Gap) => void;
}

/** Options of one subscribe. */
export interface SubscribeOptions {
  /** Called with each message, in offset order, once. */
  onMessage?: (m: Message) => void;
  /** Called when messages were lost (before the next message). Default: the client's "gap" event. */
  onGap?: (g: Gap) => void;
  /** Asks for join/leave events, delivered here. */
  onPresence?: (e: PresenceEvent) => void;
  /** Replay what followed this position (say, the last one a previous run processed). */
  since?: Position;
}

/** Options of one publish. */
export interface PublishOptions {
  /** Idempotency key, kept across retries. Default: a random key per call. */
  key?: string;
  priority?: "critical" | "normal" | "droppable";
  conflate?: string;
  signal?: AbortSignal;
}

/** The reply to a publish. */
export interface PublishResult {
  offset: number;
  epoch: string;
  duplicate: boolean;
}

/** A history reply. */
export interface HistoryResult {
  messages: Message[];
  offset: number;
  epoch: string;
}

/** A presence reply. */
export interface PresenceResult {
  clients: { user: string; conn: string }[];
  count: number;
}

interface Pending {
  frame: ClientFrame;
  resolve(f: ServerFrame): void;
  reject(err: unknown): void;
  /** Sent again on the next link when this one ends unanswered. */
  resend: boolean;
}

/** Close codes after which the client stops (the protocol's "reconnect: no"). */
const fatalCodes = new Set([1000, 4001, 4003, 4009, 4011, 4014, 4016]);

/** One channel subscription; lasts across reconnects until unsubscribe(), close() or the server ends it. */
export class Subscription {
  /** Last delivered position (or the channel's position when subscribed without since). */
  pos?: Position;
  /** Set while the subscription is confirmed on the current link. */
  active = false;
  ended = false;
  /** @internal The epoch the last gap moved to: a stream reset is reported once (by subscribed or by its first message). */
  gapEpoch?: string;
  /** @internal Settles the subscribe() call that waits for the first confirmation. */
  waiter?: { resolve(): void; reject(err: unknown): void };
  constructor(
    private client: Client,
    readonly channel: string,
    readonly opts: SubscribeOptions,
  ) {
    this.pos = opts.since;
  }
  /** The last delivered position, if any. */
  position(): Position | undefined {
    return this.pos && { ...this.pos };
  }
  /** Ends the subscription. */
  unsubscribe(): Promise<void> {
    return this.client.unsubscribeSub(this);
  }
}

/** A connection to a Ferry node, kept across network trouble and restarts. */
export class Client extends Emitter<ClientEvents> {
  private readonly base: string;
  private readonly opts: ClientOptions;
  private readonly backoff: Backoff;
  private readonly clock: Clock;
  private readonly rand: () => number;
  private readonly codec: Codec;
  private readonly transports: TransportName[];
  private token: string;

  private _state: State = "disconnected";
  private closed = false;
  private closeErr: unknown;
  private link?: Link;
  private linkEnded?: (c: LinkClose) => void;
  private upgrading = false;
  private oldLinkClose?: LinkClose;
  private sticky = 0; // index in transports the next attempt starts from
  private session?: { id: string; resumeToken: string };
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private subs = new Map<string, Subscription>();
  private outbox: ClientFrame[] = [];
  private flushQueued = false;
  private wakeSleep?: () => void;
  private timers = new Map<string, unknown>();
  private ackSeq = 0; // last seq delivered on this link
  private ackSent = 0;
  private ackEvery = 64;
  private lastRecv = 0;
  private heartbeat = { interval: 25000, timeout: 10000 };
  private maxFrame = 65536; // the server's max_frame_bytes (connected's limits)
  private deliverChain: Promise<void> = Promise.resolve();
  private started?: Promise<void>;
  private connectedWaiters: Array<() => void> = [];
  private removeWatchers?: () => void;
  readonly stats: Stats = { connects: 0, resumes: 0, gapsFilled: 0, duplicatesDropped: 0, upgrades: 0 };

  constructor(opts: ClientOptions) {
    super();
    if (!opts || typeof opts.url !== "string") throw new TypeError("ferry: options.url: want the node's base URL, e.g. https://host:8080");
    let u: URL;
    try {
      u = new URL(opts.url.replace(/^ws/, "http"));
    } catch {
      throw new TypeError(`ferry: options.url ${JSON.stringify(opts.url)} is not a URL`);
    }
    if (u.searchParams.has("token")) throw new TypeError("ferry: options.url: a token in the URL is refused (URLs end up in logs): pass options.token");
    this.base = (u.origin + u.pathname).replace(/\/v1\/ws$/, "").replace(/\/+$/, "");
    if (opts.window !== undefined && (!Number.isInteger(opts.window) || opts.window < 0 || opts.window > 65536)) {
      throw new RangeError(`ferry: options.window: want an integer from 0 to 65536, got ${opts.window}`);
    }
    this.transports = opts.transports ?? ["websocket", "sse", "poll"];
    if (this.transports.length === 0 || this.transports.some((t) => !["websocket", "sse", "poll"].includes(t))) {
      throw new TypeError(`ferry: options.transports: want a non-empty list of "websocket", "sse", "poll"`);
    }
    this.opts = opts;
    this.backoff = backoffWithDefaults(opts.backoff);
    this.clock = opts.clock ?? systemClock;
    this.rand = opts.random ?? Math.random;
    this.codec = opts.codec ?? jsonCodec;
    this.token = opts.token ?? "";
  }

  /** The current state. */
  get state(): State {
    return this._state;
  }

  /** The transport of the current link, if connected. */
  get transport(): TransportName | undefined {
    return this.link?.transport;
  }

  /** The session id of the current (or last) connection. */
  get sessionId(): string | undefined {
    return this.session?.id;
  }

  /** Starts connecting and resolves once connected (the client keeps trying in the background after a failure, unless it is fatal). */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(this.closeErr));
    if (!this.started) {
      this.watchEnvironment();
      this.started = this.run();
      this.started.catch(() => {});
    }
    return this.whenConnected();
  }

  /** Resolves when the client is connected; rejects once it is closed. */
  whenConnected(): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError(this.closeErr));
    return new Promise((resolve, reject) => {
      const off = this.on("state", (s) => {
        if (s.state === "connected") {
          off();
          resolve();
        } else if (s.state === "closed") {
          off();
          reject(s.error ?? new ClosedError());
        }
      });
    });
  }

  /** Closes the connection with 1000 and stops; calls in progress fail with ClosedError. */
  close(): void {
    this.shutdown(undefined);
  }

  // ------------------------------------------------------------ requests

  /** Subscribes to a channel and resolves once the server confirmed it. */
  async subscribe(channel: string, opts: SubscribeOptions = {}): Promise<Subscription> {
    if (!validChannel(channel)) throw new TypeError(`ferry: subscribe: channel ${JSON.stringify(channel)}: want 1 to 255 printable ASCII bytes without space, '*', '{' or '}'`);
    if (this.subs.has(channel)) throw new Error(`ferry: already subscribed to ${JSON.stringify(channel)}`);
    if (this.closed) throw new ClosedError(this.closeErr);
    const sub = new Subscription(this, channel, opts);
    this.subs.set(channel, sub);
    if (this.link && this._state === "connected") {
      try {
        await this.sendSubscribe(sub);
      } catch (err) {
        this.subs.delete(channel);
        sub.ended = true;
        throw err;
      }
    } else {
      // Subscribed by the next connect (adopt); wait for it, or for close.
      await new Promise<void>((resolve, reject) => {
        sub.waiter = { resolve, reject };
      });
    }
    return sub;
  }

  /** Publishes data; the frame is sent again with the same key after a reconnect, so it is done at most once. */
  async publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    if (!validChannel(channel)) throw new TypeError(`ferry: publish: channel ${JSON.stringify(channel)} is not a valid channel name`);
    if (data === undefined) throw new TypeError("ferry: publish: data is undefined");
    if (opts.priority && !["critical", "normal", "droppable"].includes(opts.priority)) throw new TypeError(`ferry: publish: priority ${opts.priority}: want critical, normal or droppable`);
    const payload = this.opts.cipher ? await this.opts.cipher.seal(channel, data) : data;
    const f: ClientFrame = { type: "publish", channel, data: payload, key: opts.key ?? randomKey() };
    if (opts.priority) f.priority = opts.priority;
    if (opts.conflate) f.conflate = opts.conflate;
    const r = await this.request(f, true, opts.signal);
    return { offset: r.offset, epoch: r.epoch, duplicate: !!r.duplicate };
  }

  /** Reads a channel's retained messages after since (all when absent), oldest first, at most limit (0: all). */
  async history(channel: string, opts: { since?: Position; limit?: number; signal?: AbortSignal } = {}): Promise<HistoryResult> {
    if (!validChannel(channel)) throw new TypeError(`ferry: history: channel ${JSON.stringify(channel)} is not a valid channel name`);
    const f: ClientFrame = { type: "history", channel };
    if (opts.since) f.since = opts.since;
    if (opts.limit) f.limit = opts.limit;
    const r = await this.request(f, true, opts.signal);
    const messages: Message[] = [];
    for (const m of r.messages ?? []) messages.push(await this.toMessage(channel, m));
    return { messages, offset: r.offset, epoch: r.epoch };
  }

  /** Lists a channel's subscribers. */
  async presence(channel: string, opts: { signal?: AbortSignal } = {}): Promise<PresenceResult> {
    if (!validChannel(channel)) throw new TypeError(`ferry: presence: channel ${JSON.stringify(channel)} is not a valid channel name`);
    const r = await this.request({ type: "presence", channel }, true, opts.signal);
    return { clients: r.clients ?? [], count: r.count ?? 0 };
  }

  /**
   * Calls method on the application's back end through the server (an rpc frame; see docs/hooks.md) and resolves
   * with the back end's answer (null when it sent none). It is sent once, never again on a new connection: it rejects
   * when the client is not connected or the connection drops before the answer. The server's refusals reject with a
   * ServerError: 404 no back end for the method, 504 the back end timed out, 503 it is down or busy, 502 a bad
   * answer, or the back end's own code.
   */
  async rpc(method: string, data?: unknown, opts: { signal?: AbortSignal } = {}): Promise<unknown> {
    if (typeof method !== "string" || method.length === 0 || method.length > 255) {
      throw new TypeError("ferry: rpc: method must be a string of 1 to 255 characters");
    }
    const f: ClientFrame = { type: "rpc", method };
    if (data !== undefined) f.data = data;
    const r = await this.request(f, false, opts.signal);
    return r.data ?? null;
  }

  /**
   * Uploads a file as resumable upload frames and resolves once the server
   * verified its sha256. Chunks out when the connection drops go again on
   * the next one; a refused chunk (409) makes it ask the server for its
   * offset and go on from there; calling it again for the same file
   * continues where the server is. Errors from the server are ServerError
   * (413/429 limits, 409 wrong hash). See docs/uploads.md.
   */
  upload(name: string, data: UploadSource, opts: UploadOptions = {}): Promise<UploadResult> {
    return runUpload((f, signal) => this.request(f, true, signal), () => this.maxFrame, name, data, opts);
  }

  /** An application-level round trip. */
  async ping(opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.request({ type: "ping" }, true, opts.signal);
  }

  /** Sends a new token for this connection (the same user); getToken does it by itself before expiry. */
  async refresh(token: string): Promise<void> {
    this.token = token;
    const r = await this.request({ type: "refresh", token }, false);
    this.scheduleRefresh(r.expires_at);
  }

  /** Falls back now: drops the current link and connects over the next transport (for tests and the playground). */
  forceFallback(): void {
    if (!this.link) return;
    const i = this.transports.indexOf(this.link.transport);
    this.sticky = Math.min(i + 1, this.transports.length - 1);
    this.dropLink({ code: 1006, reason: "fallback forced by the application", retryAfterMs: 0 }, true);
  }

  /** @internal */
  async unsubscribeSub(sub: Subscription): Promise<void> {
    if (sub.ended) return;
    sub.ended = true;
    this.subs.delete(sub.channel);
    if (this.link && this._state === "connected" && sub.active) {
      await this.request({ type: "unsubscribe", channel: sub.channel }, false).catch((err) => {
        if (!(err instanceof ServerError && err.code === 404)) throw err;
      });
    }
  }

  private sendSubscribe(sub: Subscription): Promise<ServerFrame> {
    const f: ClientFrame = { type: "subscribe", channel: sub.channel };
    if (sub.pos) f.since = { offset: sub.pos.offset, epoch: sub.pos.epoch };
    if (sub.opts.onPresence) f.presence = true;
    return this.request(f, false).then((r) => {
      this.subscribed(sub, r);
      return r;
    });
  }

  private request(frame: ClientFrame, resend: boolean, signal?: AbortSignal): Promise<ServerFrame> {
    if (this.closed) return Promise.reject(new ClosedError(this.closeErr));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    frame.id = id;
    return new Promise<ServerFrame>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(id);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.pending.set(id, {
        frame,
        resolve: (f) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(f);
        },
        reject: (e) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
        resend,
      });
      if (this.link && this._state === "connected") this.send(frame);
      else if (!resend) {
        this.pending.delete(id);
        reject(new Error(`ferry: ${frame.type}: not connected`));
      }
    });
  }

  /** Queues a frame for the current link; frames queued in one task go out as one batch. */
  private send(frame: ClientFrame): void {
    this.outbox.push(frame);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      const frames = this.outbox;
      this.outbox = [];
      if (frames.length && this.link) this.link.send(frames);
    });
  }

  // ------------------------------------------------------------ run loop

  private async run(): Promise<void> {
    let failures = 0;
    let tokenRetried = false;
    if (!this.token && this.opts.getToken) {
      try {
        this.token = await this.opts.getToken();
      } catch (err) {
        this.emit("error", err);
      }
    }
    while (!this.closed) {
      this.setState({ state: "connecting" });
      let delay: number;
      let code: number | undefined;
      let err: unknown;
      try {
        const ended = await this.attempt();
        failures = 0;
        tokenRetried = false;
        code = ended.code;
        err = new CloseError(ended.code, ended.reason);
        if (this.closed) return;
        if (fatalCodes.has(ended.code)) return this.shutdown(err);
        if (ended.code === 4015) {
          if (!this.opts.getToken) return this.shutdown(err);
          this.token = await this.opts.getToken();
          delay = 0;
        } else if (ended.code === 4008) {
          delay = backoffUpward(this.backoff, ended.retryAfterMs || 1000, this.rand);
        } else {
          delay = Math.max(backoffDelay(this.backoff, 0, this.rand), ended.retryAfterMs);
          if (ended.reason === "fallback forced by the application") delay = 0;
        }
        failures = 0;
      } catch (e) {
        if (this.closed) return;
        err = e;
        code = (e as { closeCode?: number }).closeCode || undefined;
        if (code && fatalCodes.has(code)) return this.shutdown(new CloseError(code, (e as { closeReason?: string }).closeReason ?? ""));
        const status = e instanceof HandshakeError ? e.status : 0;
        if (status === 401 || code === 4015) {
          if (!this.opts.getToken || tokenRetried) return this.shutdown(e);
          tokenRetried = true;
          try {
            this.token = await this.opts.getToken();
          } catch (te) {
            return this.shutdown(te);
          }
          continue;
        }
        if (status === 400 || status === 403 || status === 404) return this.shutdown(e);
        failures++;
        if (this.backoff.maxAttempts > 0 && failures >= this.backoff.maxAttempts) return this.shutdown(new GaveUpError(failures, e));
        delay = backoffDelay(this.backoff, failures - 1, this.rand);
        if (e instanceof HandshakeError && e.retryAfter) delay = Math.max(delay, e.retryAfter);
      }
      this.setState({ state: "disconnected", error: err, code, delayMs: delay });
      if (delay > 0) await this.sleep(delay);
    }
  }

  /** Sleeps ms, or less when wake() is called (page visible, browser online). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const h = this.clock.setTimeout(() => {
        this.wakeSleep = undefined;
        resolve();
      }, ms);
      this.wakeSleep = () => {
        this.clock.clearTimeout(h);
        this.wakeSleep = undefined;
        resolve();
      };
    });
  }

  /** Cuts a backoff wait short, or checks a connected link at once. */
  wake(): void {
    if (this.wakeSleep) this.wakeSleep();
    else if (this.link && this._state === "connected") this.probe();
  }

  private connectFrame(): ClientFrame {
    const f: ClientFrame = { type: "connect", id: 1, client: this.opts.clientName ?? "ferry-js/1" };
    if (this.opts.window) f.window = this.opts.window;
    if (this.session) f.resume = { session: this.session.id, token: this.session.resumeToken };
    return f;
  }

  private openParams(name: TransportName, onEnd: (c: LinkClose) => void, self: { link?: Link }) {
    const defaults = { websocket: 5000, sse: 5000, poll: 10000 };
    return {
      base: this.base,
      token: this.token,
      connect: this.connectFrame(),
      codec: name === "websocket" ? this.codec : jsonCodec,
      fetch: this.opts.fetch ?? globalThis.fetch.bind(globalThis),
      headers: this.opts.headers ?? (isBrowser() ? {} : { Origin: new URL(this.base).origin }),
      WebSocket: this.opts.WebSocket,
      timeoutMs: this.opts.timeouts?.[name] ?? defaults[name],
      sessionOpened: (c: ServerFrame) => {
        this.session = { id: c.session, resumeToken: c.resume_token };
      },
      events: {
        frames: (fs: ServerFrame[]) => {
          if (self.link && self.link === this.link) this.handleFrames(fs);
        },
        alive: () => {
          if (self.link && self.link === this.link) this.lastRecv = this.clock.now();
        },
        closed: (c: LinkClose) => {
          if (self.link && self.link === this.link) onEnd(c);
        },
      },
    };
  }

  /** One connection attempt over the transports, from the sticky one; resolves with how the link ended. */
  private async attempt(): Promise<LinkClose> {
    let lastErr: unknown;
    for (let i = this.sticky; i < this.transports.length; i++) {
      const name = this.transports[i];
      const self: { link?: Link } = {};
      let endedResolve!: (c: LinkClose) => void;
      const ended = new Promise<LinkClose>((r) => (endedResolve = r));
      const onEnd = (c: LinkClose) => {
        if (this.upgrading) this.oldLinkClose = c;
        else this.linkEnded?.(c);
      };
      let opened: Opened;
      try {
        opened = await openLink(name, this.openParams(name, onEnd, self));
      } catch (err) {
        lastErr = err;
        const code = (err as { closeCode?: number }).closeCode;
        // A refusal by the server (HTTP status or close code) is not a
        // transport problem: falling back would not help.
        if (err instanceof HandshakeError || code) throw err;
        if (this.closed) throw err;
        this.emit("fallback", { transport: name, error: err });
        continue;
      }
      if (this.closed) {
        opened.link.close();
        throw new ClosedError();
      }
      self.link = opened.link;
      this.linkEnded = endedResolve;
      this.sticky = i;
      this.adopt(opened);
      if (i > 0 && (this.opts.upgradeAfter ?? 60000) > 0) this.scheduleUpgrade();
      return ended;
    }
    // Every transport failed: the next attempt starts from the first again.
    this.sticky = 0;
    throw lastErr;
  }

  /** Makes an opened link the current one and sets the session up on it. */
  private adopt(o: Opened): void {
    this.link = o.link;
    this.lastRecv = this.clock.now();
    this.ackSeq = 0;
    this.ackSent = 0;
    this.outbox = [];
    const c = o.connected;
    const resumed = !!c.resumed && this.session?.id === c.session;
    this.session = { id: c.session, resumeToken: c.resume_token };
    this.stats.connects++;
    if (resumed) this.stats.resumes++;
    if (c.heartbeat) this.heartbeat = { interval: c.heartbeat.interval_ms || 25000, timeout: c.heartbeat.timeout_ms || 10000 };
    const granted = c.limits?.window ?? 0;
    this.maxFrame = c.limits?.max_frame_bytes || 65536;
    this.ackEvery = this.opts.ackEvery ?? (granted > 0 ? Math.max(1, Math.floor(granted / 2)) : 64);
    this.scheduleRefresh(c.expires_at);
    this.setState({ state: "connected", transport: o.link.transport });
    this.emit("transport", o.link.transport);
    // Subscriptions: a resumed session gets its confirmed ones back from the
    // server (subscribed frames without id); every other one subscribes
    // again from its last delivered position.
    // (sub.active still tells whether it was confirmed on the last link.)
    for (const sub of this.subs.values()) {
      if (resumed && sub.active) continue;
      sub.active = false;
      this.sendSubscribe(sub).catch((err) => this.subscribeFailed(sub, err));
    }
    for (const p of this.pending.values()) {
      if (p.frame.type === "subscribe") continue;
      if (p.resend) this.send(p.frame);
    }
    this.handleFrames(o.rest);
    this.scheduleLiveness();
    for (const w of this.connectedWaiters.splice(0)) w();
  }

  /** Ends the current link as if it had closed with info; reconnect=true skips the resume check. */
  private dropLink(info: LinkClose, keepSession = true): void {
    const l = this.link;
    if (!l) return;
    if (!keepSession) this.session = undefined;
    l.close();
    this.linkEnded?.(info);
  }

  private setState(s: StateChange): void {
    if (s.state !== "connected") {
      this.link = undefined;
      this.stopTimer("liveness");
      this.stopTimer("ack");
      for (const [id, p] of this.pending) {
        if (p.resend || p.frame.type === "subscribe") continue;
        this.pending.delete(id);
        p.reject(new Error(`ferry: ${p.frame.type}: connection lost before the reply`));
      }
    }
    if (s.state === this._state && s.state === "connecting") return;
    this._state = s.state;
    this.emit("state", s);
  }

  private shutdown(err: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.closeErr = err;
    this.link?.close();
    for (const t of [...this.timers.keys()]) this.stopTimer(t);
    this.removeWatchers?.();
    this.wakeSleep?.();
    this.linkEnded?.({ code: 1000, reason: "closed", retryAfterMs: 0 });
    const ce = new ClosedError(err);
    for (const p of this.pending.values()) p.reject(ce);
    this.pending.clear();
    for (const sub of this.subs.values()) {
      sub.ended = true;
      sub.waiter?.reject(ce);
      sub.waiter = undefined;
    }
    this.subs.clear();
    if (err) this.emit("error", err);
    this._state = "closed";
    this.emit("state", { state: "closed", error: err ?? undefined });
  }

  // ------------------------------------------------------------ frames in

  private handleFrames(frames: ServerFrame[]): void {
    for (const f of frames) {
      if (this.closed) return;
      switch (f.type) {
        case "message":
          this.onMessage(f);
          break;
        case "subscribed":
          if (f.id === undefined) this.restored(f);
          else this.reply(f);
          break;
        case "unsubscribed":
          if (f.id === undefined) this.serverUnsubscribed(f);
          else this.reply(f);
          break;
        case "join":
        case "leave": {
          const sub = this.subs.get(f.channel);
          if (sub?.opts.onPresence) this.ordered(() => sub.opts.onPresence!({ type: f.type as "join" | "leave", channel: f.channel, user: f.user, conn: f.conn }));
          break;
        }
        case "error":
          if (f.id !== undefined && this.pending.has(f.id)) this.reply(f);
          else this.emit("error", new ServerError(f.code, f.reason, !!f.retry));
          break;
        case "disconnect":
          // The link's close follows with this code.
          break;
        default:
          if (f.id !== undefined) this.reply(f);
      }
    }
  }

  private reply(f: ServerFrame): void {
    const p = this.pending.get(f.id!);
    if (!p) return;
    this.pending.delete(f.id!);
    if (f.type === "error") p.reject(new ServerError(f.code, f.reason, !!f.retry));
    else p.resolve(f);
  }

  /** A subscribe confirmed (with id): position and recovery. */
  private subscribed(sub: Subscription, f: ServerFrame): void {
    sub.active = true;
    if (sub.opts.since || sub.pos) {
      if (f.recovered === false) this.gap(sub, f.missed ?? 0, f.epoch);
    }
    if (!sub.pos) sub.pos = { offset: f.offset ?? 0, epoch: f.epoch ?? "" };
    sub.waiter?.resolve();
    sub.waiter = undefined;
  }

  private subscribeFailed(sub: Subscription, err: unknown): void {
    if (this.closed || !(err instanceof ServerError)) return; // a lost link: the next one subscribes again
    if (err.code === 409) {
      // The resumed session had it already (restored by the server).
      sub.active = true;
      return;
    }
    sub.ended = true;
    this.subs.delete(sub.channel);
    if (sub.waiter) sub.waiter.reject(err);
    else this.emit("error", err);
    sub.waiter = undefined;
  }

  /** A channel restored by a resumed session. */
  private restored(f: ServerFrame): void {
    const sub = this.subs.get(f.channel);
    if (!sub) {
      // Unsubscribed while away: end it on the server too.
      this.request({ type: "unsubscribe", channel: f.channel }, false).catch(() => {});
      return;
    }
    sub.active = true;
    if (f.recovered === false) this.gap(sub, f.missed ?? 0, f.epoch);
    else if (sub.pos && sub.pos.epoch === f.epoch && f.offset > sub.pos.offset) {
      // The channel is ahead: once the replay is in (the pong comes after
      // it), fetch what a replay that started too late left out (a
      // message written to the old link but never received, before its
      // first ack).
      const target = f.offset;
      this.request({ type: "ping" }, false).then(
        () => this.ordered(() => this.fill(sub, target, f.epoch)),
        () => {},
      );
    }
  }

  private serverUnsubscribed(f: ServerFrame): void {
    const sub = this.subs.get(f.channel);
    if (!sub) return;
    sub.ended = true;
    this.subs.delete(f.channel);
    this.emit("error", new Error(`ferry: the server ended the subscription to ${f.channel}: ${f.reason ?? ""}`));
  }

  private gap(sub: Subscription, missed: number, epoch: string): void {
    const after = sub.pos ?? { offset: 0, epoch: "" };
    const g: Gap = { channel: sub.channel, missed, epoch, prevEpoch: after.epoch, after: { ...after } };
    sub.gapEpoch = epoch;
    this.ordered(() => (sub.opts.onGap ? sub.opts.onGap(g) : this.emit("gap", g)));
  }

  /** Runs fn in delivery order (after everything queued before it is delivered). */
  private ordered(fn: () => void | Promise<void>): void {
    this.deliverChain = this.deliverChain.then(fn).catch((err) => this.emit("error", err));
  }

  private onMessage(f: ServerFrame): void {
    const link = this.link;
    const seq: number = typeof f.seq === "number" ? f.seq : 0;
    this.ordered(async () => {
      const sub = this.subs.get(f.channel);
      if (sub && !sub.ended) {
        const pos = sub.pos;
        // A skipped offset is a message this client did not get (dropped,
        // conflated, or lost by a resumed replay): fetch it from history
        // first, so that the application sees every retained message.
        if (pos && pos.epoch === f.epoch && f.offset > pos.offset + 1) await this.fill(sub, f.offset - 1, f.epoch);
        await this.deliver(sub, f);
      }
      if (seq && link === this.link) this.delivered(seq);
    });
  }

  /** Delivers f unless its offset was delivered already. */
  private async deliver(sub: Subscription, f: ServerFrame): Promise<void> {
    if (sub.ended) return;
    const pos = sub.pos;
    if (pos && pos.epoch === f.epoch && f.offset <= pos.offset) {
      this.stats.duplicatesDropped++;
      return;
    }
    if (pos && pos.epoch && pos.epoch !== f.epoch && sub.gapEpoch !== f.epoch) this.gapOnEpoch(sub, f, pos);
    sub.pos = { offset: f.offset, epoch: f.epoch };
    const m = await this.toMessage(sub.channel, f);
    try {
      sub.opts.onMessage?.(m);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  /** Fetches and delivers the retained messages after sub's position up to offset to (same epoch); what history no longer has is a gap. */
  private async fill(sub: Subscription, to: number, epoch: string): Promise<void> {
    const pos = sub.pos;
    if (!pos || pos.epoch !== epoch || pos.offset >= to || sub.ended) return;
    let h: ServerFrame;
    try {
      h = await this.request({ type: "history", channel: sub.channel, since: { offset: pos.offset, epoch }, limit: to - pos.offset }, true);
    } catch (err) {
      if (!(err instanceof ServerError)) throw err;
      h = { type: "history", messages: [] }; // no history kept: the gap stands
    }
    let got = 0;
    for (const m of h.messages ?? []) {
      if (m.epoch !== epoch || m.offset > to) continue;
      const before = sub.pos?.offset ?? 0;
      await this.deliver(sub, m);
      if ((sub.pos?.offset ?? 0) > before) got++;
    }
    this.stats.gapsFilled += got;
    const missed = to - pos.offset - got;
    if (missed > 0) {
      sub.pos = { offset: to, epoch };
      const g: Gap = { channel: sub.channel, missed, epoch, prevEpoch: epoch, after: { offset: pos.offset, epoch } };
      if (sub.opts.onGap) sub.opts.onGap(g);
      else this.emit("gap", g);
    }
  }

  /** The stream of a live subscription was reset: reported as a re-subscription's recovered:false would be. */
  private gapOnEpoch(sub: Subscription, f: ServerFrame, pos: Position): void {
    const g: Gap = { channel: sub.channel, missed: Math.max(0, f.offset - 1), epoch: f.epoch, prevEpoch: pos.epoch, after: { ...pos } };
    sub.gapEpoch = f.epoch;
    if (sub.opts.onGap) sub.opts.onGap(g);
    else this.emit("gap", g);
  }

  private async toMessage(channel: string, f: ServerFrame): Promise<Message> {
    const m: Message = { channel, offset: f.offset, epoch: f.epoch, data: f.data };
    if (f.from !== undefined) m.from = f.from;
    if (f.priority !== undefined) m.priority = f.priority;
    if (f.time !== undefined) m.time = f.time;
    if (this.opts.cipher) m.data = await this.opts.cipher.open(channel, f.data);
    return m;
  }

  // ------------------------------------------------------------ acks, timers

  private delivered(seq: number): void {
    this.ackSeq = Math.max(this.ackSeq, seq);
    if (this.ackSeq - this.ackSent >= this.ackEvery) this.flushAck();
    else if (!this.timers.has("ack")) this.startTimer("ack", this.opts.ackInterval ?? 100, () => this.flushAck());
  }

  private flushAck(): void {
    this.stopTimer("ack");
    if (this.ackSeq > this.ackSent && this.link) {
      this.ackSent = this.ackSeq;
      this.send({ type: "ack", seq: this.ackSeq });
    }
  }

  private startTimer(name: string, ms: number, fn: () => void): void {
    this.stopTimer(name);
    this.timers.set(
      name,
      this.clock.setTimeout(() => {
        this.timers.delete(name);
        fn();
      }, ms),
    );
  }

  private stopTimer(name: string): void {
    const h = this.timers.get(name);
    if (h !== undefined) this.clock.clearTimeout(h);
    this.timers.delete(name);
  }

  /** Pings after a quiet heartbeat interval and drops a link that stays silent past the timeout. */
  private scheduleLiveness(): void {
    const check = Math.min(this.heartbeat.interval / 2, 5000);
    this.startTimer("liveness", check, () => {
      if (!this.link) return;
      const quiet = this.clock.now() - this.lastRecv;
      if (quiet > this.heartbeat.interval + this.heartbeat.timeout) {
        this.dropLink({ code: 4012, reason: "no data from the server (heartbeat timeout)", retryAfterMs: 0 });
        return;
      }
      if (quiet > this.heartbeat.interval) this.send({ type: "ping", id: this.takeId() });
      this.scheduleLiveness();
    });
  }

  /** Checks the link now (page visible, browser online): a ping that must be answered within the heartbeat timeout. */
  private probe(): void {
    const before = this.lastRecv;
    this.send({ type: "ping", id: this.takeId() });
    this.startTimer("probe", Math.min(this.heartbeat.timeout, 5000), () => {
      if (this.link && this.lastRecv === before) this.dropLink({ code: 4012, reason: "no answer to a ping", retryAfterMs: 0 });
    });
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  private scheduleRefresh(expiresAt?: number): void {
    this.stopTimer("refresh");
    if (!expiresAt || !this.opts.getToken) return;
    const left = expiresAt * 1000 - this.clock.now();
    const before = Math.min(this.opts.refreshBefore ?? 30000, left / 2);
    this.startTimer("refresh", Math.max(0, left - before), async () => {
      try {
        const tok = await this.opts.getToken!();
        await this.refresh(tok);
      } catch (err) {
        this.emit("error", err);
      }
    });
  }

  /** While on a fallback, tries the first transport again with the same session. */
  private scheduleUpgrade(): void {
    this.startTimer("upgrade", this.opts.upgradeAfter ?? 60000, () => void this.upgrade());
  }

  private async upgrade(): Promise<void> {
    const old = this.link;
    if (!old || this.closed || this.upgrading || old.transport === this.transports[0]) return;
    this.upgrading = true;
    this.oldLinkClose = undefined;
    const name = this.transports[0];
    const self: { link?: Link } = {};
    const onEnd = (c: LinkClose) => this.linkEnded?.(c);
    let opened: Opened | undefined;
    try {
      opened = await openLink(name, this.openParams(name, onEnd, self));
    } catch {
      // Stay on the fallback; try again later.
    }
    this.upgrading = false;
    // The subscriptions confirmed on the old link come back with the resumed session.
    if (this.closed) {
      opened?.link.close();
      return;
    }
    if (!opened) {
      if (this.oldLinkClose) this.linkEnded?.(this.oldLinkClose);
      else this.scheduleUpgrade();
      return;
    }
    // The old link is superseded (the server closes it with 4016): close it
    // quietly and go on over the new one.
    old.close();
    this.stats.upgrades++;
    self.link = opened.link;
    this.sticky = 0;
    this.adopt(opened);
  }

  private watchEnvironment(): void {
    if (this.opts.watchEnvironment === false) return;
    const g = globalThis as unknown as { addEventListener?: typeof addEventListener; removeEventListener?: typeof removeEventListener; document?: Document };
    if (typeof g.addEventListener !== "function") return;
    const wake = () => this.wake();
    const visible = () => {
      if (g.document?.visibilityState === "visible") this.wake();
    };
    g.addEventListener("online", wake);
    g.document?.addEventListener("visibilitychange", visible);
    this.removeWatchers = () => {
      g.removeEventListener?.("online", wake);
      g.document?.removeEventListener("visibilitychange", visible);
    };
  }
}

/** Whether the code runs in a browser page or worker (not Node, Deno or Bun). */
function isBrowser(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; Deno?: unknown; Bun?: unknown };
  return !g.process?.versions?.node && !g.Deno && !g.Bun;
}

/** A random idempotency key: 128 bits, base64url. */
export function randomKey(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
