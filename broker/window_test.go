package broker

import "testing"

func TestWindow(t *testing.T) {
	at := func(o uint64, e string) *Position { return &Position{Offset: o, Epoch: e} }
	// A stream at offset 10 in epoch "e" retaining offsets 6..10.
	const offset, first, count = 10, 6, 5
	tests := []struct {
		name     string
		q        HistoryQuery
		lo, hi   int
		complete bool
	}{
		{"all", HistoryQuery{}, 0, 5, true},
		{"limit", HistoryQuery{Limit: 2}, 0, 2, true},
		{"position only", HistoryQuery{Limit: -1}, 0, 0, true},
		{"since zero, trimmed", HistoryQuery{Since: at(0, "x")}, 0, 5, false},
		{"other epoch", HistoryQuery{Since: at(7, "old")}, 0, 5, false},
		{"ahead", HistoryQuery{Since: at(11, "e")}, 5, 5, false},
		{"since latest", HistoryQuery{Since: at(10, "e")}, 5, 5, true},
		{"since 7", HistoryQuery{Since: at(7, "e")}, 2, 5, true},
		{"since 7 limit 1", HistoryQuery{Since: at(7, "e"), Limit: 1}, 2, 3, true},
		{"since 5: nothing lost", HistoryQuery{Since: at(5, "e")}, 0, 5, true},
		{"since 3: 4 and 5 lost", HistoryQuery{Since: at(3, "e")}, 0, 5, false},
	}
	for _, tc := range tests {
		lo, hi, complete := tc.q.Window(offset, "e", first, count)
		if lo != tc.lo || hi != tc.hi || complete != tc.complete {
			t.Errorf("%s: Window = (%d, %d, %v), want (%d, %d, %v)", tc.name, lo, hi, complete, tc.lo, tc.hi, tc.complete)
		}
	}
	// An empty stream: since 0 is complete, a position of a lost stream
	// is not.
	if _, _, c := (HistoryQuery{Since: at(0, "")}).Window(0, "", 1, 0); !c {
		t.Error("since 0 of an empty stream is not complete")
	}
	if _, _, c := (HistoryQuery{Since: at(5, "gone")}).Window(0, "", 1, 0); c {
		t.Error("since a lost stream is complete")
	}
}
