package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-io/ferry/bench"
)

// runBench is `ferry bench`: a load generator for one node or several (see
// package bench and docs/benchmarks.md). With --worker it is a child process
// of another `ferry bench` and speaks the worker protocol on stdin/stdout.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	mode := fs.String("mode", "fanout", "idle, connect, fanout or cluster")
	urls := fs.String("url", defaultURL, "the node(s): base URL (http://host:8080, ws://host:8080) or WebSocket URL (ws://host:8080/v1/ws); comma-separated for cluster")
	conns := fs.Int("conns", 1000, "connections (subscribers)")
	channels := fs.Int("channels", 0, "channels the connections subscribe to (default 1; idle: conns/100)")
	prefix := fs.String("channel-prefix", "bench:", "channel names begin with this, then a random run id (the namespace must allow subscribe)")
	rate := fs.Float64("rate", 0, "publishes per second over all channels (default 10 in fanout; cluster without --rate is an idle run)")
	duration := fs.Duration("duration", 0, "how long to publish (fanout, cluster) or at least to hold the connections (idle) (default 10s; idle 30s)")
	payload := fs.Int("payload", 64, "approximate payload size in bytes")
	codec := fs.String("codec", "json", "encoding of the bench connections: json, msgpack or protobuf")
	secret := fs.String("secret", os.Getenv("FERRY_TOKEN_HMAC_SECRET"), "HMAC secret to sign connection tokens (default $FERRY_TOKEN_HMAC_SECRET)")
	apiKey := fs.String("api-key", os.Getenv("FERRY_API_KEY"), "server API key, for /v1/api/stats and publishing (default $FERRY_API_KEY)")
	workers := fs.Int("workers", 0, "child processes that hold the connections (default: 0 = this process, or enough for --conns-per-process)")
	perProcess := fs.Int("conns-per-process", 15000, "most connections one process opens")
	concurrency := fs.Int("concurrency", 128, "handshakes in flight at once, over all processes")
	client := fs.String("client", "reactor", "how connections are opened and read: reactor (epoll loops, Linux), goroutine (one per connection) or library (github.com/coder/websocket, one goroutine per connection, [connect, subscribe] in one message, as an application)")
	transport := fs.String("transport", "ws", "ws, or sse / poll: HTTP-fallback sessions (SSE stream, long-poll), a goroutine each (idle, connect, cluster without --rate)")
	oneUser := fs.Bool("one-user", false, "mint every connection's token for one user (distinct tokens); raise or turn off the server's max_connections_per_user")
	loops := fs.Int("loops", 0, "reactor loops per process (default GOMAXPROCS)")
	readPause := fs.Duration("read-pause", 0, "reactor: sleep this long between polls to gather reads (adds up to that much latency; see docs/benchmarks.md)")
	via := fs.String("publish-via", "api", "api (POST /v1/api/publish) or ws (publish frames; raise FERRY_CLIENT_PUBLISH_RATE)")
	to := fs.String("publish-to", "first", "cluster: first (one node, a shared broker fans out) or all (every node gets each message)")
	publishers := fs.Int("publishers", 0, "concurrent publishers (default 4-64 by rate)")
	drain := fs.Duration("drain", 10*time.Second, "fanout: how long to wait for deliveries after the last publish")
	settle := fs.Duration("settle-timeout", 60*time.Second, "idle: how long to wait beyond --duration for the server's RSS to settle")
	connectTimeout := fs.Duration("connect-timeout", 10*time.Second, "bound on one connection's handshake")
	sources := fs.String("source-addrs", "", "comma-separated local addresses to connect from (default: 127.0.x.y addresses for a loopback target)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines")
	worker := fs.Bool("worker", false, "internal: run as a worker process of another ferry bench")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry bench --mode idle|connect|fanout|cluster [--url URL[,URL...]] [--conns N] [--rate R] [--duration D] [--codec json|msgpack|protobuf] [--json] ...")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *worker {
		return bench.RunWorker(ctx, os.Stdin, stdout)
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("bench: unexpected argument %q", fs.Arg(0))}
	}
	cfg := bench.Config{
		Mode:            bench.Mode(*mode),
		URLs:            splitList(*urls),
		Conns:           *conns,
		Channels:        *channels,
		ChannelPrefix:   *prefix,
		Rate:            *rate,
		Duration:        *duration,
		Payload:         *payload,
		Codec:           *codec,
		Secret:          *secret,
		APIKey:          *apiKey,
		Workers:         *workers,
		ConnsPerProcess: *perProcess,
		Concurrency:     *concurrency,
		Client:          bench.ClientKind(*client),
		OneUser:         *oneUser,
		Transport:       bench.Transport(*transport),
		Loops:           *loops,
		ReadPause:       *readPause,
		PublishVia:      bench.PublishVia(*via),
		PublishTo:       bench.PublishTo(*to),
		Publishers:      *publishers,
		SourceAddrs:     splitList(*sources),
		ConnectTimeout:  *connectTimeout,
		Drain:           *drain,
		SettleTimeout:   *settle,
		Stderr:          stderr,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		if res == nil {
			return usageOrRunError(err)
		}
		fmt.Fprintln(stderr, "ferry bench:", err)
	}
	if res != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(res); jerr != nil {
				return jerr
			}
		} else if werr := res.WriteText(stdout); werr != nil {
			return werr
		}
	}
	return err
}

// usageOrRunError turns configuration errors into usage errors (exit 2).
func usageOrRunError(err error) error {
	if errors.Is(err, bench.ErrConfig) || errors.Is(err, bench.ErrUnsupportedURL) {
		return usageError{err.Error()}
	}
	return err
}
