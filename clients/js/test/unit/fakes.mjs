// Fakes for unit tests that need no server: a clock whose time only moves
// when the test says so, and a WebSocket whose server side the test plays.

/** A manual clock: advance(ms) fires the timers that became due, in order. */
export class FakeClock {
  t = 0;
  timers = new Map();
  seq = 0;
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const h = ++this.seq;
    this.timers.set(h, { at: this.t + ms, fn });
    return h;
  }
  clearTimeout(h) {
    this.timers.delete(h);
  }
  /** The delays of the pending timers, shortest first. */
  pending() {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next;
      for (const [h, x] of this.timers) if (x.at <= end && (!next || x.at < next[1].at)) next = [h, x];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** Lets pending promise callbacks run. */
export async function flush() {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** A WebSocket class whose instances the test drives; sockets lists them in order. */
export function fakeWebSocket() {
  const sockets = [];
  class FakeWS {
    readyState = 0;
    sent = [];
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      sockets.push(this);
      setImmediate(() => {
        if (this.refuse) return this.serverClose(1006);
        this.readyState = 1;
        this.onopen?.();
      });
    }
    send(data) {
      const m = JSON.parse(data);
      this.sent.push(m);
      // autoPong: the server side answers pings, as a live node does.
      if (this.autoPong) for (const f of Array.isArray(m) ? m : [m]) if (f.type === "ping") setImmediate(() => this.serverSend({ type: "pong", id: f.id }));
    }
    close() {
      this.readyState = 3;
    }
    /** Frames the client sent, flattened (batches opened). */
    frames() {
      return this.sent.flatMap((m) => (Array.isArray(m) ? m : [m]));
    }
    serverSend(frames) {
      this.onmessage?.({ data: JSON.stringify(frames) });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { FakeWS, sockets };
}

/** A fetch that answers POST /v1/tickets with a ticket, and 503 to anything else. */
export async function ticketFetch(url) {
  if (String(url).endsWith("/v1/tickets")) return new Response(JSON.stringify({ ticket: "t".repeat(22), expires_in: 30 }), { status: 200 });
  return new Response(JSON.stringify({ error: { code: 503, reason: "no fallback in this test" } }), { status: 503 });
}
