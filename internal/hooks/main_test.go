package hooks

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run HTTP back ends and clients; every goroutine they start
// must be gone when they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
