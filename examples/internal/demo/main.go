package demo

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Setup is an app's own part: it may check its flags, add routes to mux
// and start work that lasts until ctx ends. A returned func runs at exit.
type Setup func(ctx context.Context, o *Options, mux *http.ServeMux) (cleanup func(), err error)

// Main runs an example app: the shared flags and the app's own (added by
// flags, which may be nil), then setup (nil: none), then the page server
// until SIGINT or SIGTERM. It exits the process with status 1 on error.
func Main(name, web string, flags func(*flag.FlagSet), setup Setup) {
	if err := run(name, web, os.Args[1:], flags, setup); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name, web string, args []string, flags func(*flag.FlagSet), setup Setup) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o := Register(fs, web)
	if flags != nil {
		flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mux, err := o.Mux()
	if err != nil {
		return err
	}
	if setup != nil {
		cleanup, err := setup(ctx, o, mux)
		if err != nil {
			return err
		}
		if cleanup != nil {
			defer cleanup()
		}
	}
	return Serve(ctx, o.Addr, mux, os.Stdout)
}
