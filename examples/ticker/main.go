// Command ticker is the price-ticker example's back end: a feed of
// thousands of ticks per second published to the channel ticks:all (each
// conflated by symbol), and the page server. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-io/ferry/examples/internal/demo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ticker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("ticker", flag.ContinueOnError)
	o := demo.Register(fs, "examples/ticker/web")
	unbatched := fs.String("unbatched", "", "base URL of a second node WITHOUT batch.delay, for the measurement mode (served at /raw/v1/); empty: none")
	rate := fs.Int("rate", 2000, "ticks per second, over all symbols")
	symbols := fs.Int("symbols", 40, "how many symbols")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	if *rate <= 0 || *symbols <= 0 || *symbols > len(symbolNames) {
		return fmt.Errorf("--rate must be > 0 and --symbols in 1..%d", len(symbolNames))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mux, err := o.Mux()
	if err != nil {
		return err
	}
	nodes := []string{o.Ferry}
	if *unbatched != "" {
		if err := demo.Mount(mux, "/raw", *unbatched, o.BlockWebSocket); err != nil {
			return err
		}
		nodes = append(nodes, *unbatched)
	}
	tok, err := o.BackendToken("ticker", "ticks:*")
	if err != nil {
		return err
	}
	f, err := newFeed(ctx, nodes, tok, *rate, symbolNames[:*symbols])
	if err != nil {
		return err
	}
	defer f.close()
	f.routes(mux)
	go f.run(ctx)
	if err := demo.Serve(ctx, o.Addr, mux, os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
