// Command auction is the live-auction example's back end: it judges the
// bids that bidders publish on offers:ITEM and publishes the outcome:
// accepted bids on bids:ITEM (critical, keyed by the bid's idempotency
// key), the price on price:ITEM (conflated), the leaderboard on
// board:ITEM (droppable), every verdict on verdicts:ITEM. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/examples/internal/demo"
)

func main() {
	var item string
	var start, step int64
	var rate, burst float64
	flags := func(fs *flag.FlagSet) {
		fs.StringVar(&item, "item", "lot1", "the item on sale (channel suffix)")
		fs.Int64Var(&start, "start", 100, "starting price")
		fs.Int64Var(&step, "step", 1, "smallest raise")
		fs.Float64Var(&rate, "bid-rate", 5, "bids per second per bidder (token bucket rate)")
		fs.Float64Var(&burst, "bid-burst", 10, "token bucket size per bidder")
	}
	demo.Main("auction", "examples/auction/web", flags, func(ctx context.Context, o *demo.Options, mux *http.ServeMux) (func(), error) {
		if rate <= 0 || burst < 1 || step < 1 {
			return nil, errors.New("--bid-rate must be > 0, --bid-burst >= 1, --step >= 1")
		}
		a := &auction{
			item:  item,
			rules: NewRules(start, step, rate, burst),
			api:   &demo.API{URL: o.Ferry, Key: o.APIKey},
			log:   slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		}
		return a.start(ctx, o, mux)
	})
}

// start follows the offers and adds the routes GET /state and POST /close.
func (a *auction) start(ctx context.Context, o *demo.Options, mux *http.ServeMux) (func(), error) {
	tok, err := o.BackendToken("auction", "offers:*")
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(ctx, o.Ferry, client.Config{Token: tok, ClientName: "auction-backend/1"})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.Ferry, err)
	}
	// Offers are replayed from their history after a reconnect, and the
	// subscription hands them over in offset order, once each.
	sub, err := c.Subscribe(ctx, "offers:"+a.item, client.WithBuffer(4096))
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	// The opening price, so that pages know where bidding starts.
	st := a.rules.Standing()
	if _, err := a.api.Publish(ctx, demo.PublishRequest{Channel: "price:" + a.item, Data: map[string]any{"price": st.Price, "leader": ""}, Conflate: "price"}); err != nil {
		_ = c.Close()
		return nil, err
	}
	go a.relay(ctx, sub)
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) { demo.WriteJSON(w, a.rules.Standing()) })
	mux.HandleFunc("POST /close", func(w http.ResponseWriter, r *http.Request) {
		a.rules.Close()
		demo.WriteJSON(w, a.rules.Standing())
	})
	return func() { _ = c.Close() }, nil
}

type auction struct {
	item  string
	rules *Rules
	api   *demo.API
	log   *slog.Logger
}

// relay judges each offer and publishes the outcome. A publish that fails
// is retried with the same idempotency key, so it lands once.
func (a *auction) relay(ctx context.Context, sub *client.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-sub.Messages():
			if !ok {
				return
			}
			var o Offer
			if err := json.Unmarshal(m.Data, &o); err != nil {
				a.log.Warn("bad offer", "from", m.From, "offset", m.Offset, "err", err)
				continue
			}
			v, _ := a.rules.Decide(m.From, o)
			a.publish(ctx, v)
		}
	}
}

func (a *auction) publish(ctx context.Context, v Verdict) {
	reqs := []demo.PublishRequest{{Channel: "verdicts:" + a.item, Data: v, Key: "verdict-" + v.Key, Priority: "critical"}}
	if v.Accepted {
		st := a.rules.Standing()
		reqs = append(reqs,
			demo.PublishRequest{Channel: "bids:" + a.item, Data: v, Key: v.Key, Priority: "critical"},
			demo.PublishRequest{Channel: "price:" + a.item, Data: map[string]any{"price": st.Price, "leader": st.Leader}, Conflate: "price"},
			demo.PublishRequest{Channel: "board:" + a.item, Data: leaderboard(st.Board), Priority: "droppable"},
		)
	}
	for _, req := range reqs {
		for attempt := 0; ; attempt++ {
			_, err := a.api.Publish(ctx, req)
			if err == nil || ctx.Err() != nil {
				break
			}
			if req.Priority == "droppable" || attempt == 20 {
				a.log.Error("publish failed", "channel", req.Channel, "err", err)
				break
			}
			select { // back off a little before the retry
			case <-ctx.Done():
			case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
			}
		}
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
