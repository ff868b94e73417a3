package client_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/server"
)

// exampleNode starts a Ferry node in the process for the examples and
// returns its URL, a function that makes a connection token for a user (as
// an application's back end would: an HS256 JWT with the node's secret),
// and a function that stops the node.
func exampleNode() (url string, tokenFor func(user string) string, stop func()) {
	const secret = "example-secret-0123456789abcdef012"
	srv, err := server.New(server.Config{
		Token: server.TokenConfig{HMACSecret: secret},
		Namespaces: map[string]server.Namespace{
			"chat": {HistorySize: 100, Publish: true, Subscribe: true, Presence: true},
		},
	}, server.Options{Logger: slog.New(slog.DiscardHandler), Broker: memory.New(memory.Config{})})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	tokenFor = func(user string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": user, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString([]byte(secret))
		if err != nil {
			log.Fatal(err)
		}
		return tok
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	}
	return ts.URL, tokenFor, stop
}

// Subscribe to a channel and publish to it.
func Example() {
	url, tokenFor, stop := exampleNode()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, url, client.Config{Token: tokenFor("alice")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sub, err := c.Subscribe(ctx, "chat:lobby")
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Publish(ctx, "chat:lobby", map[string]string{"text": "hello"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published at offset", res.Offset)

	m := <-sub.Messages()
	var body struct{ Text string }
	if err := m.Decode(&body); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s #%d from %s: %s\n", m.Channel, m.Offset, m.From, body.Text)
	// Output:
	// published at offset 1
	// chat:lobby #1 from alice: hello
}

// A publish retried with the same key is applied once: the second answer
// says Duplicate and gives the original offset. (Publish keeps its own key
// across reconnects; WithKey makes a publish idempotent across processes.)
func ExampleWithKey() {
	url, tokenFor, stop := exampleNode()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Config{Token: tokenFor("shop")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	for range 2 {
		res, err := c.Publish(ctx, "chat:orders", map[string]int{"order": 17}, client.WithKey("order-17"))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("offset %d duplicate %v\n", res.Offset, res.Duplicate)
	}
	// Output:
	// offset 1 duplicate false
	// offset 1 duplicate true
}

// Handle messages with a function, and follow the connection's state.
func ExampleWithHandler() {
	url, tokenFor, stop := exampleNode()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	states := make(chan client.State, 10)
	c, err := client.Dial(ctx, url, client.Config{
		Token:   tokenFor("bob"),
		OnState: func(sc client.StateChange) { states <- sc.State },
	})
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan string, 3)
	if _, err := c.Subscribe(ctx, "chat:news", client.WithHandler(func(m client.Message) {
		got <- string(m.Data)
	})); err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"one", "two", "three"} {
		if _, err := c.Publish(ctx, "chat:news", s); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		fmt.Println(<-got)
	}
	_ = c.Close()
	close(states)
	for s := range states {
		fmt.Println("state:", s)
	}
	// Output:
	// "one"
	// "two"
	// "three"
	// state: connecting
	// state: connected
	// state: closed
}

// Read a channel's history after a known position.
func ExampleClient_History() {
	url, tokenFor, stop := exampleNode()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Config{Token: tokenFor("carol")})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var last client.PublishResult
	for i := 1; i <= 4; i++ {
		if last, err = c.Publish(ctx, "chat:log", i); err != nil {
			log.Fatal(err)
		}
	}
	h, err := c.History(ctx, "chat:log", &client.Position{Offset: 2, Epoch: last.Epoch}, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range h.Messages {
		fmt.Println(m.Offset, string(m.Data))
	}
	fmt.Println("latest:", h.Offset)
	// Output:
	// 3 3
	// 4 4
	// latest: 4
}

// The delays between reconnection attempts: 1s, 2s, 4s... capped at 30s,
// each spread by +-20% (here with the jitter's middle draw).
func ExampleBackoff_Delay() {
	b := client.Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}
	var curve []time.Duration
	for n := range 7 {
		curve = append(curve, b.Delay(n, middle{}))
	}
	fmt.Println(curve)
	fmt.Println(b.Delay(0, lowest{}), b.Delay(0, highest{}))
	// Output:
	// [1s 2s 4s 8s 16s 30s 30s]
	// 800ms 1.2s
}

type (
	middle  struct{}
	lowest  struct{}
	highest struct{}
)

func (middle) Float64() float64  { return 0.5 }
func (lowest) Float64() float64  { return 0 }
func (highest) Float64() float64 { return 1 }

// The URL can be the node's base URL or its WebSocket URL.
func ExampleWebSocketURL() {
	for _, u := range []string{"http://localhost:8080", "https://example.com/ferry", "ws://localhost:8080/v1/ws"} {
		ws, _ := client.WebSocketURL(u)
		fmt.Println(ws)
	}
	// Output:
	// ws://localhost:8080/v1/ws
	// wss://example.com/ferry/v1/ws
	// ws://localhost:8080/v1/ws
}
