// Command auction is the live-auction example's back end. Bidders publish
// their bids straight on bids:ITEM; the node asks this program's publish
// hook (POST /ferry/publish, hook.go) about each one before it reaches the
// broker: Rules.Decide accepts it (the bid log then carries the verdict:
// bidder, amount, key, sequence number) or refuses it with a reason the
// bidder's publish fails with. After each accepted bid the program
// publishes the price on price:ITEM (conflated) and the leaderboard on
// board:ITEM (droppable, conflated) through the server API. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/examples/internal/demo"
)

func main() {
	var item, secret string
	var start, step int64
	var rate, burst float64
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&item, "item", "lot1", "the item on sale (channel suffix)")
		fs.Int64Var(&start, "start", 100, "starting price")
		fs.Int64Var(&step, "step", 1, "smallest raise")
		fs.Float64Var(&rate, "bid-rate", 5, "bids per second per bidder (token bucket rate)")
		fs.Float64Var(&burst, "bid-burst", 10, "token bucket size per bidder")
		fs.StringVar(&secret, "hooks-secret", os.Getenv("FERRY_HOOKS_SECRET"), "the node's hooks.secret, which signs the publish hook's requests (default $FERRY_HOOKS_SECRET)")
	}
	demo.Main("auction", "examples/auction/web", flags, func(ctx context.Context, o *demo.Options, mux *http.ServeMux) (func(), error) {
		switch {
		case rate <= 0 || burst < 1 || step < 1:
			return nil, errors.New("--bid-rate must be > 0, --bid-burst >= 1, --step >= 1")
		case secret == "":
			return nil, errors.New("no hooks secret: set FERRY_HOOKS_SECRET or --hooks-secret to the node's hooks.secret (the publish hook answers only signed requests)")
		}
		a := newAuction(item, secret, NewRules(start, step, rate, burst), &demo.API{URL: o.Ferry, Key: o.APIKey})
		if err := a.openingPrice(ctx); err != nil {
			return nil, err
		}
		a.routes(mux)
		go a.announce(ctx)
		return nil, nil
	})
}

// auction is the back end's state: the rules, and what announces the
// standing after a change.
type auction struct {
	item   string
	secret string // hooks.secret: the key of Ferry-Signature
	rules  *Rules
	api    *demo.API
	log    *slog.Logger
	// Now is the clock the signatures are checked against (tests set it).
	now func() time.Time

	// changed holds one token when the standing changed since announce
	// last read it (capacity 1: changes while a publish is out coalesce).
	changed chan struct{}
	boards  atomic.Int64 // leaderboards published
}

func newAuction(item, secret string, rules *Rules, api *demo.API) *auction {
	return &auction{item: item, secret: secret, rules: rules, api: api, now: time.Now,
		log: slog.New(slog.NewJSONHandler(os.Stderr, nil)), changed: make(chan struct{}, 1)}
}

// routes adds the publish hook, GET /state and POST /close to mux.
func (a *auction) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+hookPath, a.publishHook)
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { demo.WriteJSON(w, a.state()) })
	mux.HandleFunc("POST /close", func(w http.ResponseWriter, r *http.Request) {
		a.rules.Close()
		demo.WriteJSON(w, a.state())
	})
}

// stateReply is GET /state: the standing, and how many leaderboards went
// out.
type stateReply struct {
	Standing
	BoardsPublished int64 `json:"boards_published"`
}

func (a *auction) state() stateReply {
	return stateReply{Standing: a.rules.Standing(), BoardsPublished: a.boards.Load()}
}

// poke tells announce that the standing changed (without waiting).
func (a *auction) poke() {
	select {
	case a.changed <- struct{}{}:
	default: // a token is there already: announce will read the newest standing
	}
}

// openingPrice publishes the starting price, so that pages know where
// bidding starts; a node that does not answer fails the start.
func (a *auction) openingPrice(ctx context.Context) error {
	return a.publishPrice(ctx, a.rules.Standing())
}

func (a *auction) publishPrice(ctx context.Context, st Standing) error {
	_, err := a.api.Publish(ctx, demo.PublishRequest{Channel: "price:" + a.item, Data: map[string]any{"price": st.Price, "leader": st.Leader}, Conflate: "price"})
	return err
}

// announce publishes the price and the leaderboard after each change,
// until ctx ends. It is the only goroutine that publishes them, one
// publish at a time, each with the standing read after the change it
// follows: the price only rises, so the last price published is the
// highest accepted bid, whatever order the hook calls ran in. A failed
// price publish is retried (with the newest standing); the leaderboard is
// droppable (and conflated: a slow page gets the newest one) and tried
// once.
func (a *auction) announce(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.changed:
		}
		for attempt := 1; ; attempt++ {
			err := a.publishPrice(ctx, a.rules.Standing())
			if err == nil || ctx.Err() != nil {
				break
			}
			a.log.Error("publish the price", "attempt", attempt, "err", err)
			select { // back off a little before the retry, at most 2 s
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(min(attempt, 20)) * 100 * time.Millisecond):
			}
		}
		st := a.rules.Standing()
		if _, err := a.api.Publish(ctx, demo.PublishRequest{Channel: "board:" + a.item, Data: leaderboard(st.Board), Priority: "droppable", Conflate: "board"}); err != nil {
			a.log.Warn("publish the leaderboard", "err", err)
			continue
		}
		a.boards.Add(1)
	}
}

type entry struct {
	Bidder string `json:"bidder"`
	Best   int64  `json:"best"`
}

// leaderboard is the ten best bidders, best first.
func leaderboard(best map[string]int64) []entry {
	out := make([]entry, 0, len(best))
	for b, v := range best {
		out = append(out, entry{b, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Best != out[j].Best {
			return out[i].Best > out[j].Best
		}
		return out[i].Bidder < out[j].Bidder
	})
	return out[:min(len(out), 10)]
}
