// Package client is the Go SDK for Ferry: it connects to a Ferry node over
// WebSocket, subscribes to channels, publishes, and keeps all of that going
// across network trouble.
//
//	c, err := client.Dial(ctx, "http://localhost:8080", client.Config{Token: tok})
//	if err != nil { ... }
//	defer c.Close()
//	sub, err := c.Subscribe(ctx, "chat:lobby")
//	for m := range sub.Messages() { ... }
//	res, err := c.Publish(ctx, "chat:lobby", map[string]string{"text": "hi"})
//
// # What the client does for you
//
//   - Reconnects with exponential backoff and jitter (Config.Backoff),
//     following the close codes of the protocol: it stops for good on 1000,
//     4001, 4003, 4009, 4011, 4014 and 4016, waits retry_after_ms on 4008,
//     spreads reconnects on 4013 (a draining node), and gets a new token from
//     Config.GetToken on 4015.
//   - Resumes the session on reconnect (connect with resume) so the server
//     restores the subscriptions and replays what was not acknowledged; when
//     the server cannot resume, it subscribes again to every channel from
//     the last position it delivered (subscribe with since).
//   - Delivers each message to the application once, in offset order per
//     channel: a replayed message whose offset it already delivered is
//     dropped. When the server says a channel's history could not be
//     recovered (recovered: false), the gap is reported (Config.OnGap) with
//     the number of messages missed and the stream's new epoch.
//   - Acknowledges messages once the application has taken them, in batches
//     (Config.AckEvery, Config.AckInterval), which drives the server's credit
//     window (Config.Window) and tells a resumed session where to replay
//     from.
//   - Publishes with an idempotency key chosen per call and kept across
//     retries: a publish in flight when the connection drops is sent again on
//     the next connection and the server applies it once (the retry's result
//     says Duplicate with the original offset).
//   - Refreshes the token before it expires (refresh frame), when
//     Config.GetToken is set.
//
// # Verified resumption
//
// A resumed session replays from what the server believes the client has
// processed. The client checks that belief: if the first new message on a
// restored channel skips offsets it has not delivered (or, without a credit
// window, the restored channel is ahead of the client and replayed nothing
// by the time the server answers a ping sent after connect), it drops that
// connection and reconnects without resuming, subscribing again from its own
// positions, so nothing is lost even when the server's view was ahead.
// Stats().ResumeFallbacks counts these.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each subscription delivers on its own
// goroutine, in order; state and error callbacks run on one goroutine of the
// client, in order. Callbacks must not call Close (it waits for them); call
// it from another goroutine instead.
package client
