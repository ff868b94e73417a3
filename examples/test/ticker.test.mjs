// Ticker: ticks published at 1000/s reach two pages in batches (the node's
// batch.delay of 200 ms with conflation by symbol: far fewer messages and
// batches than ticks; no timing is asserted), and once the feed
// pauses every page shows exactly the last price published per symbol.
// Run over WebSocket and with WebSocket blocked (SSE / long-poll).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { appJSON, launchBrowser, namespaces, openPage, pageUntil, screenshot, startApp, startFerry, until } from "./harness.mjs";

let ferry, browser;
before(async () => {
  ferry = await startFerry({ FERRY_NAMESPACES: namespaces("ticker"), FERRY_BATCH_DELAY: "200ms" });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await ferry?.stop();
});

for (const blocked of [false, true]) {
  const name = blocked ? "websocket blocked" : "websocket";
  test(`ticker: batches and the last price (${name})`, async (t) => {
    const app = await startApp("ticker", ferry, ["--rate", "1000", ...(blocked ? ["--block-websocket"] : [])]);
    try {
      const pages = [await openPage(browser, `${app.url}/?user=alice`), await openPage(browser, `${app.url}/?user=bob`)];
      for (const p of pages) {
        await pageUntil(p, "20 batches", () => window.ticker.batches >= 20);
        const s = await p.evaluate(() => ({ ...window.ticker, transport: window.ferryStatus.transport, wsMessages: window.ferryStatus.wsMessages }));
        if (blocked) assert.notEqual(s.transport, "websocket");
        else assert.equal(s.transport, "websocket");
        // Conflation by symbol: the page gets far fewer ticks than were
        // published (at most one per symbol per batch).
        assert.ok(s.lastSeq > 0 && s.messages < s.lastSeq / 2, `${s.messages} messages for ${s.lastSeq} ticks published: not conflated`);
        assert.ok(s.messages > s.batches, `${s.messages} messages in ${s.batches} batches: not batched`);
        // Batched: over WebSocket the node gathers batch.delay (200 ms) of
        // ticks into each WebSocket message, so the page gets far fewer
        // messages from the socket than ticks were published meanwhile
        // (about 200 ticks each at 1,000/s; 10 would take a feed slowed
        // below 50/s, and without batch.delay it is about 2). Counted, not
        // timed: a loaded machine only makes each one carry more. SSE and
        // long-poll write on their own schedule: WebSocket only.
        if (!blocked) {
          const ticks = s.lastSeq - s.firstSeq;
          t.diagnostic(`${ticks} ticks published came in ${s.wsMessages} WebSocket messages`);
          assert.ok(ticks >= 10 * s.wsMessages, `${s.wsMessages} WebSocket messages for ${ticks} ticks published: not batched`);
        }
      }
      await screenshot(pages[0], `ticker-${blocked ? "fallback" : "websocket"}`);
      await appJSON(app, "/feed?paused=true", "POST");
      // Wait for the feed's in-flight publishes to finish.
      let prev = -1;
      const feed = await until("the feed to settle", async () => {
        const f = await appJSON(app, "/feed");
        const done = f.sent === prev;
        prev = f.sent;
        await new Promise((r) => setTimeout(r, 300));
        return done && f;
      });
      for (const p of pages) {
        await pageUntil(p, "the last prices", (want) => Object.keys(want).every((k) => window.ticker.last[k] === want[k]), feed.last).catch(async (err) => {
          const got = await p.evaluate(() => window.ticker.last);
          const diff = Object.keys(feed.last).filter((k) => got[k] !== feed.last[k]).map((k) => `${k}: page ${got[k]} feed ${feed.last[k]}`);
          err.message += `\ndiffering: ${diff.join(", ")}`;
          throw err;
        });
      }
    } finally {
      await app.stop();
    }
  });
}
