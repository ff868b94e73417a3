// Command editor serves the collaborative editor's page. The editor needs
// no back end of its own: each document is a Yjs document whose updates
// travel on the channel docs:NAME (kept in the node's history, from which
// a late joiner catches up), and whose awareness (who is here, where the
// cursors are) travels on cursors:NAME, conflated per editor. Run it in
// front of one node, or of a proxy over a cluster. See README.md.
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
		fmt.Fprintln(os.Stderr, "editor:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("editor", flag.ContinueOnError)
	o := demo.Register(fs, "examples/editor/web")
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
	return demo.Serve(ctx, o.Addr, mux, os.Stdout)
}
