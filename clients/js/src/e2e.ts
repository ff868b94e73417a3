// @ferry/client/e2e: end-to-end payload encryption with AES-GCM (WebCrypto).
// The application supplies one or more keys per channel; they never reach
// the server, which stores and relays only the envelope:
//
//   {"e2e": 1, "kid": "<key id>", "iv": "<12 bytes, base64>", "ct": "<ciphertext and 16-byte tag, base64>"}
//
// The plaintext is the UTF-8 JSON of the data; the channel name is the
// additional authenticated data, so an envelope copied to another channel
// does not open. The Go SDK (client/e2e.go) reads and writes the same.
import type { PayloadCipher } from "./client.js";

/** A key of a channel: its id (any short string) and 16, 24 or 32 raw bytes. */
export interface E2EKey {
  kid: string;
  key: Uint8Array | CryptoKey;
}

/** The envelope carried as a message's data. */
export interface Envelope {
  e2e: 1;
  kid: string;
  iv: string;
  ct: string;
}

/** Options of an E2E cipher. */
export interface E2EOptions {
  /** The key to encrypt with on a channel (undefined: publish in clear). */
  sealKey(channel: string): E2EKey | undefined | Promise<E2EKey | undefined>;
  /** The key of id kid on a channel, to decrypt (undefined: cannot open). */
  openKey(channel: string, kid: string): E2EKey | undefined | Promise<E2EKey | undefined>;
  /** Deliver data that is not an envelope as it is (true) or fail (false). Default false. */
  allowPlain?: boolean;
}

function b64(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

function unb64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const imported = new WeakMap<Uint8Array, CryptoKey>();

async function cryptoKey(k: E2EKey): Promise<CryptoKey> {
  if (!(k.key instanceof Uint8Array)) return k.key;
  let ck = imported.get(k.key);
  if (!ck) {
    if (![16, 24, 32].includes(k.key.length)) throw new RangeError(`e2e: key ${k.kid}: want 16, 24 or 32 bytes, got ${k.key.length}`);
    ck = await crypto.subtle.importKey("raw", new Uint8Array(k.key), "AES-GCM", false, ["encrypt", "decrypt"]);
    imported.set(k.key, ck);
  }
  return ck;
}

/** Whether v has the shape of an envelope. */
export function isEnvelope(v: unknown): v is Envelope {
  const e = v as Envelope;
  return !!e && typeof e === "object" && e.e2e === 1 && typeof e.kid === "string" && typeof e.iv === "string" && typeof e.ct === "string";
}

/** Encrypts data for channel with key: a fresh random 12-byte IV each time. */
export async function seal(channel: string, key: E2EKey, data: unknown, iv?: Uint8Array): Promise<Envelope> {
  const nonce = iv ?? crypto.getRandomValues(new Uint8Array(12));
  if (nonce.length !== 12) throw new RangeError("e2e: iv: want 12 bytes");
  const plain = new TextEncoder().encode(JSON.stringify(data));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(nonce), additionalData: new TextEncoder().encode(channel) }, await cryptoKey(key), plain);
  return { e2e: 1, kid: key.kid, iv: b64(nonce), ct: b64(new Uint8Array(ct)) };
}

/** Decrypts an envelope of channel with key; throws when it was altered, is for another channel or key. */
export async function open(channel: string, key: E2EKey, env: Envelope): Promise<unknown> {
  if (!isEnvelope(env)) throw new TypeError("e2e: not an envelope: want {e2e: 1, kid, iv, ct}");
  if (env.kid !== key.kid) throw new Error(`e2e: envelope has key id ${env.kid}, the key is ${key.kid}`);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(env.iv), additionalData: new TextEncoder().encode(channel) }, await cryptoKey(key), unb64(env.ct));
  } catch {
    throw new Error(`e2e: envelope on ${channel} does not open with key ${key.kid} (altered, another channel, or a wrong key)`);
  }
  return JSON.parse(new TextDecoder().decode(plain));
}

/** A PayloadCipher for options.cipher: publishes are sealed, messages and history opened. */
export class E2E implements PayloadCipher {
  constructor(private o: E2EOptions) {}

  async seal(channel: string, data: unknown): Promise<unknown> {
    const k = await this.o.sealKey(channel);
    return k ? seal(channel, k, data) : data;
  }

  async open(channel: string, data: unknown): Promise<unknown> {
    if (!isEnvelope(data)) {
      if (this.o.allowPlain) return data;
      throw new Error(`e2e: a message on ${channel} is not encrypted (allowPlain is off)`);
    }
    const k = await this.o.openKey(channel, data.kid);
    if (!k) throw new Error(`e2e: no key ${data.kid} for ${channel}`);
    return open(channel, k, data);
  }
}
