package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// pubResult is what `ferry pub` prints.
type pubResult struct {
	Channel   string `json:"channel"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Duplicate bool   `json:"duplicate"`
}

// runPub publishes one message, through a WebSocket connection (--token) or
// the server API (--api-key).
func runPub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pub", stderr)
	url := fs.String("url", defaultURL, "the node: base URL (http://host:8080, ws://host:8080) or WebSocket URL (ws://host:8080/v1/ws)")
	token := fs.String("token", os.Getenv("FERRY_TOKEN"), "connection token, to publish as a client over WebSocket (default $FERRY_TOKEN)")
	apiKey := fs.String("api-key", os.Getenv("FERRY_API_KEY"), "server API key, to publish through POST /v1/api/publish instead (default $FERRY_API_KEY)")
	key := fs.String("key", "", "idempotency key (default: a random one)")
	priority := fs.String("priority", "", "critical, normal or droppable (default: the namespace's)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ferry pub [--url URL] [--token TOKEN | --api-key KEY] [--key KEY] [--priority P] CHANNEL DATA")
		fmt.Fprintln(stderr, "DATA is JSON; anything that is not valid JSON is sent as a JSON string.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return usageError{"pub: want CHANNEL and DATA"}
	}
	ch, arg := fs.Arg(0), fs.Arg(1)
	if err := protocol.ValidChannel(ch); err != nil {
		return usageError{fmt.Sprintf("pub: %v", err)}
	}
	if _, err := protocol.ParsePriority(*priority); err != nil {
		return usageError{fmt.Sprintf("pub: --priority: %v", err)}
	}
	if *timeout <= 0 {
		return usageError{"pub: --timeout must be positive"}
	}
	data := json.RawMessage(arg)
	if !json.Valid(data) {
		b, _ := json.Marshal(arg)
		data = b
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var res pubResult
	var err error
	if *apiKey != "" {
		res, err = publishAPI(ctx, *url, *apiKey, ch, data, *key, *priority)
	} else {
		res, err = publishWS(ctx, *url, *token, ch, data, *key, *priority)
	}
	if err != nil {
		return err
	}
	b, _ := json.Marshal(res)
	fmt.Fprintln(stdout, string(b))
	return nil
}

func publishWS(ctx context.Context, url, token, ch string, data json.RawMessage, key, priority string) (pubResult, error) {
	if _, err := client.WebSocketURL(url); err != nil {
		return pubResult{}, usageError{fmt.Sprintf("pub: --url: %v", err)}
	}
	c, err := client.Dial(ctx, url, client.Config{
		Token:   token,
		Backoff: client.Backoff{Initial: 200 * time.Millisecond, MaxAttempts: 3},
	})
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: %w", err)
	}
	defer c.Close()
	var opts []client.PublishOption
	if key != "" {
		opts = append(opts, client.WithKey(key))
	}
	if priority != "" {
		p, _ := protocol.ParsePriority(priority) // checked by the caller
		opts = append(opts, client.WithPriority(p))
	}
	r, err := c.Publish(ctx, ch, data, opts...)
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: %w", err)
	}
	return pubResult{Channel: ch, Offset: r.Offset, Epoch: r.Epoch, Duplicate: r.Duplicate}, nil
}

func publishAPI(ctx context.Context, url, apiKey, ch string, data json.RawMessage, key, priority string) (pubResult, error) {
	base, err := client.HTTPBaseURL(url)
	if err != nil {
		return pubResult{}, usageError{fmt.Sprintf("pub: --url: %v", err)}
	}
	body, err := json.Marshal(map[string]any{"channel": ch, "data": data, "key": key, "priority": priority})
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/api/publish", bytes.NewReader(body))
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return pubResult{}, fmt.Errorf("pub: read reply: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct {
				Reason string `json:"reason"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Reason != "" {
			return pubResult{}, fmt.Errorf("pub: HTTP %d: %s", resp.StatusCode, e.Error.Reason)
		}
		return pubResult{}, fmt.Errorf("pub: HTTP %d", resp.StatusCode)
	}
	var r pubResult
	if err := json.Unmarshal(b, &r); err != nil {
		return pubResult{}, fmt.Errorf("pub: reply %q: %w", b, err)
	}
	r.Channel = ch
	return r, nil
}
