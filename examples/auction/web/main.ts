// The auction page. A bid is published on offers:lot1 as a critical
// message with an idempotency key (the SDK resends it with the same key
// after a reconnect, so it counts once); the back end's verdict comes back
// on verdicts:lot1. The page follows the accepted bids (bids:lot1, never
// dropped), the price (price:lot1, conflated: only the newest matters) and
// the leaderboard (board:lot1, droppable and rate-limited to 5 a second:
// under load the page skips boards, never bids).
import { type Message, randomKey } from "@ferry/client";
import { esc, follow, newClient, user } from "../../shared/page.js";

const item = "lot1";

interface Verdict {
  key: string;
  bidder: string;
  amount: number;
  accepted: boolean;
  reason?: string;
}

/** What the page shows; read by the browser test. */
const state = {
  price: 0,
  leader: "",
  /** Keys of the bid log, in the order shown (a key twice would be a bug). */
  log: [] as string[],
  /** This page's offers and their verdicts, by key. */
  mine: {} as Record<string, Verdict | null>,
  boards: 0,
};

const client = newClient();
const $ = (id: string) => document.getElementById(id)!;

function onBid(m: Message): void {
  const v = m.data as Verdict;
  state.log.push(v.key);
  const li = document.createElement("li");
  li.textContent = `${v.bidder} bid ${v.amount}`;
  $("log").prepend(li);
}

function onPrice(m: Message): void {
  const p = m.data as { price: number; leader: string };
  if (p.price < state.price) return; // a replayed older price
  state.price = p.price;
  state.leader = p.leader;
  $("price").textContent = String(p.price);
  $("leader").textContent = `leading: ${p.leader}`;
  const amount = $("amount") as HTMLInputElement;
  if (Number(amount.value) <= p.price) amount.value = String(p.price + 1);
}

function onBoard(m: Message): void {
  state.boards++;
  const rows = m.data as { bidder: string; best: number }[];
  $("board").innerHTML = rows.map((r) => `<li>${esc(r.bidder)}: ${r.best}</li>`).join("");
}

function onVerdict(m: Message): void {
  const v = m.data as Verdict;
  if (!(v.key in state.mine)) return;
  state.mine[v.key] = v;
  const li = document.getElementById("mine-" + v.key);
  if (li) {
    li.className = v.accepted ? "yes" : "no";
    li.textContent = `${v.amount}: ${v.accepted ? "accepted" : "refused, " + v.reason}`;
  }
}

/** Places a bid; resolves with its key once the node stored it. */
async function bid(amount: number): Promise<string> {
  const key = randomKey();
  state.mine[key] = null;
  const li = document.createElement("li");
  li.id = "mine-" + key;
  li.textContent = `${amount}: sent…`;
  $("mine").prepend(li);
  await client.publish(`offers:${item}`, { amount, key }, { key, priority: "critical" });
  return key;
}

(window as unknown as { auction: unknown }).auction = { state, bid };

$("bid").addEventListener("submit", (e) => {
  e.preventDefault();
  bid(Number(($("amount") as HTMLInputElement).value)).catch((err) => console.error("bid:", err));
});

client.connect().catch(() => {});
// Verdicts first, so that no verdict of this page's bids is missed.
Promise.all([
  follow(client, `verdicts:${item}`, onVerdict),
  follow(client, `bids:${item}`, onBid),
  follow(client, `price:${item}`, onPrice),
  client.subscribe(`board:${item}`, { onMessage: onBoard }),
]).catch((err) => console.error("auction:", err));
