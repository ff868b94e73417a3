package history

import (
	"strings"
	"testing"
)

// run builds a history: publishes a1..a5 at offsets 1..5 of epoch "e1" on
// "ch", subscribes clients c1 and c2 from offset 0, and lets the case add
// deliveries and gaps.
func run(t *testing.T, o Options, build func(r *Recorder, deliverAll func(client string, skip ...uint64))) Report {
	t.Helper()
	r := New()
	keys := []string{"a1", "a2", "a3", "a4", "a5"}
	for i, k := range keys {
		r.Published(Publish{Channel: "ch", Key: k, Position: Position{"e1", uint64(i + 1)}, Hash: Hash([]byte(`"` + k + `"`))})
	}
	r.Subscribed("c1", "ch", Position{"e1", 0})
	r.Subscribed("c2", "ch", Position{"e1", 0})
	deliverAll := func(client string, skip ...uint64) {
		for i, k := range keys {
			off := uint64(i + 1)
			skipped := false
			for _, s := range skip {
				skipped = skipped || s == off
			}
			if !skipped {
				r.Delivered(Delivery{Client: client, Channel: "ch", Position: Position{"e1", off}, Key: k, Hash: Hash([]byte(`"` + k + `"`))})
			}
		}
	}
	build(r, deliverAll)
	return r.Check(o)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		o     Options
		build func(r *Recorder, all func(string, ...uint64))
		ok    bool
		want  func(ChannelReport) bool
		about string
	}{
		{
			name:  "clean",
			build: func(r *Recorder, all func(string, ...uint64)) { all("c1"); all("c2") },
			ok:    true,
			want:  func(c ChannelReport) bool { return c.Published == 5 && c.Delivered == 10 },
		},
		{
			name:  "lost",
			build: func(r *Recorder, all func(string, ...uint64)) { all("c1"); all("c2", 3) },
			want:  func(c ChannelReport) bool { return c.Lost == 1 },
			about: `c2 never got "a3" at 3@e1`,
		},
		{
			name: "duplicated position",
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2")
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 5}, Key: "a5", Hash: Hash([]byte(`"a5"`))})
			},
			want:  func(c ChannelReport) bool { return c.Duplicated == 1 && c.Reordered == 0 },
			about: "c2 got 5@e1 twice",
		},
		{
			name: "publish applied twice",
			build: func(r *Recorder, all func(string, ...uint64)) {
				r.Published(Publish{Channel: "ch", Key: "a5", Position: Position{"e1", 6}, Hash: Hash([]byte(`"a5"`))})
				all("c1")
				all("c2")
				r.Delivered(Delivery{Client: "c1", Channel: "ch", Position: Position{"e1", 6}, Key: "a5", Hash: Hash([]byte(`"a5"`))})
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 6}, Key: "a5", Hash: Hash([]byte(`"a5"`))})
			},
			want:  func(c ChannelReport) bool { return c.Duplicated == 3 },
			about: `publish "a5" applied twice`,
		},
		{
			name: "publish reapplied in a new epoch after data loss",
			build: func(r *Recorder, all func(string, ...uint64)) {
				r.Published(Publish{Channel: "ch", Key: "a5", Position: Position{"e2", 1}, Hash: Hash([]byte(`"a5"`))})
				all("c1")
				all("c2")
				for _, c := range []string{"c1", "c2"} {
					r.Delivered(Delivery{Client: c, Channel: "ch", Position: Position{"e2", 1}, Key: "a5", Hash: Hash([]byte(`"a5"`))})
				}
			},
			ok:   true,
			want: func(c ChannelReport) bool { return c.Reapplied == 3 && c.Duplicated == 0 && c.Lost == 0 },
		},
		{
			name: "reordered",
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2", 2)
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 2}, Key: "a2", Hash: Hash([]byte(`"a2"`))})
			},
			want:  func(c ChannelReport) bool { return c.Reordered == 1 && c.Lost == 0 },
			about: "c2 got 2@e1 after 5@e1",
		},
		{
			name: "offset reused with other data",
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2", 4)
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 4}, Key: "b1", Hash: Hash([]byte(`"b1"`))})
			},
			want:  func(c ChannelReport) bool { return c.Mismatched == 1 },
			about: `c2 got "b1"`,
		},
		{
			name: "gap in the same epoch within the window is unjustified",
			o:    Options{Window: 100},
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2", 4, 5)
				r.Recovered(Gap{Client: "c2", Channel: "ch", After: Position{"e1", 3}, Epoch: "e1", Missed: 2})
			},
			want:  func(c ChannelReport) bool { return c.Unjustified == 1 && c.Lost == 0 && c.Excused == 2 },
			about: "recovered: false after 3@e1",
		},
		{
			name: "gap beyond the window is counted, not a failure",
			o:    Options{Window: 1},
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2", 4, 5)
				r.Recovered(Gap{Client: "c2", Channel: "ch", After: Position{"e1", 3}, Epoch: "e1", Missed: 2})
			},
			ok:   true,
			want: func(c ChannelReport) bool { return c.RecoveredFalse == 1 && c.Excused == 2 },
		},
		{
			name: "new epoch after a gap",
			o:    Options{Window: 100},
			build: func(r *Recorder, all func(string, ...uint64)) {
				r.Published(Publish{Channel: "ch", Key: "b1", Position: Position{"e2", 1}, Hash: Hash([]byte(`"b1"`))})
				r.Published(Publish{Channel: "ch", Key: "b2", Position: Position{"e2", 2}, Hash: Hash([]byte(`"b2"`))})
				all("c1")
				all("c2", 5)
				r.Delivered(Delivery{Client: "c1", Channel: "ch", Position: Position{"e2", 1}, Key: "b1", Hash: Hash([]byte(`"b1"`))})
				r.Delivered(Delivery{Client: "c1", Channel: "ch", Position: Position{"e2", 2}, Key: "b2", Hash: Hash([]byte(`"b2"`))})
				r.Recovered(Gap{Client: "c2", Channel: "ch", After: Position{"e1", 4}, Epoch: "e2", Missed: 2})
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e2", 2}, Key: "b2", Hash: Hash([]byte(`"b2"`))})
			},
			ok:   true,
			want: func(c ChannelReport) bool { return c.RecoveredFalse == 1 && c.Excused == 2 && c.Lost == 0 },
		},
		{
			name: "a delivery nobody published",
			build: func(r *Recorder, all func(string, ...uint64)) {
				all("c1")
				all("c2")
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 9}, Key: "zz", Hash: Hash([]byte(`"zz"`))})
			},
			want:  func(c ChannelReport) bool { return c.Mismatched == 1 },
			about: "which nobody published",
		},
		{
			name: "an attempted publish may show up",
			build: func(r *Recorder, all func(string, ...uint64)) {
				r.Attempted("ch", "zz")
				all("c1")
				all("c2")
				r.Delivered(Delivery{Client: "c2", Channel: "ch", Position: Position{"e1", 6}, Key: "zz", Hash: Hash([]byte(`"zz"`))})
			},
			ok:   true,
			want: func(c ChannelReport) bool { return c.Mismatched == 0 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := run(t, tt.o, tt.build)
			if rep.OK() != tt.ok {
				t.Fatalf("OK() = %v, want %v; report:\n%s", rep.OK(), tt.ok, rep)
			}
			if !tt.want(rep.Total) {
				t.Fatalf("unexpected counts:\n%s", rep)
			}
			if tt.about != "" && !strings.Contains(rep.String(), tt.about) {
				t.Fatalf("report does not mention %q:\n%s", tt.about, rep)
			}
		})
	}
}

func TestHashCompactsJSON(t *testing.T) {
	if Hash([]byte(`{"a": 1}`)) != Hash([]byte(`{"a":1}`)) {
		t.Fatal("spacing changes the hash")
	}
	if Hash([]byte(`{"a":1}`)) == Hash([]byte(`{"a":2}`)) {
		t.Fatal("different payloads hash the same")
	}
}

func TestSubscribedKeepsTheFirstStart(t *testing.T) {
	r := New()
	r.Published(Publish{Channel: "ch", Key: "a1", Position: Position{"e1", 1}})
	r.Published(Publish{Channel: "ch", Key: "a2", Position: Position{"e1", 2}})
	r.Subscribed("c", "ch", Position{"e1", 0})
	r.Subscribed("c", "ch", Position{"e1", 1}) // a re-subscription
	r.Delivered(Delivery{Client: "c", Channel: "ch", Position: Position{"e1", 2}, Key: "a2"})
	if rep := r.Check(Options{}); rep.Total.Lost != 1 {
		t.Fatalf("a re-subscription moved the start:\n%s", rep)
	}
}

func TestClientCounts(t *testing.T) {
	rep := run(t, Options{}, func(r *Recorder, all func(string, ...uint64)) { all("c1"); all("c2", 2, 3) })
	if len(rep.Clients) != 2 {
		t.Fatalf("clients: %+v", rep.Clients)
	}
	c1, c2 := rep.Clients[0], rep.Clients[1]
	if c1.Channel != "c1" || c1.Delivered != 5 || c1.Lost != 0 || c2.Channel != "c2" || c2.Delivered != 3 || c2.Lost != 2 {
		t.Fatalf("per-client counts: %+v %+v", c1, c2)
	}
}
