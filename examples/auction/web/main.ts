// The auction page. A bid is published straight on bids:lot1 as a critical
// message with an idempotency key (the SDK resends it with the same key
// after a reconnect, so it counts once). Before it reaches anyone, the node
// asks the back end's publish hook: an accepted bid is published as the
// back end's verdict (bidder, amount, key, seq), a refused one fails this
// page's publish with the back end's reason, which the page shows. The
// page follows the accepted bids (bids:lot1, never dropped), the price
// (price:lot1, conflated: only the newest matters) and the leaderboard
// (board:lot1, droppable and conflated: under load the page skips boards,
// never bids).
import { type Message, randomKey, ServerError } from "@ferry/client";
import { esc, follow, newClient } from "../../shared/page.js";

const item = "lot1";

/** An accepted bid, as the back end publishes it on bids:lot1. */
interface Bid {
  key: string;
  bidder: string;
  amount: number;
  /** 1, 2, ...: the order in which the back end accepted the bids. */
  seq: number;
}

/** What became of one of this page's bids. */
interface Verdict {
  amount: number;
  accepted: boolean;
  reason?: string;
}

/** What the page shows; read by the browser test. */
const state = {
  price: 0,
  leader: "",
  /** Keys of the bid log, oldest first (a key twice would be a bug). */
  log: [] as string[],
  /** This page's bids and their verdicts, by key (null: no answer yet). */
  mine: {} as Record<string, Verdict | null>,
  boards: 0,
};

/** The seq of each bid in state.log, in the same order. */
const seqs: number[] = [];

const client = newClient();
const $ = (id: string) => document.getElementById(id)!;

/**
 * Adds an accepted bid to the log at its place by seq. The hook's calls
 * run concurrently, so two bids accepted one after the other may reach the
 * channel in the other order; seq is the order the back end decided them
 * in (which is also the order of their amounts). Nothing is deduplicated
 * here: a bid the channel carried twice would show twice (the test looks).
 */
function onBid(m: Message): void {
  const b = m.data as Bid;
  let i = seqs.length;
  while (i > 0 && seqs[i - 1] > b.seq) i--;
  seqs.splice(i, 0, b.seq);
  state.log.splice(i, 0, b.key);
  const li = document.createElement("li");
  li.textContent = `${b.bidder} bid ${b.amount}`;
  // The list shows the newest first: log index i is list item n - 1 - i.
  const list = $("log");
  list.insertBefore(li, list.children[state.log.length - 1 - i] ?? null);
}

function onPrice(m: Message): void {
  const p = m.data as { price: number; leader: string };
  if (p.price < state.price) return; // a replayed older price
  state.price = p.price;
  state.leader = p.leader;
  $("price").textContent = String(p.price);
  $("leader").textContent = p.leader ? `leading: ${p.leader}` : "no bids yet";
  const amount = $("amount") as HTMLInputElement;
  if (Number(amount.value) <= p.price) amount.value = String(p.price + 1);
}

function onBoard(m: Message): void {
  state.boards++;
  const rows = m.data as { bidder: string; best: number }[];
  $("board").innerHTML = rows.map((r) => `<li>${esc(r.bidder)}: ${r.best}</li>`).join("");
}

/** Shows the verdict of one of this page's bids. */
function settle(key: string, v: Verdict): void {
  state.mine[key] = v;
  const li = document.getElementById("mine-" + key);
  if (li) {
    li.className = v.accepted ? "yes" : "no";
    li.textContent = `${v.amount}: ${v.accepted ? "accepted" : "refused: " + v.reason}`;
  }
}

/** The back end's reason without the node's "publish: " prefix. */
const reasonOf = (err: ServerError) => err.reason.replace(/^publish: /, "");

/** Tries for a bid whose back end did not answer (the same key: it is judged once). */
const attempts = 5;

/**
 * Places a bid and resolves with its verdict once the back end judged it:
 * accepted (the node stored it), or refused with the back end's reason. A
 * failure the node says may be retried (the back end timed out or is down)
 * is retried with the same key a few times.
 */
async function bid(amount: number): Promise<Verdict> {
  const key = randomKey();
  state.mine[key] = null;
  const li = document.createElement("li");
  li.id = "mine-" + key;
  li.textContent = `${amount}: sent…`;
  $("mine").prepend(li);
  for (let attempt = 1; ; attempt++) {
    try {
      await client.publish(`bids:${item}`, { amount }, { key, priority: "critical" });
      settle(key, { amount, accepted: true });
    } catch (err) {
      if (err instanceof ServerError && err.retry && attempt < attempts) {
        await new Promise((r) => setTimeout(r, 200 * attempt));
        continue;
      }
      settle(key, { amount, accepted: false, reason: err instanceof ServerError ? reasonOf(err) : String((err as Error)?.message ?? err) });
    }
    return state.mine[key]!;
  }
}

(window as unknown as { auction: unknown }).auction = { state, bid };

$("bid").addEventListener("submit", (e) => {
  e.preventDefault();
  void bid(Number(($("amount") as HTMLInputElement).value));
});

client.connect().catch(() => {});
Promise.all([
  follow(client, `bids:${item}`, onBid),
  follow(client, `price:${item}`, onPrice),
  client.subscribe(`board:${item}`, { onMessage: onBoard }),
]).catch((err) => console.error("auction:", err));
