// Package chaos holds Ferry's fault matrix; it has no code of its own. Each
// test starts a real cluster (redis-server, three `ferry serve` nodes, with
// toxiproxy, used as a Go library, between every node and Redis and
// between the clients and every node), runs a workload of publishers
// (server API, with idempotency keys and retries) and subscribers on every
// transport (WebSocket through the Go SDK; long-poll and SSE through small
// clients written against docs/protocol.md), injects one fault, and then
// checks the recorded history (internal/testutil/history): nothing lost,
// nothing duplicated, nothing reordered, no offset handed out twice, and
// every recovered: false counted.
//
// The faults: latency (200 ms with jitter) and a bandwidth limit on the
// node-Redis and client-node links, connection resets on both, one node
// partitioned from Redis for 10 s, Redis killed and restarted with and
// without its data (from an older snapshot), a Redis Sentinel failover
// (Debian's redis-sentinel: a primary, a replica and three sentinels), a
// rolling restart of the three nodes (each drained with SIGTERM), and a
// node killed with SIGKILL. SIGSTOP is not among them (issue 24: a frozen
// node holds resuming sessions).
//
// Run the matrix with
//
//	go test -race ./chaos/            # FERRY_CHAOS=short (the default): a few minutes
//	FERRY_CHAOS=long go test -timeout 60m ./chaos/   # or scripts/chaos.sh
//
// The short form is what CI runs; the long form publishes for longer
// around each fault. Each test logs its row of the matrix (published,
// delivered, lost, duplicated, recovered:false per transport): see them
// with -v. docs/reliability.md has the figures of the last runs.
//
// The tests need redis-server and redis-sentinel (Debian packages):
// without them they are skipped, or fail when the environment variable CI
// is set.
package chaos
