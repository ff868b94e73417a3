// Errors the client reports. Every one is an Error with a message that says
// what happened and what to do.

/** The server answered a request with an error frame. */
export class ServerError extends Error {
  override name = "ServerError";
  constructor(
    /** The protocol's error code: 400, 403, 404, 409, 429, 500, 503... */
    readonly code: number,
    readonly reason: string,
    /** Whether the server says the request may be retried. */
    readonly retry: boolean,
  ) {
    super(`ferry: ${code} ${reason}`);
  }
}

/** The server closed the connection with a code the client does not come back from. */
export class CloseError extends Error {
  override name = "CloseError";
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`ferry: connection closed with ${code}${reason ? ` (${reason})` : ""}`);
  }
}

/** An HTTP request of a handshake (ticket, session, stream) was refused. */
export class HandshakeError extends Error {
  override name = "HandshakeError";
  constructor(
    readonly status: number,
    readonly reason: string,
    /** Retry-After in ms, when the server sent one. */
    readonly retryAfter = 0,
  ) {
    super(`ferry: handshake refused with HTTP ${status}: ${reason}`);
  }
}

/** The client was closed (by close(), or after a fatal error). */
export class ClosedError extends Error {
  override name = "ClosedError";
  constructor(readonly cause?: unknown) {
    super("ferry: client closed");
  }
}

/** The client gave up after backoff.maxAttempts failed attempts in a row. */
export class GaveUpError extends Error {
  override name = "GaveUpError";
  constructor(
    readonly attempts: number,
    readonly last: unknown,
  ) {
    super(`ferry: gave up after ${attempts} failed connection attempts: ${String((last as Error)?.message ?? last)}`);
  }
}
