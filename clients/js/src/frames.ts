// Frames and codecs. A WebSocket message, an SSE send or a poll body holds
// one frame or an array of frames (a batch); both directions use both forms.

/** A position in a channel's stream. Compare offsets only within one epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** A frame the client sends. */
export interface ClientFrame {
  type: string;
  id?: number;
  [field: string]: unknown;
}

/** A frame the server sends. */
export interface ServerFrame {
  type: string;
  id?: number;
  [field: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Encodes client frames and decodes server messages of one subprotocol. */
export interface Codec {
  /** The WebSocket subprotocol, e.g. "ferry.v1.json". */
  readonly subprotocol: string;
  /** Whether messages are binary (true) or text. */
  readonly binary: boolean;
  /** One frame alone, several as a batch. */
  encode(frames: ClientFrame[]): string | Uint8Array<ArrayBuffer>;
  /** A message into its frames, in order; throws on a malformed message. */
  decode(data: string | ArrayBuffer | Uint8Array): ServerFrame[];
}

/** Most frames in one outbound message (the server refuses more than 1024). */
export const maxFramesPerMessage = 1024;

/** Returns the frames of a decoded message: one object, or an array of objects. */
export function framesOf(v: unknown): ServerFrame[] {
  const list = Array.isArray(v) ? v : [v];
  for (const f of list) {
    if (f === null || typeof f !== "object" || Array.isArray(f) || typeof (f as ServerFrame).type !== "string") {
      throw new TypeError("malformed message from the server: want a frame object with a type, or an array of them");
    }
  }
  return list as ServerFrame[];
}

/** The JSON codec (subprotocol ferry.v1.json), the only one the HTTP fallbacks speak. */
export const jsonCodec: Codec = {
  subprotocol: "ferry.v1.json",
  binary: false,
  encode: (frames) => JSON.stringify(frames.length === 1 ? frames[0] : frames),
  decode(data) {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    return framesOf(JSON.parse(text));
  },
};

/**
 * Splits frames into the messages to send: batches of at most
 * maxFramesPerMessage frames, in order.
 */
export function batches(frames: ClientFrame[]): ClientFrame[][] {
  const out: ClientFrame[][] = [];
  for (let i = 0; i < frames.length; i += maxFramesPerMessage) out.push(frames.slice(i, i + maxFramesPerMessage));
  return out;
}

/** Whether ch is a valid channel name: 1 to 255 printable ASCII bytes without space, '*', '{' or '}'. */
export function validChannel(ch: string): boolean {
  return typeof ch === "string" && /^[\x21-\x29\x2b-\x7a\x7c\x7e]{1,255}$/.test(ch);
}
