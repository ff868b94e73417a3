package fallback

import (
	"testing"

	"go.uber.org/goleak"
)

// Every stream's goroutine ends with its stream.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
