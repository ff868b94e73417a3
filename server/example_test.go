package server_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/server"
)

// A node embedded in a Go program, on the in-process broker, publishing
// from the application.
func ExampleServer_Publish() {
	srv, err := server.New(server.Config{
		Token: server.TokenConfig{HMACSecret: "example-secret-0123456789abcdef012"},
		Namespaces: map[string]server.Namespace{
			"prices": {HistorySize: 100, Subscribe: true},
		},
	}, server.Options{Logger: slog.New(slog.DiscardHandler), Broker: memory.New(memory.Config{})})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = srv.Shutdown(context.Background()) }()
	// Mount srv.Handler() in an http.Server, or call srv.Run(ctx).

	ctx := context.Background()
	res, err := srv.Publish(ctx, "prices:acme", []byte(`{"price":101.25}`), server.WithKey("tick-1"))
	if err != nil {
		fmt.Println(err)
		return
	}
	again, _ := srv.Publish(ctx, "prices:acme", []byte(`{"price":101.25}`), server.WithKey("tick-1"))
	fmt.Println(res.Offset, again.Offset, again.Duplicate)
	// Output: 1 1 true
}
