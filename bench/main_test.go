package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/server"
)

// workerEnv makes the test binary act as a `ferry bench --worker` process,
// so the re-exec path is tested without building the ferry binary.
const workerEnv = "FERRY_BENCH_TEST_WORKER=1"

func TestMain(m *testing.M) {
	if os.Getenv("FERRY_BENCH_TEST_WORKER") == "1" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

const (
	testSecret = "bench-test-secret-0123456789abcdef"
	testAPIKey = "bench-test-api-key"
)

// startNode runs a real Ferry node on a loopback port until the test ends.
func startNode(t testing.TB, mutate func(*server.Config)) string {
	t.Helper()
	cfg := server.Config{
		NodeID:                "n-" + t.Name(),
		APIKey:                testAPIKey,
		Token:                 server.TokenConfig{HMACSecret: testSecret},
		Handshake:             server.HandshakeConfig{Rate: 0},
		MaxConnectionsPerUser: 100000,
		Namespaces: map[string]server.Namespace{
			"bench": {Subscribe: true, Publish: true},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Broker: memory.New(memory.Config{NodeID: cfg.NodeID})})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20s")
		}
	})
	return "http://" + ln.Addr().String()
}

// baseConfig is a small run against urls.
func baseConfig(mode Mode, urls ...string) Config {
	return Config{
		Mode:     mode,
		URLs:     urls,
		Secret:   testSecret,
		APIKey:   testAPIKey,
		Conns:    200,
		Rate:     20,
		Duration: time.Second,
		Drain:    5 * time.Second,
	}
}

func runBench(t testing.TB, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if testing.Verbose() {
		_ = res.WriteText(os.Stderr)
	}
	return res
}
