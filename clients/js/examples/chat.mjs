// Subscribe to a channel, publish three messages, print what arrives.
//   FERRY_URL=http://localhost:8080 FERRY_TOKEN=<token from ferry serve --dev> node examples/chat.mjs
// (after `npm ci && npm run build` in clients/js). Node 20 has no global
// WebSocket: the ws package provides it (Node 22 and browsers need nothing).
import WebSocket from "ws";
import { Client } from "../dist/index.js";

const client = new Client({ url: process.env.FERRY_URL ?? "http://localhost:8080", token: process.env.FERRY_TOKEN, WebSocket: globalThis.WebSocket ?? WebSocket });
client.on("state", (s) => console.log("state:", s.state, s.transport ?? "", s.error ? String(s.error.message ?? s.error) : ""));
await client.connect();
console.log("connected over", client.transport);

const channel = process.env.FERRY_CHANNEL ?? "chat:lobby";
let left = 3;
const done = new Promise((resolve) => {
  client.subscribe(channel, {
    onMessage(m) {
      console.log(`${m.channel} #${m.offset} from ${m.from ?? "api"}:`, JSON.stringify(m.data));
      if (--left === 0) resolve();
    },
  });
});
await new Promise((r) => setTimeout(r, 100));
for (let i = 1; i <= 3; i++) {
  const r = await client.publish(channel, { text: `hello ${i}` });
  console.log("published at offset", r.offset);
}
await done;
client.close();
