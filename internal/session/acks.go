package session

// ackRing remembers which channel offset each written session sequence
// number carried, so that an ack can be turned into per-channel positions
// for resumption. It is bounded: when it is full the oldest entries are
// forgotten, which only makes a resumed session replay a little more (the
// client deduplicates by offset).
type ackRing struct {
	buf  []ackEntry
	head int // index of the oldest entry
	n    int
	out  []ackEntry
}

type ackEntry struct {
	seq     uint64
	channel string
	offset  uint64
}

const ackRingMax = 4096

func (r *ackRing) add(seq uint64, ch string, off uint64) {
	if r.n == len(r.buf) {
		if len(r.buf) < ackRingMax {
			nb := make([]ackEntry, max(16, 2*len(r.buf)))
			for i := 0; i < r.n; i++ {
				nb[i] = r.buf[(r.head+i)%len(r.buf)]
			}
			r.buf, r.head = nb, 0
		} else {
			r.head = (r.head + 1) % len(r.buf) // forget the oldest
			r.n--
		}
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ackEntry{seq: seq, channel: ch, offset: off}
	r.n++
}

// ackUpTo removes and returns the entries with seq <= upTo. The returned
// slice is valid until the next call.
func (r *ackRing) ackUpTo(upTo uint64) []ackEntry {
	r.out = r.out[:0]
	for r.n > 0 {
		e := &r.buf[r.head]
		if e.seq > upTo {
			break
		}
		r.out = append(r.out, *e)
		*e = ackEntry{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
	}
	return r.out
}
