// Package cluster holds Ferry's multi-node tests; it has no code of its
// own. The tests run real processes: a redis-server (redistest), a
// 3-server NATS JetStream cluster (natstest) or a RabbitMQ node
// (rabbittest), several `ferry serve` nodes sharing it (ferrytest), and the
// reverse proxies of deploy/ in front of them (proxytest), and check what
// the deployment promises end to end: fan-out across nodes, the
// cluster-wide per-user limit, failover after kill -9 and during a rolling
// restart without a lost or duplicated message, affinity through HAProxy,
// recovery after Redis lost its data, a NATS server killed and a 10 s NATS
// outage during traffic, two nodes on RabbitMQ through a RabbitMQ outage,
// and the HTTP fallback behind a round-robin balancer. Fan-out, the
// per-user limit and the node kill run on Redis and on NATS (subtests redis
// and nats).
//
// Run them with
//
//	go test -race ./cluster/
//
// They need redis-server, nats-server, rabbitmq-server, nginx and haproxy
// (Debian packages): without them the tests are skipped, or fail when the
// environment variable CI is set. With FERRY_CLUSTER_RACE=1 the nodes
// themselves are built with the race detector. Figures (messages published,
// delivered, lost, duplicated, reconnect times) are written with t.Logf:
// see them with -v.
package cluster
