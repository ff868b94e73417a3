// @ferry/client/protobuf: the Protocol Buffers codec (subprotocol
// ferry.v1.protobuf, docs/protocol.md section 13a), an optional entry so
// that the core stays free of dependencies. Pass it as options.codec; the
// HTTP fallbacks stay JSON.
//
// The wire messages are generated from protocol/ferry/v1/ferry.proto
// (scripts/gen-proto.sh); this file maps them to and from the frames the
// client uses, which are the JSON frames of docs/protocol.md, so the client
// behaves the same whatever the codec.
//
// Payloads: protobuf carries data as bytes. Sent, a Uint8Array (or
// ArrayBuffer) goes as it is, an object that is exactly {"$bin": base64}
// goes as the bytes it stands for, anything else as the UTF-8 of its JSON.
// Received, bytes that are UTF-8 JSON text become that value, any other
// bytes become {"$bin": base64}: what a JSON subscriber of the same message
// gets (ADR 007). bytesOf() gives the bytes of such a payload back.
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type Codec, type ClientFrame, type ServerFrame } from "./frames.js";
import { BatchSchema, type Frame, FrameSchema, type HistoryMessage, Priority } from "./gen/ferry/v1/ferry_pb.js";

/** A binary payload as Ferry carries it between codecs: {"$bin": standard padded base64}. */
export interface BinaryPayload {
  $bin: string;
}

/** Wraps bytes as the {"$bin": base64} payload; any codec can publish it, protobuf subscribers get the bytes. */
export function binary(bytes: Uint8Array): BinaryPayload {
  return { $bin: toBase64(bytes) };
}

/** Returns the bytes of a {"$bin": base64} payload, or undefined for any other value. */
export function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (!isBinaryPayload(data)) return undefined;
  try {
    return fromBase64(data.$bin);
  } catch {
    return undefined;
  }
}

/** The Protocol Buffers codec. */
export const protobufCodec: Codec = {
  subprotocol: "ferry.v1.protobuf",
  binary: true,
  encode(frames) {
    const batch = create(BatchSchema, { frames: frames.map(encodeFrame) });
    const b = toBinary(BatchSchema, batch);
    return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  },
  decode(data) {
    if (typeof data === "string") throw new TypeError("malformed message from the server: want a binary protobuf message, got text");
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    let batch;
    try {
      batch = fromBinary(BatchSchema, bytes);
    } catch (err) {
      throw new TypeError(`malformed message from the server: not a ferry.v1.Batch: ${(err as Error).message}`);
    }
    if (batch.frames.length === 0) throw new TypeError("malformed message from the server: a ferry.v1.Batch without frames");
    return batch.frames.map(decodeFrame);
  },
};

// ---- client frames -> protobuf ----

const priorities: Record<string, Priority> = {
  normal: Priority.NORMAL,
  critical: Priority.CRITICAL,
  droppable: Priority.DROPPABLE,
};

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

function num(v: unknown): number {
  return typeof v === "number" ? v : 0;
}

function big(v: unknown): bigint {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? BigInt(Math.trunc(v)) : 0n;
}

function position(v: unknown): { offset: bigint; epoch: string } | undefined {
  if (!v || typeof v !== "object") return undefined;
  const p = v as { offset?: unknown; epoch?: unknown };
  return { offset: big(p.offset), epoch: str(p.epoch) };
}

function priority(v: unknown): Priority {
  if (v === undefined || v === "") return Priority.UNSPECIFIED;
  const p = priorities[String(v)];
  if (p === undefined) throw new TypeError(`ferry: protobuf: priority ${String(v)}: want critical, normal or droppable`);
  return p;
}

const utf8 = new TextEncoder();

/** The bytes a payload travels as (see the file comment). */
function payloadBytes(v: unknown): Uint8Array {
  if (v === undefined) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  const b = bytesOf(v);
  if (b) return b;
  return utf8.encode(JSON.stringify(v));
}

function encodeFrame(f: ClientFrame): Frame {
  const id = typeof f.id === "number" ? f.id : 0;
  const frame = (kind: MessageInitShape<typeof FrameSchema>["kind"]): Frame => create(FrameSchema, { id, kind });
  switch (f.type) {
    case "connect": {
      const r = f.resume as { session?: unknown; token?: unknown } | undefined;
      return frame({
        case: "connect",
        value: { token: str(f.token), client: str(f.client), window: num(f.window), resume: r ? { session: str(r.session), token: str(r.token) } : undefined },
      });
    }
    case "subscribe":
      return frame({ case: "subscribe", value: { channel: str(f.channel), since: position(f.since), presence: !!f.presence } });
    case "unsubscribe":
      return frame({ case: "unsubscribe", value: { channel: str(f.channel) } });
    case "publish":
      return frame({
        case: "publish",
        value: { channel: str(f.channel), data: payloadBytes(f.data), key: str(f.key), priority: priority(f.priority), conflate: str(f.conflate) },
      });
    case "ack":
      return frame({ case: "ack", value: { seq: big(f.seq) } });
    case "ping":
      return frame({ case: "ping", value: {} });
    case "refresh":
      return frame({ case: "refresh", value: { token: str(f.token) } });
    case "history":
      return frame({ case: "historyRequest", value: { channel: str(f.channel), since: position(f.since), limit: num(f.limit) } });
    case "presence":
      return frame({ case: "presenceRequest", value: { channel: str(f.channel) } });
    case "upload.begin":
      return frame({
        case: "uploadBegin",
        value: { name: str(f.name), size: big(f.size), sha256: str(f.sha256), chunkSize: big(f.chunk_size) },
      });
    case "upload.chunk": {
      // JSON carries the chunk as base64; protobuf as its bytes.
      const data = f.data instanceof Uint8Array ? f.data : typeof f.data === "string" ? fromBase64(f.data) : new Uint8Array(0);
      return frame({ case: "uploadChunk", value: { upload: str(f.upload), offset: big(f.offset), data } });
    }
    case "upload.commit":
      return frame({ case: "uploadCommit", value: { upload: str(f.upload) } });
    case "rpc":
      return frame({ case: "rpc", value: { method: str(f.method), data: payloadBytes(f.data) } });
    default:
      throw new TypeError(`ferry: protobuf: cannot encode a frame of type ${JSON.stringify(f.type)}`);
  }
}

// ---- protobuf -> server frames ----

const priorityNames: Record<number, string> = {
  [Priority.NORMAL]: "normal",
  [Priority.CRITICAL]: "critical",
  [Priority.DROPPABLE]: "droppable",
};

const strictUTF8 = new TextDecoder("utf-8", { fatal: true });

/** A payload's value: its JSON when the bytes are UTF-8 JSON text, else the $bin object. */
function payloadValue(b: Uint8Array): unknown {
  try {
    return JSON.parse(strictUTF8.decode(b));
  } catch {
    return binary(b);
  }
}

function n(v: bigint | number): number {
  return Number(v);
}

function withID(f: ServerFrame, id: number): ServerFrame {
  if (id !== 0) f.id = id;
  return f;
}

function historyMessage(m: HistoryMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { offset: n(m.offset), epoch: m.epoch, data: payloadValue(m.data) };
  if (priorityNames[m.priority]) out.priority = priorityNames[m.priority];
  if (m.from) out.from = m.from;
  if (m.time) out.time = n(m.time);
  return out;
}

function decodeFrame(f: Frame): ServerFrame {
  const k = f.kind;
  switch (k.case) {
    case "message": {
      const m = k.value;
      const out: ServerFrame = { type: "message", channel: m.channel, offset: n(m.offset), epoch: m.epoch, data: payloadValue(m.data), seq: n(m.seq) };
      if (priorityNames[m.priority]) out.priority = priorityNames[m.priority];
      if (m.from) out.from = m.from;
      return out;
    }
    case "pong":
      return withID({ type: "pong" }, f.id);
    case "published":
      return withID({ type: "published", offset: n(k.value.offset), epoch: k.value.epoch, duplicate: k.value.duplicate }, f.id);
    case "subscribed": {
      const s = k.value;
      return withID({ type: "subscribed", channel: s.channel, offset: n(s.offset), epoch: s.epoch, recovered: s.recovered, missed: n(s.missed) }, f.id);
    }
    case "connected": {
      const c = k.value;
      const out: ServerFrame = {
        type: "connected",
        session: c.session,
        resume_token: c.resumeToken,
        node: c.node,
        user: c.user,
        heartbeat: { interval_ms: n(c.heartbeat?.intervalMs ?? 0n), timeout_ms: n(c.heartbeat?.timeoutMs ?? 0n) },
        limits: { max_frame_bytes: n(c.limits?.maxFrameBytes ?? 0n), window: c.limits?.window ?? 0, rate: c.limits?.rate ?? 0 },
        resumed: c.resumed,
      };
      if (c.expiresAt) out.expires_at = n(c.expiresAt);
      if (c.sessionToken) out.session_token = c.sessionToken;
      if (c.streamTicket) out.stream_ticket = c.streamTicket;
      return withID(out, f.id);
    }
    case "unsubscribed": {
      const out: ServerFrame = { type: "unsubscribed", channel: k.value.channel };
      if (k.value.reason) out.reason = k.value.reason;
      return withID(out, f.id);
    }
    case "error":
      return withID({ type: "error", code: k.value.code, reason: k.value.reason, retry: k.value.retry }, f.id);
    case "disconnect": {
      const d = k.value;
      const out: ServerFrame = { type: "disconnect", code: d.code, reason: d.reason, reconnect: d.reconnect };
      if (d.retryAfterMs) out.retry_after_ms = n(d.retryAfterMs);
      return out;
    }
    case "refreshed":
      return withID({ type: "refreshed", expires_at: n(k.value.expiresAt) }, f.id);
    case "history": {
      const h = k.value;
      return withID({ type: "history", channel: h.channel, messages: h.messages.map(historyMessage), offset: n(h.offset), epoch: h.epoch }, f.id);
    }
    case "presence": {
      const p = k.value;
      return withID({ type: "presence", channel: p.channel, clients: p.clients.map((c) => ({ user: c.user, conn: c.conn })), count: n(p.count) }, f.id);
    }
    case "join":
    case "leave":
      return { type: k.case, channel: k.value.channel, user: k.value.user, conn: k.value.conn };
    case "uploadReady":
      return withID({ type: "upload.ready", upload: k.value.upload, offset: n(k.value.offset) }, f.id);
    case "uploadProgress":
      return withID({ type: "upload.progress", upload: k.value.upload, offset: n(k.value.offset) }, f.id);
    case "uploadDone": {
      const d = k.value;
      return withID({ type: "upload.done", upload: d.upload, size: n(d.size), sha256: d.sha256, url: d.url }, f.id);
    }
    case "rpcResult":
      return withID({ type: "rpc.result", data: payloadValue(k.value.data) }, f.id);
    case undefined:
      throw new TypeError("malformed message from the server: a ferry.v1.Frame without kind");
    default:
      throw new TypeError(`malformed message from the server: a client frame (${k.case}) from the server`);
  }
}

// ---- base64 (standard, padded), without Buffer so that it runs in browsers ----

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function isBinaryPayload(v: unknown): v is BinaryPayload {
  if (v === null || typeof v !== "object" || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === "$bin" && typeof (v as BinaryPayload).$bin === "string";
}
