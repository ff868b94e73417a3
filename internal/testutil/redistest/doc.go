// Package redistest runs real redis-server processes for tests: a plain
// server on a random free port, a TLS-only server with a throwaway
// certificate authority, and a Sentinel watching a server.
//
// Each server lives in a temporary directory of its own, without
// persistence (no RDB snapshots, no append-only file), and is stopped when the test
// ends. Tests can kill, pause, resume and restart it (on the same port,
// with or without its data) to exercise what a client does when Redis goes
// away and comes back.
//
// When redis-server is not installed, Start skips the test with a message
// saying so; when the environment variable CI is set it fails the test
// instead, so that a CI image without Redis cannot pass silently. Set
// REDIS_SERVER to use a binary other than the redis-server found in PATH.
package redistest
