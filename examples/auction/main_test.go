package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
)

// ferryBin is the ferry command, built once for the test that runs a node.
var ferryBin ferrytest.Binary

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { ferryBin.Remove() }))
}
