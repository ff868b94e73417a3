package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// defaultURL is where sub and pub look for a node.
const defaultURL = "http://localhost:8080"

// subLine is one message as `ferry sub` prints it.
type subLine struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
}

// runSub prints the messages of channels as JSON lines until interrupted.
func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sub", stderr)
	url := fs.String("url", defaultURL, "the node: base URL (http://host:8080, ws://host:8080) or WebSocket URL (ws://host:8080/v1/ws)")
	token := fs.String("token", os.Getenv("FERRY_TOKEN"), "connection token (default $FERRY_TOKEN)")
	codecName := fs.String("codec", "json", "wire format: json, msgpack or protobuf")
	window := fs.Uint("window", 0, "credit window: most unacknowledged messages in flight (0: none)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry sub [--url URL] [--token TOKEN] [--codec json|msgpack|protobuf] [--window N] CHANNEL...")
		fmt.Fprintln(stderr, "Prints each message as a JSON line {channel, offset, epoch, data}; state changes go to stderr.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	channels := fs.Args()
	if len(channels) == 0 {
		fs.Usage()
		return usageError{"sub: name at least one channel"}
	}
	for _, ch := range channels {
		if err := protocol.ValidChannel(ch); err != nil {
			return usageError{fmt.Sprintf("sub: %v", err)}
		}
	}
	codec, err := codecFlag(*codecName)
	if err != nil {
		return err
	}
	if *window > protocol.MaxWindow {
		return usageError{fmt.Sprintf("sub: --window %d is more than %d", *window, protocol.MaxWindow)}
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var outMu sync.Mutex // subscriptions deliver on goroutines of their own
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	logf := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(stderr, "ferry sub: "+format+"\n", a...)
	}
	c, err := client.New(*url, client.Config{
		Token:   *token,
		Codec:   codec,
		Window:  uint32(*window),
		OnState: func(sc client.StateChange) { logf("%s", describeState(sc)) },
		OnError: func(err error) { logf("error: %v", err) },
		OnGap: func(g client.Gap) {
			logf("%s: %d messages lost after offset %d (epoch now %s)", g.Channel, g.Missed, g.After.Offset, g.Epoch)
		},
	})
	if err != nil {
		return usageError{fmt.Sprintf("sub: %v", err)}
	}
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // interrupted
		}
		return fmt.Errorf("sub: %w", err)
	}
	var writeErr error
	emit := func(m client.Message) {
		outMu.Lock()
		defer outMu.Unlock()
		if writeErr == nil {
			writeErr = enc.Encode(subLine{Channel: m.Channel, Offset: m.Offset, Epoch: m.Epoch, Data: m.Data})
			if writeErr != nil {
				stop() // stdout is gone: stop
			}
		}
	}
	for _, ch := range channels {
		if _, err := c.Subscribe(ctx, ch, client.WithHandler(emit)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sub: %w", err)
		}
		logf("subscribed to %s", ch)
	}
	select {
	case <-ctx.Done():
	case <-c.Done():
		return fmt.Errorf("sub: %w", c.Err())
	}
	outMu.Lock()
	defer outMu.Unlock()
	if writeErr != nil {
		return fmt.Errorf("sub: write: %w", writeErr)
	}
	return nil
}

// describeState renders a state change for the log.
func describeState(sc client.StateChange) string {
	switch sc.State {
	case client.StateConnected:
		if sc.Resumed {
			return "connected (session resumed)"
		}
		return "connected"
	case client.StateDisconnected:
		if sc.Err != nil {
			return fmt.Sprintf("disconnected: %v; retrying in %v", sc.Err, sc.RetryIn)
		}
		return fmt.Sprintf("disconnected; retrying in %v", sc.RetryIn)
	case client.StateClosed:
		if sc.Err != nil {
			return fmt.Sprintf("closed: %v", sc.Err)
		}
		return "closed"
	}
	return sc.State.String()
}

// codecFlag reads --codec.
func codecFlag(name string) (protocol.Codec, error) {
	switch name {
	case "json":
		return protocol.JSON, nil
	case "msgpack":
		return protocol.Msgpack, nil
	case "protobuf":
		return protocol.Protobuf, nil
	}
	return nil, usageError{fmt.Sprintf("--codec %q: want json, msgpack or protobuf", name)}
}
