// Auction: three bidders in three browser contexts bid at once; every bid
// gets a verdict, every accepted bid appears exactly once in every page's
// bid log, and the price every page shows is the highest accepted bid.
// Run over WebSocket and with WebSocket blocked (SSE / long-poll).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { appJSON, launchBrowser, namespaces, openPage, pageUntil, repoRoot, screenshot, startApp, startFerry } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const bidsEach = 12;

for (const blocked of [false, true]) {
  const name = blocked ? "websocket blocked" : "websocket";
  test(`auction: concurrent bidders (${name})`, async () => {
    const ferry = await startFerry({ FERRY_NAMESPACES: namespaces("auction") });
    const app = await startApp("auction", ferry, blocked ? ["--block-websocket"] : []);
    try {
      const users = ["ann", "ben", "cai"];
      const pages = await Promise.all(users.map((u) => openPage(browser, `${app.url}/?user=${u}`)));
      for (const p of pages) await pageUntil(p, "connected", () => window.ferryStatus.state === "connected" && window.auction.state.price > 0);
      // Each bidder bids a little above the price it last saw, as fast as
      // its publishes return: some bids lose the race (refused, too low)
      // and some hit the per-bidder token bucket (refused, too many).
      await Promise.all(
        pages.map((p) =>
          p.evaluate(async (n) => {
            for (let i = 0; i < n; i++) {
              await window.auction.bid(window.auction.state.price + 1 + Math.floor(Math.random() * 3));
            }
          }, bidsEach),
        ),
      );
      for (const p of pages) {
        await pageUntil(p, "a verdict for every bid", () => Object.values(window.auction.state.mine).every((v) => v !== null));
      }
      const st = await appJSON(app, "/close", "POST");
      const verdicts = await pages[0].evaluate(() => Object.values(window.auction.state.mine));
      assert.ok(st.accepted?.length > 0, `no bid was accepted: ${JSON.stringify(verdicts.slice(0, 3))}`);
      const top = Math.max(...st.accepted.map((v) => v.amount));
      assert.equal(st.price, top);
      const want = st.accepted.map((v) => v.key);
      for (const p of pages) {
        await pageUntil(p, "the whole bid log", (n) => window.auction.state.log.length >= n, want.length);
        const s = await p.evaluate(() => window.auction.state);
        assert.deepEqual(s.log, want, "the page's bid log differs from the accepted bids (order, missing or twice)");
        await pageUntil(p, "the final price", (price) => window.auction.state.price === price, top);
        if (blocked) assert.notEqual(await p.evaluate(() => window.ferryStatus.transport), "websocket");
      }
      // Every offer of every page got exactly the verdict the back end gave.
      const mine = (await Promise.all(pages.map((p) => p.evaluate(() => window.auction.state.mine)))).flatMap((m) => Object.values(m));
      assert.equal(mine.length, users.length * bidsEach);
      assert.equal(mine.filter((v) => v.accepted).length, want.length);
      await screenshot(pages[0], `auction-${blocked ? "fallback" : "websocket"}`);
    } finally {
      await app.stop();
      await ferry.stop();
    }
  });
}

// The flash-sale load generator: many bidders at once; it fails when an
// accepted bid is missing from the bid log or appears twice.
test("auction: flash sale keeps every accepted bid", async () => {
  const ferry = await startFerry({ FERRY_NAMESPACES: namespaces("auction") });
  const app = await startApp("auction", ferry, ["--bid-rate", "20", "--bid-burst", "20"]);
  try {
    const { stdout } = await promisify(execFile)("go", ["run", "./examples/auction/flashsale", "--ferry", ferry.url, "--app", app.url, "--bidders", "10", "--for", "2s"], {
      cwd: repoRoot,
      env: { ...process.env, FERRY_TOKEN_HMAC_SECRET: ferry.secret, FERRY_API_KEY: ferry.apiKey },
    });
    const r = JSON.parse(stdout);
    assert.ok(r.accepted > 0, stdout);
    assert.equal(r.accepted_lost, 0);
    assert.equal(r.accepted_twice, 0);
    assert.equal(r.watcher_price, r.final_price, "the watcher's price is not the final one");
  } finally {
    await app.stop();
    await ferry.stop();
  }
});
