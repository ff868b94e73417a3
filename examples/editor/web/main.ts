// The editor page: a textarea bound to the Y.Text "text" of a Yjs
// document. Every local change becomes a Yjs update, published on
// docs:NAME as base64 in JSON; every update received is applied to the
// document (applying one twice is harmless: Yjs merges by its own ids).
// Convergence does not depend on delivery of every update: after each
// reconnect the page publishes its whole state once, which repairs
// whatever was lost while it was away, in both directions.
import type { Message } from "@ferry/client";
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate } from "y-protocols/awareness";
import * as Y from "yjs";
import { esc, follow, newClient, params, user } from "../../shared/page.js";

const name = params.get("doc") ?? "welcome";
const docChannel = `docs:${name}`;
const cursorChannel = `cursors:${name}`;
document.getElementById("docname")!.textContent = name;

const doc = new Y.Doc();
const text = doc.getText("text");
const awareness = new Awareness(doc);
const remote = Symbol("remote");

function b64(u: Uint8Array): string {
  let s = "";
  for (const x of u) s += String.fromCharCode(x);
  return btoa(s);
}
function unb64(s: string): Uint8Array {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

const client = newClient();
const stats = { sent: 0, received: 0, failed: 0 };

// ---------------------------------------------------------------- binding

const area = document.getElementById("text") as HTMLTextAreaElement;

// A local edit: the smallest change between the old and the new text
// (common prefix and suffix), applied to the Y.Text.
area.addEventListener("input", () => {
  const before = text.toString();
  const after = area.value;
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let endB = before.length;
  let endA = after.length;
  while (endB > start && endA > start && before[endB - 1] === after[endA - 1]) {
    endB--;
    endA--;
  }
  doc.transact(() => {
    if (endB > start) text.delete(start, endB - start);
    if (endA > start) text.insert(start, after.slice(start, endA));
  });
  setCursor();
});

// A remote change: rewrite the textarea, keeping the caret where it was
// relative to the text around it (Yjs relative positions).
text.observe((ev) => {
  if (ev.transaction.origin !== remote) return;
  const selStart = Y.createRelativePositionFromTypeIndex(text, area.selectionStart);
  const selEnd = Y.createRelativePositionFromTypeIndex(text, area.selectionEnd);
  area.value = text.toString();
  const s = Y.createAbsolutePositionFromRelativePosition(selStart, doc);
  const e = Y.createAbsolutePositionFromRelativePosition(selEnd, doc);
  if (s && e && document.activeElement === area) area.setSelectionRange(s.index, e.index);
});

// ---------------------------------------------------------------- updates

function publishUpdate(u: Uint8Array): void {
  client
    .publish(docChannel, { u: b64(u) })
    .then(() => stats.sent++)
    .catch((err) => {
      // Lost while offline: the full state sent on reconnect covers it.
      stats.failed++;
      console.warn("editor: publish:", String(err));
    });
}

doc.on("update", (u: Uint8Array, origin: unknown) => {
  if (origin !== remote) publishUpdate(u);
});

function onUpdate(m: Message): void {
  const d = m.data as { u?: string };
  if (typeof d?.u !== "string") return;
  stats.received++;
  Y.applyUpdate(doc, unb64(d.u), remote);
}

// ---------------------------------------------------------------- awareness

const colors = ["#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#117a65"];
awareness.setLocalStateField("user", { name: user, color: colors[Math.abs(hash(user)) % colors.length] });

function hash(s: string): number {
  let h = 0;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) | 0;
  return h;
}

function setCursor(): void {
  awareness.setLocalStateField("cursor", { anchor: area.selectionStart, head: area.selectionEnd });
}
area.addEventListener("select", setCursor);

awareness.on("update", ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
  renderHere();
  if (origin === remote) return;
  const changed = added.concat(updated, removed);
  // Conflated per editor: only the newest awareness state of each matters.
  client
    .publish(cursorChannel, { a: b64(encodeAwarenessUpdate(awareness, changed)) }, { conflate: String(doc.clientID), priority: "droppable" })
    .catch(() => {});
});

function onAwareness(m: Message): void {
  const d = m.data as { a?: string };
  if (typeof d?.a === "string") applyAwarenessUpdate(awareness, unb64(d.a), remote);
}

function renderHere(): void {
  const names = new Map<string, string>();
  for (const st of awareness.getStates().values()) {
    const u = (st as { user?: { name: string; color: string } }).user;
    if (u) names.set(u.name, u.color);
  }
  document.getElementById("here")!.innerHTML = [...names].map(([n, c]) => `<span style="background:${c}">${esc(n)}</span>`).join("");
}
// Re-announce now and then: a page that joins later learns who is here.
setInterval(() => awareness.setLocalStateField("seen", Date.now()), 10000);

// ---------------------------------------------------------------- start

let connects = 0;
client.on("state", (s) => {
  if (s.state !== "connected") return;
  // After a reconnect (not the first connect), send the whole state once.
  if (connects++ > 0) {
    publishUpdate(Y.encodeStateAsUpdate(doc));
  }
});

(window as unknown as { editor: unknown }).editor = {
  text: () => text.toString(),
  stats,
  resumes: () => client.stats.resumes,
  /** Types s at index i, as the user would (through the textarea). */
  type(i: number, s: string) {
    area.focus();
    area.setRangeText(s, i, i, "end");
    area.dispatchEvent(new Event("input"));
  },
  here: () => [...awareness.getStates().values()].map((st) => (st as { user?: { name: string } }).user?.name).filter(Boolean),
};

Promise.all([follow(client, docChannel, onUpdate), client.subscribe(cursorChannel, { onMessage: onAwareness })])
  .then(() => {
    area.value = text.toString();
    setCursor();
  })
  .catch((err) => (document.getElementById("status")!.textContent = `subscribe failed: ${err}`));
