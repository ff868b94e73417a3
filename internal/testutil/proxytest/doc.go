// Package proxytest runs the reverse proxies of deploy/ (nginx and HAProxy)
// in front of test nodes, as real processes in the foreground.
//
// The configuration a test runs is the shipped file itself
// (deploy/nginx.conf, deploy/haproxy.cfg) with only what must differ on a
// test machine rewritten: the upstream server lines are replaced by the
// nodes' addresses (keeping the parameters of the first template line),
// the listen address becomes a random free port of 127.0.0.1, and the pid,
// log, socket and temporary paths move into the test's directory; process
// user, group and chroot settings are dropped. Every timeout, header,
// balancing rule and health check stays as shipped, so the tests check the
// files users deploy.
//
// When nginx or haproxy is not installed, the test is skipped with a
// message saying so; when the environment variable CI is set it fails
// instead, so a CI image without them cannot pass silently. NGINX and
// HAPROXY name other binaries.
package proxytest
