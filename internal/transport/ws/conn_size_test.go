package ws

import (
	"testing"
	"unsafe"
)

func sizeofConn() uintptr { return unsafe.Sizeof(Conn{}) }

func TestConnStructSize(t *testing.T) {
	// The Conn is the largest per-connection allocation of this package;
	// keep it small. The bound leaves room, the log shows the real size.
	size := sizeofConn()
	t.Logf("sizeof(Conn) = %d bytes, of which the parser is %d", size, unsafe.Sizeof(parser{}))
	if size > 512 {
		t.Fatalf("sizeof(Conn) = %d bytes, over the 512-byte budget", size)
	}
}
