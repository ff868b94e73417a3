package main

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRules(100, 1, 1, 2)
	r.Now = func() time.Time { return now }
	steps := []struct {
		bidder string
		offer  Offer
		ok     bool
		dup    bool
		code   int // of a refusal
		seq    int // of an acceptance
	}{
		{"ann", Offer{Amount: 100, Key: "k1"}, false, false, 409, 0}, // not above the start
		{"ann", Offer{Amount: 101, Key: "k2"}, true, false, 0, 1},
		{"ann", Offer{Amount: 101, Key: "k2"}, true, true, 0, 1},     // a resend: same verdict, no change
		{"ben", Offer{Amount: 150, Key: "k2"}, false, false, 409, 0}, // ann's key: refused, not judged
		{"ann", Offer{Amount: 105, Key: "k3"}, false, false, 429, 0}, // bucket of 2 spent
		{"ben", Offer{Amount: 103, Key: "k4"}, true, false, 0, 2},
		{"ben", Offer{Amount: 102, Key: "k5"}, false, false, 409, 0}, // below the price
		{"ben", Offer{Amount: 110, Key: ""}, false, false, 400, 0},   // no key
	}
	for i, s := range steps {
		v, dup := r.Decide(s.bidder, s.offer)
		if v.Accepted != s.ok || dup != s.dup || v.Code != s.code || v.Seq != s.seq {
			t.Fatalf("step %d %+v: got %+v dup %v, want accepted %v dup %v code %d seq %d", i, s.offer, v, dup, s.ok, s.dup, s.code, s.seq)
		}
		if !v.Accepted && v.Reason == "" {
			t.Fatalf("step %d: refused without a reason", i)
		}
	}
	now = now.Add(time.Second) // one token back
	if v, _ := r.Decide("ann", Offer{Amount: 104, Key: "k6"}); !v.Accepted {
		t.Fatalf("after a refill: %s", v.Reason)
	}
	r.Close()
	if v, _ := r.Decide("ben", Offer{Amount: 200, Key: "k7"}); v.Accepted {
		t.Fatal("accepted after close")
	}
	st := r.Standing()
	if st.Price != 104 || st.Leader != "ann" || len(st.Accepted) != 3 || st.Judged != 8 {
		t.Fatalf("standing %+v", st)
	}
}
