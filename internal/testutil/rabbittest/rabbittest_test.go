package rabbittest

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStartRestart starts a node, takes it down, checks that AMQP is
// refused, and brings it back on the same address.
func TestStartRestart(t *testing.T) {
	s := Start(t)
	if err := s.dial(); err != nil {
		t.Fatalf("dial a started node: %v", err)
	}
	s.Down()
	if s.Running() {
		t.Fatal("node still running after Down")
	}
	if err := s.dial(); err == nil {
		t.Fatal("dial succeeded with the node down")
	}
	s.Restart()
	if err := s.dial(); err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
}
