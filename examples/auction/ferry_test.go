package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/examples/internal/demo"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/protocol"
)

// TestAuctionOnFerry runs the auction on a real node configured with the
// app's own namespaces.json: the node asks the auction's publish hook
// about every bid. A refused bid fails at the bidder with the back end's
// reason; a retried one is judged once and published once; bids placed
// at once by several bidders all reach the bid log exactly once, carry
// the sequence number of their decision, and the price ends at the
// highest accepted bid.
func TestAuctionOnFerry(t *testing.T) {
	a, srv := newTestAuction(t, NewRules(100, 1, 1000, 1000))
	ns, err := os.ReadFile("namespaces.json")
	if err != nil {
		t.Fatal(err)
	}
	node := ferrytest.Start(t, "auction", ferrytest.Options{Binary: ferryBin.Path(t), Env: []string{
		"FERRY_NAMESPACES=" + strings.ReplaceAll(string(ns), "{{APP}}", srv.Listener.Addr().String()),
		"FERRY_HOOKS_SECRET=" + testSecret,
		"FERRY_CLIENT_PUBLISH_RATE=0",
	}})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	a.api = &demo.API{URL: node.BaseURL(), Key: ferrytest.DefaultAPIKey, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	announced := make(chan struct{})
	t.Cleanup(func() { cancel(); <-announced })
	if err := a.openingPrice(ctx); err != nil {
		close(announced)
		t.Fatal(err)
	}
	go func() {
		defer close(announced)
		a.announce(ctx)
	}()

	dial := func(user string) *client.Client {
		t.Helper()
		tok, err := auth.Mint([]byte(ferrytest.DefaultSecret), user, time.Hour, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(context.Background(), node.BaseURL(), client.Config{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	place := func(c *client.Client, amount int64, key string) (client.PublishResult, error) {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return c.Publish(pctx, "bids:lot1", map[string]int64{"amount": amount}, client.WithKey(key), client.WithPriority(protocol.PriorityCritical))
	}

	ann, ben := dial("ann"), dial("ben")
	if _, err := place(ann, 101, "ann-1"); err != nil {
		t.Fatalf("ann's first bid: %v", err)
	}
	_, err = place(ben, 101, "ben-1")
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(se.Reason, "too low: the price is 101, bid at least 102") {
		t.Fatalf("ben's losing bid: %v, want error 409 with the reason", err)
	}
	if res, err := place(ann, 101, "ann-1"); err != nil || !res.Duplicate {
		t.Fatalf("ann's retried bid: %+v, %v; want a duplicate", res, err)
	}
	if st := a.rules.Standing(); st.Judged != 2 {
		t.Fatalf("judged %d bids, want 2 (the retry is judged once)", st.Judged)
	}

	// Bidders at once, each a little above the price it last saw.
	const bidders, each = 5, 12
	var wg sync.WaitGroup
	for b := range bidders {
		c := dial(fmt.Sprintf("b%d", b))
		wg.Go(func() {
			for i := range each {
				_, err := place(c, a.rules.Standing().Price+1+int64(i%2), fmt.Sprintf("b%d-%d", b, i))
				if se := (*client.ServerError)(nil); err != nil && (!errors.As(err, &se) || se.Code != 409) {
					t.Errorf("bidder %d, bid %d: %v", b, i, err)
				}
			}
		})
	}
	wg.Wait()

	st := a.rules.Standing()
	var h struct {
		Messages []struct {
			Data Verdict `json:"data"`
			From string  `json:"from"`
		} `json:"messages"`
	}
	if err := a.api.Get(ctx, "/v1/api/history?channel=bids:lot1", &h); err != nil {
		t.Fatal(err)
	}
	var log []Verdict
	for _, m := range h.Messages {
		if m.From != m.Data.Bidder {
			t.Errorf("bid %+v was published by %q", m.Data, m.From)
		}
		log = append(log, m.Data)
	}
	sort.Slice(log, func(i, j int) bool { return log[i].Seq < log[j].Seq })
	if got, want := fmt.Sprint(log), fmt.Sprint(st.Accepted); got != want {
		t.Fatalf("the bid log, by seq:\n%s\nthe accepted bids:\n%s", got, want)
	}
	top := st.Accepted[len(st.Accepted)-1].Amount
	if st.Price != top {
		t.Fatalf("price %d, highest accepted bid %d", st.Price, top)
	}
	wait.Within(t, 20*time.Second, "the published price to be the highest accepted bid", func() bool {
		time.Sleep(20 * time.Millisecond)
		var p struct {
			Messages []struct {
				Data struct{ Price int64 } `json:"data"`
			} `json:"messages"`
		}
		err := a.api.Get(ctx, "/v1/api/history?channel=price:lot1", &p)
		return err == nil && len(p.Messages) > 0 && p.Messages[len(p.Messages)-1].Data.Price == top
	})
}
