// Command ticker is the price-ticker example's back end: a feed of
// thousands of ticks per second published to the channel ticks:all (each
// conflated by symbol), and the page server. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"

	"github.com/ferry-io/ferry/examples/internal/demo"
)

func main() {
	var unbatched string
	var rate, symbols int
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&unbatched, "unbatched", "", "base URL of a second node WITHOUT batch.delay, for the measurement mode (served at /raw/v1/); empty: none")
		fs.IntVar(&rate, "rate", 2000, "ticks per second, over all symbols")
		fs.IntVar(&symbols, "symbols", 40, "how many symbols")
	}
	demo.Main("ticker", "examples/ticker/web", flags, func(ctx context.Context, o *demo.Options, mux *http.ServeMux) (func(), error) {
		if rate <= 0 || symbols <= 0 || symbols > len(symbolNames) {
			return nil, fmt.Errorf("--rate must be > 0 and --symbols in 1..%d", len(symbolNames))
		}
		nodes := []string{o.Ferry}
		if unbatched != "" {
			if err := demo.Mount(mux, "/raw", unbatched, o.BlockWebSocket); err != nil {
				return nil, err
			}
			nodes = append(nodes, unbatched)
		}
		tok, err := o.BackendToken("ticker", "ticks:*")
		if err != nil {
			return nil, err
		}
		f, err := newFeed(ctx, nodes, tok, rate, symbolNames[:symbols])
		if err != nil {
			return nil, err
		}
		f.routes(mux)
		go f.run(ctx)
		return f.close, nil
	})
}
