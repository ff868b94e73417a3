// End-to-end encryption: the server stores and relays only ciphertext.
//   FERRY_URL=http://localhost:8080 FERRY_TOKEN=<token> node examples/e2e.mjs
import WebSocket from "ws";
import { Client } from "../dist/index.js";
import { E2E } from "../dist/e2e.js";

// The application's keys, per channel (never sent to the server).
const keys = { "med:ward-3": { kid: "2026-12", key: crypto.getRandomValues(new Uint8Array(32)) } };
const cipher = new E2E({
  sealKey: (channel) => keys[channel],
  openKey: (channel, kid) => (keys[channel]?.kid === kid ? keys[channel] : undefined),
});
const url = process.env.FERRY_URL ?? "http://localhost:8080";
const client = new Client({ url, token: process.env.FERRY_TOKEN, WebSocket: globalThis.WebSocket ?? WebSocket, cipher });
await client.connect();

const got = new Promise((resolve) => client.subscribe("med:ward-3", { onMessage: resolve }));
await new Promise((r) => setTimeout(r, 100));
await client.publish("med:ward-3", { patient: "p-17", heartRate: 72 });
console.log("decrypted by the client:", JSON.stringify((await got).data));

// What the server keeps: read the history without the cipher.
const plain = new Client({ url, token: process.env.FERRY_TOKEN, WebSocket: globalThis.WebSocket ?? WebSocket });
await plain.connect();
const h = await plain.history("med:ward-3", { limit: 1 });
console.log("stored on the server:", JSON.stringify(h.messages.at(-1).data));
plain.close();
client.close();
