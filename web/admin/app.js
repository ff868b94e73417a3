// The admin page's script: follows the node's admin stream (server-sent
// events, one report a second) and renders it; disconnects a user and
// reads a channel's history through the server API's calls under
// /admin/api/. Everything from the server is put in the page as text,
// never as HTML.
const csrf = document.querySelector('meta[name="ferry-csrf"]').content;
const expires = Number(document.querySelector('meta[name="ferry-expires"]').content);
const $ = (id) => document.getElementById(id);

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function button(label, cls, onClick) {
  const td = document.createElement("td");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (cls) b.className = cls;
  b.addEventListener("click", onClick);
  td.append(b);
  return td;
}

/** Replaces a table's rows: rows is a list of lists of <td>. */
function fill(id, rows, empty) {
  const body = $(id).tBodies[0];
  const trs = rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  });
  if (trs.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(empty);
    td.colSpan = $(id).tHead.rows[0].cells.length;
    tr.append(td);
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

const bytes = (n) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);
const clock = (ms) => new Date(ms).toLocaleTimeString();

function render(r) {
  $("node").textContent = r.node;
  $("conn-count").textContent = r.connections;
  $("chan-count").textContent = r.channels;
  $("node-count").textContent = r.nodes.length;
  fill("nodes", r.nodes.map((n) => [
    cell(n.id + (n.id === r.node ? " (this page)" : "")), cell(n.broker), cell(n.connections, "num"), cell(n.channels, "num"),
    cell(n.queue_depth, "num"), cell(n.goroutines, "num"), cell(bytes(n.rss_bytes), "num"),
    cell(duration(n.uptime_seconds * 1000)), cell(n.draining ? "draining" : "serving"),
  ]), "no node reports yet");
  fill("conns", r.conns.map((c) => [
    cell(c.id), cell(c.user || "(anonymous)"), cell(c.transport), cell(duration(r.time - c.opened)),
    cell(c.subscriptions, "num"), cell(c.queued, "num"), cell(c.published, "num"),
    c.user ? button("Disconnect", "danger", () => disconnect(c.user)) : cell(""),
  ]), "no connections");
  fill("channels", r.top_channels.map((c) => [
    cell(c.name), cell(c.subscribers, "num"), button("History", "", () => history(c.name)),
  ]), "no channels with subscribers");
  fill("publishers", r.top_publishers.map((p) => [cell(p.user || "(anonymous)"), cell(p.published, "num"), cell(p.conns, "num")]), "no publishes");
  fill("slow", r.slow_consumers.map((c) => [cell(c.id), cell(c.user || "(anonymous)"), cell(c.queued, "num")]), "no queued messages");
  fill("disconnects", r.disconnects.map((d) => [
    cell(clock(d.time)), cell(d.conn), cell(d.user || "(anonymous)"), cell(d.transport), cell(d.code, "num"), cell(d.reason),
  ]), "no disconnects yet");
}

function say(text, bad) {
  const p = $("action-result");
  p.textContent = text;
  p.className = bad ? "error" : "";
}

async function call(method, name, { query, body } = {}) {
  const url = `/admin/api/${name}` + (query ? `?${new URLSearchParams(query)}` : "");
  const init = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRF-Token"] = csrf;
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) location.reload();
  if (!res.ok) throw new Error(data.error?.reason || `HTTP ${res.status}`);
  return data;
}

async function disconnect(user) {
  if (!user) return;
  try {
    const res = await call("POST", "disconnect", { body: { user, reason: "disconnected by an administrator" } });
    say(`Disconnected ${user}: ${res.disconnected} connection(s) on this node; other nodes were told.`);
  } catch (e) {
    say(`Disconnect ${user}: ${e.message}`, true);
  }
}

async function history(channel) {
  $("history-channel").value = channel;
  try {
    // The newest 50: the first call learns the channel's position, the
    // second reads from 50 before it (the API reads oldest first).
    const head = await call("GET", "history", { query: { channel, limit: "1" } });
    const query = { channel, limit: "50" };
    if (head.offset > 50) Object.assign(query, { since: String(head.offset - 50), epoch: head.epoch });
    const res = await call("GET", "history", { query });
    const msgs = res.messages.reverse();
    fill("history", msgs.map((m) => [
      cell(m.offset, "num"), cell(m.time ? clock(m.time) : ""), cell(m.from || "(server)"), cell(JSON.stringify(m.data), "data"),
    ]), "no messages kept");
    $("history").hidden = false;
    say(`History of ${channel}: ${res.messages.length} message(s), stream offset ${res.offset}, epoch ${res.epoch}.`);
  } catch (e) {
    $("history").hidden = true;
    say(`History of ${channel}: ${e.message}`, true);
  }
}

$("disconnect-form").addEventListener("submit", (e) => {
  e.preventDefault();
  disconnect($("disconnect-user").value.trim());
});
$("history-form").addEventListener("submit", (e) => {
  e.preventDefault();
  history($("history-channel").value.trim());
});

function tickExpiry() {
  const left = expires - Date.now();
  $("expires").textContent = left > 0 ? `login ends in ${duration(left)}` : "login ended";
}
tickExpiry();
setInterval(tickExpiry, 1000);

const live = $("live");
const source = new EventSource("/admin/stream");
source.addEventListener("report", (e) => {
  live.textContent = "live";
  live.className = "status live";
  render(JSON.parse(e.data));
});
source.addEventListener("expired", () => {
  source.close();
  location.reload();
});
source.onerror = () => {
  live.textContent = "reconnecting…";
  live.className = "status down";
  // A refused stream (the login ended) is not retried by the browser:
  // reload to show the login form.
  if (source.readyState === EventSource.CLOSED) setTimeout(() => location.reload(), 1000);
};
