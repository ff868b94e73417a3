// Resumable uploads over the session (PROTOCOL.md section 5): upload.begin
// -> upload.ready (the offset to send from), upload.chunk -> upload.progress
// (a durable checkpoint), upload.commit -> upload.done (sha256 verified).
// The HTTP path (tus 1.0 at /v1/uploads/) is any tus client's, e.g.
// tus-js-client: see docs/uploads.md.
import { ServerError } from "./errors.js";
import type { ClientFrame, ServerFrame } from "./frames.js";

/** What Client.upload takes: bytes in memory, or a Blob/File read slice by slice. */
export type UploadSource = Uint8Array | ArrayBuffer | Blob;

/** Options of one upload. */
export interface UploadOptions {
  /** The file's sha256 in hex. Default: computed (a Blob is read whole once for it). */
  sha256?: string;
  /** Bytes per upload.chunk. Default (and upper bound): what fits the server's frame limit as base64. */
  chunkSize?: number;
  /** Chunks out before the first is acknowledged. Default 4. */
  window?: number;
  /** Called with the bytes the server holds durably at each checkpoint. */
  onProgress?: (done: number, size: number) => void;
  signal?: AbortSignal;
}

/** A completed, verified upload. */
export interface UploadResult {
  /** The upload id: the last segment of its tus URL. */
  id: string;
  size: number;
  sha256: string;
  /** Where its owner can GET it (a path on the server). */
  url?: string;
  /** Times the upload asked the server for its offset again (after a refused chunk). */
  resumes: number;
}

/** Sends a frame as a request that is sent again on the next link until answered. */
export type Requester = (f: ClientFrame, signal?: AbortSignal) => Promise<ServerFrame>;

/** Reads byte ranges of an upload source. */
interface Reader {
  size: number;
  read(start: number, end: number): Promise<Uint8Array>;
  all(): Promise<Uint8Array>;
}

function readerOf(src: UploadSource): Reader {
  if (src instanceof Uint8Array) return { size: src.byteLength, read: async (a, b) => src.subarray(a, b), all: async () => src };
  if (src instanceof ArrayBuffer) return readerOf(new Uint8Array(src));
  if (typeof Blob !== "undefined" && src instanceof Blob) {
    return {
      size: src.size,
      read: async (a, b) => new Uint8Array(await src.slice(a, b).arrayBuffer()),
      all: async () => new Uint8Array(await src.arrayBuffer()),
    };
  }
  throw new TypeError("ferry: upload: want a Uint8Array, an ArrayBuffer or a Blob");
}

/** The sha256 of bytes in lower-case hex (Web Crypto). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Standard base64 with padding, as upload.chunk's data. */
export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof ServerError && err.code === code;
}

/** The chunk that fits maxFrame bytes as base64 in a JSON frame, with room for the rest of it. */
export function chunkSizeFor(maxFrame: number, wanted?: number): number {
  const most = Math.max(1, Math.floor((maxFrame - 256) / 4) * 3);
  return wanted && wanted > 0 && wanted < most ? wanted : most;
}

/**
 * Runs one upload over request (the client's resent requests): begins,
 * pipelines chunks, commits; after a 409 it asks upload.begin for the
 * offset again and goes on from there.
 */
export async function runUpload(request: Requester, maxFrame: () => number, name: string, src: UploadSource, opts: UploadOptions = {}): Promise<UploadResult> {
  if (!name) throw new TypeError("ferry: upload: a name is required");
  const r = readerOf(src);
  if (r.size <= 0) throw new TypeError("ferry: upload: the file is empty");
  const sha256 = opts.sha256 ?? (await sha256Hex(await r.all()));
  const window = opts.window && opts.window > 0 ? opts.window : 4;
  let id: string | undefined;
  let resumes = 0;
  for (;;) {
    const begin: ClientFrame = { type: "upload.begin", name, size: r.size, sha256 };
    if (id) begin.upload = id;
    let ready: ServerFrame;
    try {
      ready = await request(begin, opts.signal);
    } catch (err) {
      if (id && isCode(err, 404)) {
        id = undefined; // expired or dropped meanwhile: start again
        continue;
      }
      throw err;
    }
    id = ready.upload as string;
    let off: number = ready.offset ?? 0;
    opts.onProgress?.(off, r.size);
    try {
      off = await sendChunks(request, r, id, off, chunkSizeFor(maxFrame(), opts.chunkSize), window, opts);
    } catch (err) {
      if (isCode(err, 409)) {
        resumes++;
        continue;
      }
      throw err;
    }
    try {
      const done = await request({ type: "upload.commit", upload: id }, opts.signal);
      return { id, size: r.size, sha256, url: done.url, resumes };
    } catch (err) {
      if (isCode(err, 409) && off < r.size) {
        resumes++;
        continue;
      }
      throw err;
    }
  }
}

/** Sends the chunks from off with up to window out; returns the last acknowledged offset. */
async function sendChunks(request: Requester, r: Reader, id: string, off: number, chunk: number, window: number, opts: UploadOptions): Promise<number> {
  const out: Promise<ServerFrame>[] = [];
  let next = off;
  let acked = off;
  let failed: unknown;
  while ((next < r.size && failed === undefined) || out.length > 0) {
    while (failed === undefined && next < r.size && out.length < window) {
      const end = Math.min(next + chunk, r.size);
      const data = toBase64(await r.read(next, end));
      const p = request({ type: "upload.chunk", upload: id, offset: next, data }, opts.signal);
      p.catch(() => {}); // awaited below, in order
      out.push(p);
      next = end;
    }
    try {
      const rep = await out.shift()!;
      if (rep.offset > acked) {
        acked = rep.offset;
        opts.onProgress?.(acked, r.size);
      }
    } catch (err) {
      if (failed === undefined) failed = err;
    }
  }
  if (failed !== undefined) throw failed;
  return acked;
}
