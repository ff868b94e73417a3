package fallback

import (
	"io"
	"net"
	"testing"
)

func TestWithPrefixReadsPrefixesInOrder(t *testing.T) {
	// A poll hands back its connection with bytes it read (the start of
	// the next request); the server reads one more byte before net/http
	// gets it: net/http must read them all, in order, then the rest.
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_, _ = b.Write([]byte("ST / HTTP/1.1"))
		b.Close()
	}()
	c := WithPrefix(a, []byte("PO"))
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil || first[0] != 'P' {
		t.Fatalf("first byte %q, %v", first[0], err)
	}
	c = WithPrefix(c, first[:])
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "POST / HTTP/1.1" {
		t.Fatalf("read %q, want %q", got, "POST / HTTP/1.1")
	}
	if WithPrefix(a, nil) != net.Conn(a) {
		t.Fatal("an empty prefix wraps the connection")
	}
}
