package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// The stream tests run HTTP servers; every goroutine must be gone at the end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
