// Editor: two nodes on Redis behind nginx round-robin. Two editors in two
// browser contexts converge after concurrent edits, after one goes offline
// and comes back, and after a node is killed; a third one opened last
// catches up from history. Run with WebSocket and with nginx forwarding no
// Upgrade (the SDK falls back to SSE / long-poll).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startCluster } from "./cluster.mjs";
import { launchBrowser, namespaces, openPage, pageUntil, screenshot, startApp } from "./harness.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function typeWords(page, who, n) {
  await page.evaluate(
    async ({ who, n }) => {
      for (let i = 0; i < n; i++) {
        // Insert between words (never inside one), so each word stays whole.
        const t = window.editor.text();
        const gaps = [0];
        for (let j = 1; j <= t.length; j++) if (t[j - 1] === " " && (j === t.length || t[j] === " ")) gaps.push(j);
        window.editor.type(gaps[Math.floor(Math.random() * gaps.length)], ` ${who}${i} `);
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40));
      }
    },
    { who, n },
  );
}

/** Waits until every page shows the same text, containing each word. */
async function converged(pages, words, what, cluster) {
  const texts = () => Promise.all(pages.map((p) => p.evaluate(() => window.editor.text())));
  await pageUntil(pages[0], what, () => true);
  const end = Date.now() + 60000;
  for (;;) {
    const ts = await texts();
    if (ts.every((t) => t === ts[0]) && words.every((w) => ts[0].includes(w))) return ts[0];
    if (Date.now() > end) {
      const st = await Promise.all(pages.map((p) => p.evaluate(() => JSON.stringify({ ...window.ferryStatus, ...window.editor.stats, resumes: window.editor.resumes() }))));
      const logs = pages.map((p) => p.logs.slice(-8).join("\n"));
      const nodeLogs = (cluster?.nodes ?? []).map((n) => `${n.url}:\n${n.output().split("\n").slice(-30).join("\n")}`);
      assert.fail(`${what}: not converged:\n${ts.map((t) => JSON.stringify(t)).join("\n")}\n${st.join("\n")}\n${logs.join("\n---\n")}\nnode logs:\n${nodeLogs.join("\n---\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const words = (who, n) => Array.from({ length: n }, (_, i) => ` ${who}${i} `);

// With WebSocket blocked (nginx without the Upgrade headers) the pages use
// SSE: each page's stream stays on one node while its POST /v1/send
// requests land on both; the node that does not hold the session routes
// the frames to the one that does (docs/protocol.md, section 17, "Any
// node"), so the stream is not taken over (4016) at every other send.
for (const websocket of [true, false]) {
  const name = websocket ? "websocket" : "websocket blocked";
  test(`editor: converges across two nodes behind nginx (${name})`, async () => {
    const cluster = await startCluster(namespaces("editor"), { websocket });
    const app = await startApp("editor", cluster);
    try {
      const doc = "d" + Date.now();
      const open = (u) => openPage(browser, `${app.url}/?user=${u}&doc=${doc}`);
      const [alice, bob] = [await open("alice"), await open("bob")];
      for (const p of [alice, bob]) {
        await pageUntil(p, "connected", () => window.ferryStatus.state === "connected" && !!window.editor);
        if (!websocket) assert.notEqual(await p.evaluate(() => window.ferryStatus.transport), "websocket");
      }
      // 1. Concurrent edits.
      await Promise.all([typeWords(alice, "a", 8), typeWords(bob, "b", 8)]);
      let want = [...words("a", 8), ...words("b", 8)];
      await converged([alice, bob], want, "after concurrent edits", cluster);
      // Nothing cut the pages' connections so far: none reconnected (over
      // SSE, a send landing on the other node once took the session over
      // and closed the stream) and no publish failed.
      for (const p of [alice, bob]) {
        const st = await p.evaluate(() => ({ resumes: window.editor.resumes(), failed: window.editor.stats.failed }));
        assert.deepEqual(st, { resumes: 0, failed: 0 }, "reconnects and failed publishes during the concurrent edits");
      }

      // 2. Bob goes offline, both edit, bob comes back.
      await bob.context().setOffline(true);
      await Promise.all([typeWords(alice, "c", 4), typeWords(bob, "d", 4)]);
      await bob.context().setOffline(false);
      want = [...want, ...words("c", 4), ...words("d", 4)];
      await converged([alice, bob], want, "after bob came back online", cluster);

      // 3. A node is killed (SIGKILL); the pages reconnect through nginx to the other.
      await cluster.nodes[0].kill("SIGKILL");
      await Promise.all([typeWords(alice, "e", 4), typeWords(bob, "f", 4)]);
      want = [...want, ...words("e", 4), ...words("f", 4)];
      const text = await converged([alice, bob], want, "after a node was killed", cluster);

      // 4. A late joiner catches up from the channel's history.
      const carol = await open("carol");
      await pageUntil(carol, "the late joiner's catch-up", (t) => window.editor?.text() === t, text, 60000);
      await pageUntil(alice, "carol in the awareness list", () => window.editor.here().includes("carol"), undefined, 60000);
      await screenshot(alice, `editor-${websocket ? "websocket" : "fallback"}`);
    } finally {
      await app.stop();
      await cluster.stop();
    }
  });
}
