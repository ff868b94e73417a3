// Package admin serves the admin page (/admin): a live view of the
// cluster's nodes and of this node's connections, channels, top
// publishers, slow consumers and recent disconnects, with two actions,
// disconnect a user and read a channel's history.
//
// # Security
//
// The page is off unless an admin secret is configured (the server then
// answers 404 itself and never builds this handler). With a secret:
//
//   - the secret is typed into a login form, never put in a URL; it is
//     compared in constant time (both sides hashed first), and failed
//     logins are limited per client address with the same token bucket
//     as the server API's failed authentications (429 with Retry-After,
//     checked before the secret is compared);
//   - a good login gets a random 256-bit session token in an HttpOnly,
//     SameSite=Strict cookie scoped to /admin; the server keeps the
//     token's hash and its expiry (Options.SessionTTL) and refuses it
//     after that, whatever the browser does with the cookie;
//   - every state-changing request (login, logout, the API calls made
//     with POST) must come from the page's own origin (Origin and
//     Sec-Fetch-Site), and all but the login must also carry the CSRF
//     token derived from the session (an HMAC under a per-process key),
//     which a page on another origin cannot read;
//   - the actions are the server API's own calls (api.Routes), reached
//     under /admin/api/ for an allow-list of them, so the page has no
//     power the API lacks;
//   - every response carries a Content-Security-Policy that allows only
//     the page's own script and style files (no inline script) and no
//     framing.
//
// # Live data
//
// GET /admin/stream is a server-sent event stream: one "report" event,
// a JSON Snapshot, every Options.Interval (1 s). The snapshot is built
// only while a stream is open, by the Source (the server), from what the
// node already keeps: its registry of connections, its hub's channels,
// and a counter per publishing connection. What must be remembered
// between snapshots is bounded: the recent disconnects are a fixed-size
// Ring, the other nodes a bounded NodeTable fed by the reports every node
// publishes on NodesChannel, and every list in a Snapshot is a top-k.
package admin
