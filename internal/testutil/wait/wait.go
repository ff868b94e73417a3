// Package wait is the one polling helper of Ferry's tests: wait until a
// condition holds, always with a timeout, instead of sleeping and hoping
// that the state was reached.
package wait

import (
	"testing"
	"time"
)

// Timeout is how long For waits: generous, so that only a hang fails on a
// loaded machine, never a slow run.
const Timeout = 10 * time.Second

// interval is the pause between two polls.
const interval = time.Millisecond

// For polls cond until it holds and fails tb if it does not within
// Timeout, naming what it waited for.
func For(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Within(tb, Timeout, what, cond)
}

// Within is For with its own timeout.
func Within(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Until(timeout, cond) {
		tb.Fatalf("gave up after %v waiting for %s", timeout, what)
	}
}

// Until polls cond until it holds or timeout passes, and reports whether
// it held; for callers that say themselves what failed.
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}
