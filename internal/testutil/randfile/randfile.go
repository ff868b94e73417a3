// Package randfile makes random files for upload tests: n random bytes
// and their sha256 in hex, the hash form the upload protocol declares.
package randfile

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// New returns n random bytes and their sha256 in lower-case hex.
func New(tb testing.TB, n int) ([]byte, string) {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}
