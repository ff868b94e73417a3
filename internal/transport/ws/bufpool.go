package ws

import (
	"math/bits"
	"sync"
)

// Byte buffers are pooled by power-of-two size class so that no connection
// owns a buffer while it is idle. The pools are caches, not state: sync.Pool
// drops their contents across garbage collections, so memory held for a past
// burst of traffic is returned to the runtime.

const (
	minPoolShift = 9  // 512 B
	maxPoolShift = 22 // 4 MiB; larger buffers are allocated and dropped
	numPools     = maxPoolShift - minPoolShift + 1
)

// bufPools holds *[]byte values whose capacity is exactly 1<<(minPoolShift+i).
var bufPools [numPools]sync.Pool

// poolClass returns the index of the smallest class holding n bytes, or -1
// when n is larger than the biggest class.
func poolClass(n int) int {
	if n <= 1<<minPoolShift {
		return 0
	}
	shift := bits.Len(uint(n - 1))
	if shift > maxPoolShift {
		return -1
	}
	return shift - minPoolShift
}

// getBuf returns a buffer of length 0 and capacity of at least n bytes.
func getBuf(n int) *[]byte {
	class := poolClass(n)
	if class < 0 {
		b := make([]byte, 0, n)
		return &b
	}
	if v := bufPools[class].Get(); v != nil {
		bp := v.(*[]byte)
		*bp = (*bp)[:0]
		return bp
	}
	b := make([]byte, 0, 1<<(minPoolShift+class))
	return &b
}

// putBuf gives a buffer obtained from getBuf back to its pool. Buffers whose
// capacity is not a pooled class size are dropped.
func putBuf(bp *[]byte) {
	if bp == nil {
		return
	}
	c := cap(*bp)
	class := poolClass(c)
	if class < 0 || c != 1<<(minPoolShift+class) {
		return
	}
	*bp = (*bp)[:0]
	bufPools[class].Put(bp)
}

// growBuf makes sure *bp (which may be nil) has room for extra more bytes,
// moving its contents to a bigger pooled buffer when needed.
func growBuf(bp *[]byte, extra int) *[]byte {
	if bp == nil {
		return getBuf(extra)
	}
	need := len(*bp) + extra
	if need <= cap(*bp) {
		return bp
	}
	nb := getBuf(max(need, 2*cap(*bp))) // at least double: no quadratic copying past the pooled sizes
	*nb = append(*nb, *bp...)
	putBuf(bp)
	return nb
}
