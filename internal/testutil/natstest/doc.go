// Package natstest runs real nats-server processes with JetStream for
// tests: a single server, or a cluster of three servers joined by routes.
//
// Each server listens on random free ports of 127.0.0.1 (client, cluster
// routes, HTTP monitoring), keeps its JetStream store in a temporary
// directory of its own, and has no WebSocket listener. Servers are stopped
// when the test ends. Tests can kill, stop and restart one server (on the
// same ports, with or without its JetStream store) to exercise what a
// client does when NATS goes away and comes back.
//
// When nats-server is not installed, Start and StartCluster skip the test
// with a message saying so; when the environment variable CI is set they
// fail the test instead, so that a CI image without NATS cannot pass
// silently. Set NATS_SERVER to use a binary other than the nats-server
// found in PATH (or /usr/sbin, where Debian installs it).
package natstest
