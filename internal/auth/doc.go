// Package auth holds the security checks a Ferry node runs before and during
// a connection's handshake:
//
//   - Verifier checks connection tokens (JWT: HS256 with a shared secret;
//     RS256, ES256 and EdDSA with a PEM public key or keys from a JWKS URL)
//     and turns them into Claims; Mint makes HS256 tokens for `ferry token`
//     and tests.
//   - MatchPattern and Claims.CanSubscribe/CanPublish apply the token's
//     optional channels claim (globs with `*` and `{sub}`).
//   - OriginPolicy decides which browser origins may open a connection.
//   - ClientIP finds the client address behind trusted proxies; TruncateIP
//     shortens it for logs.
//   - HandshakeLimiter (built on TokenBucket) limits handshakes per client IP.
//   - TicketStore issues single-use tickets for browsers that cannot set
//     headers (WebSocket, EventSource), kept in a KV the broker provides.
//   - RedactQuery hides token and ticket query values in logged URLs.
//
// Nothing here starts goroutines or keeps global state: periodic work (JWKS
// refresh, limiter sweeps) happens lazily or when the server calls it.
package auth
