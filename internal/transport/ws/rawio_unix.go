//go:build unix

package ws

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIOSupported tells Upgrade that sockets can be read and written through
// syscall.RawConn on this platform.
const rawIOSupported = true

// maxIovecs bounds the buffers of one writev call: a header and up to
// maxIovecs-1 payload parts. Messages with more parts are copied into one
// buffer first.
const maxIovecs = 64

// iovecBatch holds the arguments of one writev call. It is pooled so that
// the iovec array neither lives on a Conn nor escapes per call.
type iovecBatch struct {
	hdr [14]byte
	iov [maxIovecs]unix.Iovec
	n   int

	// The result of the write, and the syscall.RawConn callback bound to
	// this batch once (a Conn keeps no write state of its own).
	wn   int
	werr error
	fn   func(fd uintptr) bool
}

var iovecPool = sync.Pool{New: func() any {
	b := new(iovecBatch)
	b.fn = b.write
	return b
}}

// write is the syscall.RawConn write callback: one writev, never waiting.
func (b *iovecBatch) write(fd uintptr) bool {
	b.wn, b.werr = writevFD(fd, b)
	return true
}

func (b *iovecBatch) add(p []byte) {
	if len(p) == 0 {
		return
	}
	b.iov[b.n].Base = &p[0]
	b.iov[b.n].SetLen(len(p))
	b.n++
}

// clear drops the references to the written buffers before the batch goes
// back to the pool.
func (b *iovecBatch) clear() {
	for i := range b.n {
		b.iov[i] = unix.Iovec{}
	}
	b.n = 0
}

// readFD does one non-blocking read(2). It retries on EINTR and reports
// EAGAIN as (0, syscall.EAGAIN).
func readFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), b)
		if err == syscall.EINTR {
			continue
		}
		return n, err
	}
}

// writevFD does one non-blocking writev(2) of the batch.
func writevFD(fd uintptr, b *iovecBatch) (int, error) {
	if b.n == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&b.iov[0])), uintptr(b.n))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}
