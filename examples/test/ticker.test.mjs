// Ticker: ticks published at 1000/s reach two pages in batches (the node's
// batch.delay of 200 ms with conflation by symbol), and once the feed
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
  test(`ticker: batches and the last price (${name})`, async () => {
    const app = await startApp("ticker", ferry, ["--rate", "1000", ...(blocked ? ["--block-websocket"] : [])]);
    try {
      const pages = [await openPage(browser, `${app.url}/?user=alice`), await openPage(browser, `${app.url}/?user=bob`)];
      for (const p of pages) {
        await pageUntil(p, "20 batches", () => window.ticker.batches >= 20);
        const s = await p.evaluate(() => ({ ...window.ticker, transport: window.ferryStatus.transport }));
        if (blocked) assert.notEqual(s.transport, "websocket");
        else assert.equal(s.transport, "websocket");
        // Conflation by symbol: the page gets far fewer ticks than were
        // published (at most one per symbol per batch).
        assert.ok(s.lastSeq > 0 && s.messages < s.lastSeq / 2, `${s.messages} messages for ${s.lastSeq} ticks published: not conflated`);
        assert.ok(s.messages > s.batches, `${s.messages} messages in ${s.batches} batches: not batched`);
        // Batches come no faster than batch.delay (a loaded machine only
        // makes the gaps longer, so only the lower bound is checked).
        const gaps = s.batchTimes.slice(1).map((t, i) => t - s.batchTimes[i]).sort((a, b) => a - b);
        const median = gaps[Math.floor(gaps.length / 2)];
        // batch.delay gathers WebSocket messages; SSE and long-poll write
        // on their own schedule, so only the WebSocket gap is checked.
        if (!blocked) assert.ok(median >= 150, `median gap between batches ${median.toFixed(0)} ms, want about 200`);
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
