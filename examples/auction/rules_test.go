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
	}{
		{"ann", Offer{Amount: 100, Key: "k1"}, false, false}, // not above the start
		{"ann", Offer{Amount: 101, Key: "k2"}, true, false},
		{"ann", Offer{Amount: 101, Key: "k2"}, true, true},   // a resend: same verdict, no change
		{"ann", Offer{Amount: 105, Key: "k3"}, false, false}, // bucket of 2 spent
		{"ben", Offer{Amount: 103, Key: "k4"}, true, false},
		{"ben", Offer{Amount: 102, Key: "k5"}, false, false}, // below the price
		{"ben", Offer{Amount: 110, Key: ""}, false, false},   // no key
	}
	for i, s := range steps {
		v, dup := r.Decide(s.bidder, s.offer)
		if v.Accepted != s.ok || dup != s.dup {
			t.Fatalf("step %d %+v: accepted %v dup %v (%s), want %v %v", i, s.offer, v.Accepted, dup, v.Reason, s.ok, s.dup)
		}
		if !v.Accepted && !dup && v.Reason == "" {
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
