// Backoff between connection attempts, the same rule as the Go SDK:
// initial * multiplier^n capped at max, spread uniformly by +/- jitter.

/** Delays between connection attempts. Every field is optional; the default is stated on it. */
export interface BackoffOptions {
  /** First delay in ms. Default 1000. */
  initial?: number;
  /** Cap of the delay before jitter, in ms. Default 30000. */
  max?: number;
  /** Growth per failed attempt. Default 2. */
  multiplier?: number;
  /** Each delay is spread over [d*(1-jitter), d*(1+jitter)]. At most 1. Default 0.2; negative: none. */
  jitter?: number;
  /** Failed attempts in a row before the client gives up. Default 0: unlimited. */
  maxAttempts?: number;
}

/** BackoffOptions with every default applied. */
export type Backoff = Required<BackoffOptions>;

/** Returns the options with their defaults, or throws a RangeError naming the bad field. */
export function backoffWithDefaults(o: BackoffOptions = {}): Backoff {
  const b: Backoff = {
    initial: o.initial ?? 1000,
    max: o.max ?? Math.max(30000, o.initial ?? 0),
    multiplier: o.multiplier ?? 2,
    jitter: o.jitter === undefined ? 0.2 : o.jitter < 0 ? 0 : o.jitter,
    maxAttempts: o.maxAttempts ?? 0,
  };
  for (const k of ["initial", "max", "multiplier", "maxAttempts"] as const) {
    if (!Number.isFinite(b[k]) || b[k] < 0) throw new RangeError(`backoff.${k}: want a number >= 0, got ${b[k]}`);
  }
  if (b.jitter > 1) throw new RangeError(`backoff.jitter: ${b.jitter} is more than 1`);
  if (b.multiplier < 1) throw new RangeError(`backoff.multiplier: ${b.multiplier} is less than 1`);
  if (b.max < b.initial) throw new RangeError(`backoff.max ${b.max} is less than initial ${b.initial}`);
  return b;
}

/** The delay in ms before attempt n (from 0) of a series of failed attempts; rand returns [0, 1). */
export function backoffDelay(b: Backoff, n: number, rand: () => number): number {
  let d = b.initial;
  for (let i = 0; i < n && d < b.max; i++) d *= b.multiplier;
  d = Math.min(d, b.max);
  if (b.jitter > 0) d *= 1 + b.jitter * (2 * rand() - 1);
  return d;
}

/** d spread upward only, over [d, d*(1+jitter)]: for delays the server asked for (retry_after_ms). */
export function backoffUpward(b: Backoff, d: number, rand: () => number): number {
  return b.jitter > 0 ? d + d * b.jitter * rand() : d;
}

/** The time source of a client; tests inject a fake one. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};
