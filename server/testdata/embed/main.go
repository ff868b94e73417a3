// Command embed is a program outside the Ferry module that embeds a node
// with the in-process broker and publishes from Go: what the public API of
// package server must make possible. server's TestEmbedOutsideTheModule
// builds and runs it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/server"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		os.Exit(1)
	}
}

func run() error {
	srv, err := server.New(server.Config{
		Token: server.TokenConfig{HMACSecret: "embed-example-secret-0123456789ab"},
		Namespaces: map[string]server.Namespace{
			"news": {HistorySize: 10, Subscribe: true},
		},
	}, server.Options{
		Logger: slog.New(slog.DiscardHandler),
		Broker: memory.New(memory.Config{}),
	})
	if err != nil {
		return err
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer func() { _ = srv.Shutdown(ctx) }()

	res, err := srv.Publish(ctx, "news:today", []byte(`{"headline":"embedded"}`), server.WithKey("first"))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	hist, err := srv.History(ctx, "news:today", nil, 0)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if len(hist.Messages) != 1 {
		return fmt.Errorf("history has %d messages, want 1", len(hist.Messages))
	}
	fmt.Printf("published offset %d epoch-set %v history %s\n", res.Offset, res.Epoch != "", hist.Messages[0].Data)
	return nil
}
