package ws

import "time"

// Defaults applied to zero-valued Options fields.
const (
	DefaultMaxMessageBytes      = 64 << 10
	DefaultReadBufferSize       = 4 << 10
	DefaultWriteTimeout         = 10 * time.Second
	DefaultCloseTimeout         = time.Second
	DefaultCompressionThreshold = 256
)

// Options configures Upgrade and the connections it returns. The zero value
// (or a nil *Options) is valid and means every default below.
//
// A connection keeps a pointer to the Options it was upgraded with, so one
// Options value is meant to be shared by all connections of a server; it must
// not be modified after it is first passed to Upgrade.
type Options struct {
	// Subprotocols lists the subprotocols the server speaks. The first entry
	// of the client's Sec-WebSocket-Protocol list that appears here is
	// chosen and reported by Conn.Subprotocol.
	// Default: none (Subprotocol is always "").
	Subprotocols []string

	// RequireSubprotocol refuses, with HTTP 400, a client that offers
	// subprotocols none of which is in Subprotocols. A client that offers
	// none is accepted either way, with Subprotocol() == "".
	// Default: false (such a client is accepted without a subprotocol).
	RequireSubprotocol bool

	// MaxMessageBytes bounds one inbound message after reassembly of its
	// fragments and, when compressed, after decompression. A bigger message
	// fails the connection with TooBigCloseCode as soon as the limit is
	// known to be crossed.
	// Default: 64 KiB (DefaultMaxMessageBytes).
	MaxMessageBytes int64

	// TooBigCloseCode is the close code sent (and reported to
	// Handler.OnClose) when an inbound message exceeds MaxMessageBytes.
	// A value that is not a valid close code on the wire is ignored.
	// Default: 1009 (CloseMessageTooBig).
	TooBigCloseCode int

	// Compression offers permessage-deflate (RFC 7692) to clients that ask
	// for it, always with server_no_context_takeover and
	// client_no_context_takeover so that every message is compressed on its
	// own and no per-connection compressor state is kept.
	// Default: false.
	Compression bool

	// CompressionThreshold is the smallest outbound message, in bytes, that
	// is compressed on a connection that negotiated compression; smaller
	// messages are sent as they are.
	// Default: 256 (DefaultCompressionThreshold).
	CompressionThreshold int

	// WriteTimeout bounds each blocking write made by the background flusher
	// while a connection has a backlog (and the write of the 101 response).
	// A peer that accepts no bytes for that long has its connection closed.
	// Default: 10 s (DefaultWriteTimeout).
	WriteTimeout time.Duration

	// CloseTimeout is how long a connection waits, after sending a close
	// frame, for the peer's close frame before closing the TCP connection.
	// Default: 1 s (DefaultCloseTimeout).
	CloseTimeout time.Duration

	// Go starts the connection's goroutines (the reader started by Serve and
	// the flusher that runs only while there is a write backlog). A server
	// passes a function that tracks them so that shutdown can wait for all.
	// It must start f on a new goroutine and return without waiting for it
	// (it may be called with the connection's write lock held).
	// Default: a plain go statement.
	Go func(func())

	// Reactor, when set, watches the connections' sockets with its epoll
	// loops instead of a reader goroutine per connection (Linux, and
	// connections with raw socket access: not TLS). Handler.OnMessage is
	// then called on a loop shared with other connections and must not
	// block: queue the work, and use Conn.PauseReading to push back.
	// Default: nil (a reader goroutine per connection).
	Reactor *Reactor

	// ReadBufferSize is the size of the pooled buffer a connection borrows
	// for each read. It is rounded up to a power of two between 512 B and
	// 4 MiB. Frames that do not fit in one read are assembled in a
	// per-message buffer, up to MaxMessageBytes.
	// Default: 4 KiB (DefaultReadBufferSize).
	ReadBufferSize int
}

// defaultOptions is used when Upgrade is given a nil *Options. It is never
// modified.
var defaultOptions = &Options{}

func (o *Options) maxMessage() int64 {
	if o.MaxMessageBytes > 0 {
		return o.MaxMessageBytes
	}
	return DefaultMaxMessageBytes
}

func (o *Options) tooBigCode() int {
	if validCloseCode(o.TooBigCloseCode) {
		return o.TooBigCloseCode
	}
	return CloseMessageTooBig
}

func (o *Options) compressionThreshold() int {
	if o.CompressionThreshold > 0 {
		return o.CompressionThreshold
	}
	return DefaultCompressionThreshold
}

func (o *Options) writeTimeout() time.Duration {
	if o.WriteTimeout > 0 {
		return o.WriteTimeout
	}
	return DefaultWriteTimeout
}

func (o *Options) closeTimeout() time.Duration {
	if o.CloseTimeout > 0 {
		return o.CloseTimeout
	}
	return DefaultCloseTimeout
}

func (o *Options) readBufferSize() int {
	n := o.ReadBufferSize
	if n <= 0 {
		n = DefaultReadBufferSize
	}
	if n > 1<<maxPoolShift {
		n = 1 << maxPoolShift
	}
	return n
}

func (o *Options) goFunc(f func()) {
	if o.Go != nil {
		o.Go(f)
		return
	}
	go f()
}
