// @ferry/client: the TypeScript SDK of Ferry. See docs/sdk-js.md.
export { Client, Subscription, randomKey } from "./client.js";
export type { ClientOptions, State, StateChange, Message, Gap, PresenceEvent, Stats, SubscribeOptions, PublishOptions, PublishResult, HistoryResult, PresenceResult, PayloadCipher } from "./client.js";
export { backoffDelay, backoffUpward, backoffWithDefaults, systemClock } from "./backoff.js";
export type { Backoff, BackoffOptions, Clock } from "./backoff.js";
export { ServerError, CloseError, HandshakeError, ClosedError, GaveUpError } from "./errors.js";
export { jsonCodec, batches, framesOf, validChannel, maxFramesPerMessage } from "./frames.js";
export type { Codec, ClientFrame, ServerFrame, Position } from "./frames.js";
export type { TransportName } from "./transport.js";
export { sha256Hex } from "./upload.js";
export type { UploadOptions, UploadResult, UploadSource } from "./upload.js";
