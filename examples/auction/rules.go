package main

import (
	"fmt"
	"sync"
	"time"
)

// Offer is a bid as the publish hook sees it: the data a bidder publishes
// on bids:ITEM ({"amount": N}) and the publish's idempotency key.
type Offer struct {
	// Amount in whole currency units.
	Amount int64 `json:"amount"`
	// Key is the publish's idempotency key (not the client's data: the
	// key Ferry deduplicates by), also the bid's id in the bid log.
	Key string `json:"-"`
}

// Verdict is the back end's answer to one offer. An accepted one is what
// the bid log (bids:ITEM) carries instead of the bidder's data.
type Verdict struct {
	Key      string `json:"key"`
	Bidder   string `json:"bidder"`
	Amount   int64  `json:"amount"`
	Accepted bool   `json:"accepted"`
	// Seq numbers the accepted bids from 1 in the order they were
	// decided: the bid log's order (pages sort by it; see README.md).
	Seq int `json:"seq,omitempty"`
	// Code and Reason say why a bid was refused; Code is the error code
	// the bidder's publish fails with (400-599).
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// The refusal codes (the publish's error code at the bidder).
const (
	codeBadBid   = 400 // no key, or not {"amount": N > 0}
	codeForbid   = 403 // no bidder (anonymous), or the auction is closed
	codeConflict = 409 // too low, or another bidder's key
	codeTooMany  = 429 // over the bidder's token bucket
)

// Rules decide whether a bid stands. Decide is the one place that knows
// the auction's rules; the publish hook (hook.go) calls it with the
// bidder (the connection's user), the offer, and answers with its
// verdict.
//
// mu guards everything below it. The node calls the hook concurrently
// (one call per publish in flight); Decide takes mu for the whole
// decision, so bids are decided one at a time, the price only rises, and
// Seq numbers the accepted bids in the order of their decisions.
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

// Decide judges bidder's offer; a repeated key of the same bidder gets the
// first verdict again (with dup true) and changes nothing. A key another
// bidder used is refused and not remembered.
func (r *Rules) Decide(bidder string, o Offer) (v Verdict, dup bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.seen[o.Key]; ok {
		if prev.Bidder == bidder {
			return prev, true
		}
		return Verdict{Key: o.Key, Bidder: bidder, Amount: o.Amount, Code: codeConflict, Reason: "that key belongs to another bid: use a fresh key per bid"}, false
	}
	r.judged++
	v = Verdict{Key: o.Key, Bidder: bidder, Amount: o.Amount}
	switch {
	case o.Key == "" || len(o.Key) > 64:
		v.Code, v.Reason = codeBadBid, "a bid needs a key of 1 to 64 characters"
	case bidder == "":
		v.Code, v.Reason = codeForbid, "sign in to bid"
	case o.Amount <= 0:
		v.Code, v.Reason = codeBadBid, `a bid is {"amount": N} with N > 0`
	case r.closed:
		v.Code, v.Reason = codeForbid, "the auction is closed"
	case !r.take(bidder):
		v.Code, v.Reason = codeTooMany, fmt.Sprintf("too many bids: at most %.0f a second", r.Rate)
	case o.Amount < r.price+r.MinStep:
		v.Code, v.Reason = codeConflict, fmt.Sprintf("too low: the price is %d, bid at least %d", r.price, r.price+r.MinStep)
	default:
		v.Accepted, v.Seq = true, len(r.taken)+1
		r.price, r.leader = o.Amount, bidder
		r.board[bidder] = o.Amount
		r.taken = append(r.taken, v)
	}
	if o.Key != "" {
		r.seen[o.Key] = v
	}
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
