// Auction: three bidders in three browser contexts bid at once, straight
// on bids:lot1; the node asks the app's publish hook about every bid. Every
// bid gets a verdict, and a refused one shows the back end's reason in the
// page; every accepted bid appears exactly once in every page's bid log, in
// the order the back end accepted them; the price every page shows is the
// highest accepted bid. Run over WebSocket and with WebSocket blocked (SSE
// / long-poll).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { appJSON, launchBrowser, openPage, pageUntil, repoRoot, screenshot, startAuction } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const bidsEach = 12;

/** The verdicts of a page's bids, each with the text its "My bids" row shows. */
function shownVerdicts(page) {
  return page.evaluate(() =>
    Object.entries(window.auction.state.mine).map(([key, v]) => ({ ...v, shown: document.getElementById("mine-" + key)?.textContent ?? "" })),
  );
}

for (const blocked of [false, true]) {
  const name = blocked ? "websocket blocked" : "websocket";
  test(`auction: concurrent bidders (${name})`, async () => {
    const { ferry, app } = await startAuction(blocked ? ["--block-websocket"] : []);
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
      // A bid at the price the page shows never beats it (the page's price
      // is at most the back end's): refused, too low, unless the bidder's
      // token bucket refuses it first.
      const low = await pages[0].evaluate(() => window.auction.bid(window.auction.state.price));
      assert.equal(low.accepted, false, "a bid at the price was accepted");
      assert.match(low.reason, /^(too low: the price is \d+, bid at least \d+|too many bids: at most 5 a second)$/);
      const st = await appJSON(app, "/close", "POST");
      const late = await pages[1].evaluate(() => window.auction.bid(window.auction.state.price + 5));
      assert.equal(late.accepted, false, "a bid after the close was accepted");
      assert.equal(late.reason, "the auction is closed");

      assert.ok(st.accepted?.length > 0, "no bid was accepted");
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
      // Every bid of every page got the back end's verdict, and the page
      // shows it: accepted, or refused with the back end's reason.
      const mine = (await Promise.all(pages.map(shownVerdicts))).flat();
      assert.equal(mine.length, users.length * bidsEach + 2);
      assert.equal(mine.filter((v) => v.accepted).length, want.length);
      for (const v of mine) {
        if (v.accepted) assert.equal(v.shown, `${v.amount}: accepted`);
        else {
          assert.match(v.reason, /^(too low|too many bids|the auction is closed)/);
          assert.equal(v.shown, `${v.amount}: refused: ${v.reason}`);
        }
      }
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
  const { ferry, app } = await startAuction(["--bid-rate", "20", "--bid-burst", "20"]);
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
