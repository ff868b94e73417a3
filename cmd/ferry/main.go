// Command ferry is the Ferry real-time messaging gateway.
//
//	ferry serve [--dev] [--config FILE] [--addr :8080]   run a node
//	ferry token --sub alice [--ttl 1h] [--channels 'room:*']
//	ferry sub [--url URL] [--token T] CHANNEL...          print messages as JSON lines
//	ferry pub [--url URL] [--token T | --api-key K] CHANNEL DATA
//	ferry config check FILE
//	ferry health [--url URL]                              for container health checks
//	ferry version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ferry-io/ferry/internal/version"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "ferry:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks errors in how the command was called (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitCode is 0 for a --help that was asked for (the help went to the
// output, as asked), 2 for a usage error and 1 for anything else.
func exitCode(err error) int {
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

const usage = `ferry: a self-hosted real-time messaging gateway

usage:
  ferry serve [--dev] [--config FILE] [--addr ADDR] [--broker URL]
  ferry token --sub USER [--ttl 1h] [--channels PATTERNS] [--subscribe PATTERNS] [--publish PATTERNS]
  ferry sub [--url URL] [--token TOKEN] [--codec json|msgpack|protobuf] [--window N] CHANNEL...
  ferry pub [--url URL] [--token TOKEN | --api-key KEY] [--key KEY] [--priority P] CHANNEL DATA
  ferry bench --mode idle|connect|fanout|cluster [--url URL[,URL...]] [--conns N] [--rate R] [--duration D] [--json]
  ferry config check FILE
  ferry health [--url http://127.0.0.1:8080/healthz]   exit 0 when the node answers 200
  ferry version

Settings come from defaults < the YAML file < FERRY_* variables < flags;
see docs/configuration.md.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "sub":
		return runSub(ctx, args[1:], stdout, stderr)
	case "pub":
		return runPub(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "health":
		return runHealth(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.Get())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ferry "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses and turns flag errors into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
