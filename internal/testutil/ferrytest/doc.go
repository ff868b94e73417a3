// Package ferrytest runs Ferry nodes as real `ferry serve` processes for
// tests: it builds the ferry command once per test binary, starts nodes on
// random ports of 127.0.0.1 with their settings in FERRY_* variables, and
// lets a test kill (SIGKILL), stop (SIGTERM, the graceful drain) and restart
// them on the same port, as an operator or a crash would.
//
// A node is ready when GET /readyz answers 200, which needs its broker to
// answer: nodes of one cluster share a broker such as the Redis server of
// internal/testutil/redistest. Every node is stopped when its test ends;
// when the test failed, the end of each node's log is written to the test
// log.
//
// Building needs the go command (from PATH, else GOROOT/bin). When it
// fails the test fails: a tree that does not build is a real failure, not
// a missing tool.
package ferrytest
