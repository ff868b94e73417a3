// Command flashsale is the auction's load generator: many bidders (Go SDK
// connections) bid as fast as they can for a while, each publish on
// bids:ITEM judged by the auction's publish hook, and a watcher follows
// the price, the leaderboard and the bid log meanwhile. At the end it
// checks the promises of the channel classes and prints a JSON report:
//
//   - no accepted bid is lost: the bid log (history of bids:ITEM) holds
//     exactly the accepted bids of the back end's /state, each once;
//   - the price stays current: the watcher's last price is the final one;
//   - the leaderboard may drop: boards received vs boards published.
//
// A publish the back end refused (too low, too many bids) is counted by
// its reason; one the node says may be retried (the hook timed out or was
// busy) is sent again with the same key, which the back end judges once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/examples/internal/demo"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/protocol"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flashsale:", err)
		os.Exit(1)
	}
}

type verdict struct {
	Key    string `json:"key"`
	Amount int64  `json:"amount"`
}

func run() error {
	ferry := flag.String("ferry", "http://127.0.0.1:8080", "base URL of the Ferry node")
	app := flag.String("app", "http://127.0.0.1:8090", "base URL of the auction app (its /state)")
	secret := flag.String("secret", os.Getenv("FERRY_TOKEN_HMAC_SECRET"), "HS256 secret (default $FERRY_TOKEN_HMAC_SECRET)")
	apiKey := flag.String("api-key", os.Getenv("FERRY_API_KEY"), "server API key (default $FERRY_API_KEY)")
	item := flag.String("item", "lot1", "the item")
	bidders := flag.Int("bidders", 200, "concurrent bidders")
	dur := flag.Duration("for", 10*time.Second, "how long to bid")
	flag.Parse()
	if *secret == "" || *apiKey == "" || *bidders < 1 || *dur <= 0 {
		return errors.New("need --secret, --api-key, --bidders >= 1 and --for > 0")
	}
	ctx := context.Background()
	token := func(user string) (string, error) { return auth.Mint([]byte(*secret), user, time.Hour, nil) }

	// The watcher: reads price, board and bids, slowly (a small buffer).
	wtok, err := token("watcher")
	if err != nil {
		return err
	}
	// Its connection's troubles go to stderr (stdout is the report).
	var watcherDrops atomic.Int64
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := client.Dial(ctx, *ferry, client.Config{Token: wtok, Logger: logger, OnState: func(sc client.StateChange) {
		if sc.State == client.StateDisconnected {
			watcherDrops.Add(1)
			logger.Warn("watcher disconnected", "code", sc.Code, "err", sc.Err)
		}
	}})
	if err != nil {
		return err
	}
	defer w.Close()
	var price atomic.Int64
	var boards, bidsSeen atomic.Int64
	follow := func(ch string, fn func(client.Message)) error {
		_, err := w.Subscribe(ctx, ch, client.WithHandler(fn))
		return err
	}
	if err := errors.Join(
		follow("price:"+*item, func(m client.Message) {
			var p struct{ Price int64 }
			if json.Unmarshal(m.Data, &p) == nil {
				raise(&price, p.Price)
			}
		}),
		follow("board:"+*item, func(client.Message) { boards.Add(1) }),
		follow("bids:"+*item, func(client.Message) { bidsSeen.Add(1) }),
	); err != nil {
		return err
	}

	// The opening price was published before the watcher came: read it.
	api := &demo.API{URL: *ferry, Key: *apiKey}
	var ph struct {
		Messages []struct{ Data struct{ Price int64 } } `json:"messages"`
	}
	if err := api.Get(ctx, "/v1/api/history?channel=price:"+*item, &ph); err != nil {
		return err
	}
	for _, m := range ph.Messages {
		raise(&price, m.Data.Price)
	}

	var offered, failed, let atomic.Int64
	// known is the price as the bidders learnt it from their own answers
	// (accepted, or "too low: the price is N"), often ahead of the
	// watcher's; a bid raises the higher of the two.
	var known atomic.Int64
	var refusals sync.Map // reason (up to its first ':') -> *atomic.Int64
	refused := func(reason string) {
		kind, _, _ := strings.Cut(strings.TrimPrefix(reason, "publish: "), ":")
		n, _ := refusals.LoadOrStore(kind, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	end := time.Now().Add(*dur)
	var wg sync.WaitGroup
	for i := range *bidders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := token(fmt.Sprintf("bidder-%04d", i))
			if err != nil {
				failed.Add(1)
				return
			}
			c, err := client.Dial(ctx, *ferry, client.Config{Token: tok})
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			for time.Now().Before(end) {
				key := fmt.Sprintf("fs-%04d-%d", i, offered.Add(1))
				amount := max(price.Load(), known.Load()) + 1 + rand.Int64N(3)
				switch reason, err := place(ctx, c, "bids:"+*item, amount, key); {
				case err != nil:
					failed.Add(1)
				case reason != "":
					refused(reason)
					// "too low: the price is N, ...": raise from there
					// next time, without waiting for the watcher.
					var p int64
					if _, err := fmt.Sscanf(strings.TrimPrefix(reason, "publish: "), "too low: the price is %d,", &p); err == nil {
						raise(&known, p)
					}
				default:
					let.Add(1)
					raise(&known, amount)
				}
			}
		}()
	}
	wg.Wait()

	// Every answered bid was judged in its publish (the hook answered
	// before the publish did); let the last price reach the watcher, and
	// read the standing until it stops changing (or half a minute passed:
	// the report then shows the watcher behind).
	var st struct {
		Accepted        []verdict `json:"accepted"`
		Judged          int64     `json:"judged"`
		Price           int64     `json:"price"`
		BoardsPublished int64     `json:"boards_published"`
	}
	settled := time.Now().Add(30 * time.Second)
	for prev := int64(-1); ; prev = st.BoardsPublished {
		time.Sleep(time.Second)
		if err := getJSON(*app+"/state", &st); err != nil {
			return err
		}
		if (st.BoardsPublished == prev && st.Price == price.Load()) || time.Now().After(settled) {
			break
		}
	}
	var h struct {
		Messages []struct{ Data verdict } `json:"messages"`
	}
	if err := api.Get(ctx, "/v1/api/history?channel=bids:"+*item, &h); err != nil {
		return err
	}
	inLog := map[string]int{}
	for _, m := range h.Messages {
		inLog[m.Data.Key]++
	}
	lost, twice := 0, 0
	for _, v := range st.Accepted {
		switch inLog[v.Key] {
		case 0:
			lost++
		case 1:
		default:
			twice++
		}
	}
	reasons := map[string]int64{}
	refusals.Range(func(k, v any) bool {
		reasons[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	report := map[string]any{
		"bidders": *bidders, "seconds": dur.Seconds(), "offered": offered.Load(), "publish_errors": failed.Load(),
		"refused": reasons, "let_through": let.Load(),
		"accepted": len(st.Accepted), "bid_log": len(h.Messages), "accepted_lost": lost, "accepted_twice": twice,
		"final_price": st.Price, "watcher_price": price.Load(), "watcher_bids": bidsSeen.Load(), "watcher_disconnects": watcherDrops.Load(),
		"boards_published": st.BoardsPublished, "boards_received": boards.Load(),
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	fmt.Println(string(b))
	if lost > 0 || twice > 0 || len(h.Messages) != len(st.Accepted) {
		return fmt.Errorf("the bid log does not match the accepted bids: %d lost, %d twice", lost, twice)
	}
	return nil
}

// place publishes one bid and returns the back end's reason when it
// refused it. A refusal the node says may be retried (the hook timed out,
// was busy or down) is tried again with the same key, a few times; an
// error that is not the back end's answer is returned.
func place(ctx context.Context, c *client.Client, ch string, amount int64, key string) (reason string, err error) {
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = c.Publish(pctx, ch, map[string]int64{"amount": amount}, client.WithKey(key), client.WithPriority(protocol.PriorityCritical))
		cancel()
		var se *client.ServerError
		switch {
		case err == nil:
			return "", nil
		case !errors.As(err, &se):
			return "", err
		case se.Retry && attempt < 5:
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		case se.Retry:
			return "", err
		default:
			return se.Reason, nil
		}
	}
}

// raise sets p to v when v is higher.
func raise(p *atomic.Int64, v int64) {
	for {
		cur := p.Load()
		if v <= cur || p.CompareAndSwap(cur, v) {
			return
		}
	}
}

func getJSON(url string, out any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
