// Package wssession adapts a WebSocket connection (internal/transport/ws,
// the RFC 6455 layer) to a session (internal/session): the first step of
// the data flow
//
//	transport -> session -> node -> hub / broker -> queue -> writer
//
// The reader (a reactor loop shared by many connections, or a goroutine per
// connection) never handles frames itself: it copies each message into the
// connection's bounded inbox, and a goroutine that exists only while there
// is work hands them to the session in order. A full inbox pauses reading,
// so a client that sends faster than its frames are handled is held back by
// TCP flow control. The session writes through the connection's
// non-blocking WriteMessage; a drained backlog (OnWritable) kicks it.
//
// It imports session and ws, and nothing imports it but the server's
// wiring.
package wssession
