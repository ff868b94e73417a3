package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEmbedOutsideTheModule builds and runs testdata/embed, a program in a
// module of its own (a replace directive points at this one) that embeds a
// node with the memory broker and calls Publish and History: the public API
// must be callable from outside the module, and a memory-broker embedder
// must not link a Redis client.
func TestEmbedOutsideTheModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the example module: %v", err)
	}
	dir := filepath.Join("testdata", "embed")
	goCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
		}
		return string(out)
	}
	deps := goCmd("list", "-deps", ".")
	for _, linked := range []string{
		"github.com/redis/", "github.com/ferry-io/ferry/broker/redis",
		"github.com/nats-io/", "github.com/ferry-io/ferry/broker/nats",
		"github.com/rabbitmq/", "github.com/ferry-io/ferry/broker/rabbitmq",
	} {
		if strings.Contains(deps, linked) {
			t.Errorf("the memory-broker embedder links %s", linked)
		}
	}
	if out := goCmd("run", "."); !strings.Contains(out, `published offset 1 epoch-set true history {"headline":"embedded"}`) {
		t.Fatalf("embed printed %q", out)
	}
}
