package ws

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// envGoroutineReader runs the package's tests with a reader goroutine per
// connection instead of the reactor (scripts/test.sh runs both).
const envGoroutineReader = "FERRY_WS_GOROUTINE_READER"

// testReactor serves the test servers' connections unless
// envGoroutineReader is set or the platform has no reactor.
var testReactor *Reactor

func TestMain(m *testing.M) {
	if os.Getenv(envGoroutineReader) == "" {
		if r, err := NewReactor(2); err == nil {
			testReactor = r
		}
	}
	code := m.Run()
	if testReactor != nil {
		_ = testReactor.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// withTestReactor returns opts (or defaults) served by the test reactor,
// unless opts names its own.
func withTestReactor(opts *Options) *Options {
	if testReactor == nil {
		return opts
	}
	o := Options{}
	if opts != nil {
		if opts.Reactor != nil {
			return opts
		}
		o = *opts
	}
	o.Reactor = testReactor
	return &o
}
