package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// The JWKS tests run HTTP servers and clients; every goroutine they start
// must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
