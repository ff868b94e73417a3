// @ferry/client/msgpack: the MessagePack codec (subprotocol
// ferry.v1.msgpack), an optional entry so that the core stays free of
// dependencies. Pass it as options.codec; the HTTP fallbacks stay JSON.
import { decode, encode } from "@msgpack/msgpack";
import { type Codec, framesOf } from "./frames.js";

/** The MessagePack codec. Integral numbers are written as MessagePack integers, as the server requires. */
export const msgpackCodec: Codec = {
  subprotocol: "ferry.v1.msgpack",
  binary: true,
  encode(frames) {
    const b = encode(frames.length === 1 ? frames[0] : frames, { ignoreUndefined: true });
    return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
  },
  decode(data) {
    if (typeof data === "string") throw new TypeError("malformed message from the server: want a binary MessagePack message, got text");
    return framesOf(decode(data instanceof Uint8Array ? data : new Uint8Array(data)));
  },
};
