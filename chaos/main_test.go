package chaos_test

import (
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
)

// ferryBin is the ferry command, built once for all the tests.
var ferryBin ferrytest.Binary

func TestMain(m *testing.M) {
	ferryBin.Race = os.Getenv("FERRY_CLUSTER_RACE") == "1"
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { ferryBin.Remove() }))
}

// hangGuard bounds every wait of these tests. It is a guard against hangs,
// not an expectation about speed.
const hangGuard = 60 * time.Second

// mode is the form of the matrix: how long the workload runs around a
// fault.
type mode struct {
	name string
	// before and after are how long publishing goes on before the fault
	// starts and after it ended.
	before, after time.Duration
	// rate is publishes per second per channel.
	rate int
	// channels is how many channels the workload publishes on.
	channels int
}

// chaosMode reads FERRY_CHAOS: "short" (default) or "long".
func chaosMode(t testing.TB) mode {
	switch v := os.Getenv("FERRY_CHAOS"); v {
	case "", "short":
		return mode{name: "short", before: 2 * time.Second, after: 3 * time.Second, rate: 20, channels: 2}
	case "long":
		return mode{name: "long", before: 20 * time.Second, after: 30 * time.Second, rate: 50, channels: 4}
	default:
		t.Fatalf("FERRY_CHAOS=%q: want short or long", v)
		return mode{}
	}
}
