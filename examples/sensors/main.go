// Command sensors serves the sensor network's dashboard: a page that
// follows sensors:readings and decrypts each batch of readings with the
// key it holds (given in the URL fragment, which browsers never send to a
// server). The devices are a separate program, ./devices. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-io/ferry/examples/internal/demo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sensors:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("sensors", flag.ContinueOnError)
	o := demo.Register(fs, "examples/sensors/web")
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
	// The page server never sees the readings' key: it only serves the
	// page and forwards /v1/ (the transparency report included).
	return demo.Serve(ctx, o.Addr, mux, os.Stdout)
}
