// Package hooks calls the application's back end: hooks that the node
// waits on (connect, refresh, subscribe, publish, rpc), and webhooks that
// it fires and forgets (connection opened and closed, subscribed and
// unsubscribed, upload done). docs/hooks.md is the contract: every request
// and answer body, header and failure answer.
//
// # Hooks
//
// Client.Call posts a JSON request to a URL from the configuration and
// reads a JSON answer. What guards the node against a slow or broken back
// end, in the order a call meets them:
//
//   - a circuit breaker per URL (Breaker): after BreakerFailures failures
//     in a row the URL is not called for BreakerCooldown; then one probe
//     goes through (half-open), and its outcome closes or reopens it;
//   - a bound on calls in flight (a semaphore of MaxConcurrent places): a
//     call over the bound is refused at once with ErrBusy, never queued;
//   - a timeout per call (Timeout), within the caller's context;
//   - a cap on the answer's size (MaxAnswerBytes): a larger or malformed
//     answer is ErrBadAnswer, and the node goes on serving.
//
// Each failure is a sentinel (errors.go) that the session maps to the
// client-visible answer docs/hooks.md documents.
//
// # Webhooks
//
// Webhooks.Send queues an event without waiting; a fixed pool of senders
// posts it, signed with HMAC-SHA256 over "timestamp.body" (Sign, Verify;
// header Ferry-Signature: t=<unix seconds>,v1=<hex>), and retries a 5xx or a
// connection error with exponential backoff up to Attempts times. The
// queue is bounded: an event that finds it full is dropped and counted
// (ferry_webhook_dropped_total{reason}).
//
// # Cost when unused
//
// A node without hooks holds a nil *Client and nil *Webhooks; the session
// checks for nil before building any request, and the fan-out path never
// touches this package.
package hooks
