package main

import (
	"fmt"
	"sync"
	"time"
)

// Offer is what a bidder publishes on offers:ITEM.
type Offer struct {
	// Amount in whole currency units.
	Amount int64 `json:"amount"`
	// Key is the bid's idempotency key, also its id in the bid log.
	Key string `json:"key"`
}

// Verdict is the back end's answer to one offer.
type Verdict struct {
	Key      string `json:"key"`
	Bidder   string `json:"bidder"`
	Amount   int64  `json:"amount"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"`
}

// Rules decide whether a bid stands. Decide is the one place that knows
// the auction's rules, written as the publish hook will call it: the
// bidder (from the connection's token), the offer, and the answer. When
// Ferry's publish hook lands, the hook handler calls Decide and returns
// its reason as the refusal, and the relay in main.go goes away.
//
// mu guards everything below it; Decide is called for one offer at a time
// in the order of the offers channel, so the price only rises.
type Rules struct {
	// MinStep is how much a bid must beat the current price by.
	MinStep int64
	// Rate and Burst bound each bidder's bids (token bucket).
	Rate  float64
	Burst float64
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	price   int64
	leader  string
	closed  bool
	seen    map[string]Verdict // by key: a retried offer gets the same verdict
	buckets map[string]*bucket
	board   map[string]int64 // best bid per bidder
	taken   []Verdict        // accepted bids, in order
	judged  int              // offers decided (repeats not counted)
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewRules returns rules for an auction starting at start.
func NewRules(start, minStep int64, rate, burst float64) *Rules {
	return &Rules{MinStep: minStep, Rate: rate, Burst: burst, Now: time.Now, price: start,
		seen: make(map[string]Verdict), buckets: make(map[string]*bucket), board: make(map[string]int64)}
}

// Decide judges bidder's offer; a repeated key gets the first verdict
// again (with dup true) and changes nothing.
func (r *Rules) Decide(bidder string, o Offer) (v Verdict, dup bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.seen[o.Key]; ok {
		return prev, true
	}
	r.judged++
	v = Verdict{Key: o.Key, Bidder: bidder, Amount: o.Amount}
	switch {
	case o.Key == "" || len(o.Key) > 64:
		v.Reason = "a bid needs a key of 1 to 64 characters"
	case r.closed:
		v.Reason = "the auction is closed"
	case !r.take(bidder):
		v.Reason = fmt.Sprintf("too many bids: at most %.0f a second", r.Rate)
	case o.Amount < r.price+r.MinStep:
		v.Reason = fmt.Sprintf("too low: the price is %d, bid at least %d", r.price, r.price+r.MinStep)
	default:
		v.Accepted = true
		r.price, r.leader = o.Amount, bidder
		r.board[bidder] = o.Amount
		r.taken = append(r.taken, v)
	}
	r.seen[o.Key] = v
	return v, false
}

// take spends one token of bidder's bucket, refilled at Rate up to Burst.
func (r *Rules) take(bidder string) bool {
	now := r.Now()
	b := r.buckets[bidder]
	if b == nil {
		b = &bucket{tokens: r.Burst, at: now}
		r.buckets[bidder] = b
	}
	b.tokens = min(r.Burst, b.tokens+now.Sub(b.at).Seconds()*r.Rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Close ends the auction: later offers are refused.
func (r *Rules) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Standing is the auction's state: price, leader, the best bid of each
// bidder, and every accepted bid in order.
type Standing struct {
	Accepted []Verdict        `json:"accepted"`
	Judged   int              `json:"judged"`
	Price    int64            `json:"price"`
	Leader   string           `json:"leader"`
	Closed   bool             `json:"closed"`
	Board    map[string]int64 `json:"board"`
}

// Standing returns a copy of the state.
func (r *Rules) Standing() Standing {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := make(map[string]int64, len(r.board))
	for k, v := range r.board {
		b[k] = v
	}
	return Standing{Accepted: append([]Verdict{}, r.taken...), Judged: r.judged, Price: r.price, Leader: r.leader, Closed: r.closed, Board: b}
}
