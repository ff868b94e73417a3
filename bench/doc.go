// Package bench is the load generator behind `ferry bench`: it opens many
// WebSocket connections to one or more Ferry nodes, publishes timestamped
// messages at a fixed rate, and reports what the server cost and what the
// clients saw.
//
// # Modes
//
//   - idle: open N connections, subscribe each to a channel, wait until the
//     server's resident memory settles (heartbeats on: the client answers
//     every ping) and report memory per connection on both sides.
//   - connect: open N connections as fast as a concurrency limit allows
//     (TCP, WebSocket handshake with the token in the Authorization header,
//     and the connected frame) and report connections per second.
//   - fanout: S subscribers, P publishes per second for D through the
//     server API (or WebSocket), each payload carrying its send time; report
//     deliveries per second, publish-to-deliver latency percentiles (HDR
//     histogram), server CPU per delivery and missing/duplicate counts by
//     channel offset.
//   - cluster: fanout (or idle, with no rate) over several nodes, the
//     connections spread round-robin, with a report per node.
//
// # The client side is cheap on purpose
//
// The load generator shares the machine with the server, so every
// connection is a lean hand-written client, not a general WebSocket
// library: the handshake, the connect frame and the subscribe frame are
// written in one packet, server frames are parsed in place, and only the
// fields the benchmark needs (type, offset, the payload's timestamp) are
// looked at. On Linux, once a connection is subscribed its socket moves to a
// small epoll reactor (one loop per CPU by default, one 64 KiB read buffer
// per loop), so an idle connection costs a file descriptor and about 200
// bytes, and a delivery costs one read(2) and no goroutine switch. The
// reactor answers server pings with pongs. ClientGoroutine mode (one
// goroutine and a 2 KiB buffer per connection) is kept for comparison and
// for other systems.
//
// ClientLibrary (ferry bench --client library) is the opposite: each
// connection is what an ordinary application opens, a general WebSocket
// library (github.com/coder/websocket) on a goroutine of its own, the
// upgrade and then one message [connect, subscribe], every reply decoded
// with encoding/json. It measures the server under clients it does not
// choose: its connect path (connect mode; with --one-user every token names
// the same user), and its deliveries (fanout and cluster modes count them
// as for the other clients).
//
// # Codecs
//
// Config.Codec (ferry bench --codec json|msgpack|protobuf) picks the
// subprotocol of every bench connection, and the encoding of WebSocket
// publishes. The fanout result gives the bytes of WebSocket messages the
// subscribers received per delivery (frame headers included) next to the
// server's CPU per delivery, so the codecs can be compared. The client reads
// binary codecs by converting each message to JSON first: that costs the
// load generator, not the server.
//
// # Many sockets
//
// Connections to a loopback target are spread over many source addresses
// (127.0.0.2, 127.0.0.3, ...) so the ephemeral port range never runs out.
// One process holds at most Config.ConnsPerProcess connections (default
// 15,000, below a 20,000 file limit); above that, or when Config.Workers is
// set, the connections are opened by child processes (the same binary
// re-executed as `ferry bench --worker`), which speak a line-delimited JSON
// protocol on their standard input and output and send their latency
// histograms back for merging.
package bench
