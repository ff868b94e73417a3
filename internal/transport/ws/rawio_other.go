//go:build !unix

package ws

import (
	"errors"
	"sync"
)

// rawIOSupported is false where sockets are not read through
// syscall.RawConn: every connection uses blocking reads and the flusher.
const rawIOSupported = false

const maxIovecs = 64

type iovecBatch struct {
	hdr  [14]byte
	n    int
	wn   int
	werr error
	fn   func(fd uintptr) bool
}

var iovecPool = sync.Pool{New: func() any { return new(iovecBatch) }}

func (b *iovecBatch) add(p []byte) {}
func (b *iovecBatch) clear()       {}

func readFD(fd uintptr, b []byte) (int, error) { return 0, errors.ErrUnsupported }

func writevFD(fd uintptr, b *iovecBatch) (int, error) { return 0, errors.ErrUnsupported }
