package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
)

// A snapshot is written at every connect, again now and then while the
// connection lives, and at its end; with the memory broker every idle
// connection's snapshot sits in the node's own heap. So it is stored in a
// compact binary form (a third of the JSON's size, and cheaper to write):
//
//	byte     snapshotV2
//	byte     flags: 1 live, 2 acked
//	uvarint  gen
//	string   id, user, token hash, node, conn
//	uvarint  seq
//	uvarint  count, then count times: uvarint seq, string channel, uvarint offset   (Unacked)
//	uvarint  count, then count times: string channel, string epoch, uvarint offset, byte presence (Subs)
//
// where a string is its length (uvarint) and its bytes. Snapshots written
// by earlier versions are still read: snapshotV1 (the same without gen,
// which reads as 0) and JSON (they begin with '{').

// snapshotV1 and snapshotV2 are the first byte of a binary snapshot
// (snapshotV2 carries the generation; it is the one written).
const (
	snapshotV1 = 1
	snapshotV2 = 2
)

const (
	snapLive  = 1 << 0
	snapAcked = 1 << 1
)

// errBadSnapshot is returned for bytes that are not a snapshot.
var errBadSnapshot = errors.New("session: malformed snapshot")

// maxSnapshotItems bounds the counts a decoded snapshot may announce (a
// session has at most a few thousand subscriptions and unacked frames).
const maxSnapshotItems = 1 << 20

// encodeSnapshot appends the binary form of snap to dst, growing dst once.
func encodeSnapshot(dst []byte, snap *snapshot) []byte {
	dst = slices.Grow(dst, snapshotSize(snap))
	flags := byte(0)
	if snap.Live {
		flags |= snapLive
	}
	if snap.Acked {
		flags |= snapAcked
	}
	dst = append(dst, snapshotV2, flags)
	dst = binary.AppendUvarint(dst, uint64(snap.Gen))
	for _, s := range [...]string{snap.ID, snap.User, snap.TokenHash, snap.Node, snap.Conn} {
		dst = appendString(dst, s)
	}
	dst = binary.AppendUvarint(dst, snap.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(snap.Unacked)))
	for _, a := range snap.Unacked {
		dst = binary.AppendUvarint(dst, a.Seq)
		dst = appendString(dst, a.Channel)
		dst = binary.AppendUvarint(dst, a.Offset)
	}
	dst = binary.AppendUvarint(dst, uint64(len(snap.Subs)))
	for _, s := range snap.Subs {
		dst = appendString(dst, s.Channel)
		dst = appendString(dst, s.Epoch)
		dst = binary.AppendUvarint(dst, s.Offset)
		p := byte(0)
		if s.Presence {
			p = 1
		}
		dst = append(dst, p)
	}
	return dst
}

// snapshotSize is at least the bytes encodeSnapshot writes for snap
// (every uvarint counted at its longest).
func snapshotSize(snap *snapshot) int {
	const uv = binary.MaxVarintLen64
	// gen, five string lengths, seq and two counts.
	n := 2 + 9*uv + len(snap.ID) + len(snap.User) + len(snap.TokenHash) + len(snap.Node) + len(snap.Conn)
	for _, a := range snap.Unacked {
		n += 3*uv + len(a.Channel)
	}
	for _, s := range snap.Subs {
		n += 3*uv + 1 + len(s.Channel) + len(s.Epoch)
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeSnapshot reads a snapshot in either form.
func decodeSnapshot(b []byte) (*snapshot, error) {
	if len(b) > 0 && b[0] == '{' {
		var snap snapshot
		if err := json.Unmarshal(b, &snap); err != nil {
			return nil, err
		}
		return &snap, nil
	}
	d := snapDecoder{b: b}
	v := d.byte()
	if v != snapshotV1 && v != snapshotV2 {
		return nil, errBadSnapshot
	}
	flags := d.byte()
	snap := &snapshot{Live: flags&snapLive != 0, Acked: flags&snapAcked != 0}
	if v == snapshotV2 {
		g := d.uvarint()
		if g > math.MaxUint32 {
			return nil, errBadSnapshot
		}
		snap.Gen = uint32(g)
	}
	for _, p := range [...]*string{&snap.ID, &snap.User, &snap.TokenHash, &snap.Node, &snap.Conn} {
		*p = d.string()
	}
	snap.Seq = d.uvarint()
	if n := d.count(); n > 0 {
		snap.Unacked = make([]snapshotAck, n)
		for i := range snap.Unacked {
			a := &snap.Unacked[i]
			a.Seq = d.uvarint()
			a.Channel = d.string()
			a.Offset = d.uvarint()
		}
	}
	if n := d.count(); n > 0 {
		snap.Subs = make([]snapshotSub, n)
		for i := range snap.Subs {
			s := &snap.Subs[i]
			s.Channel = d.string()
			s.Epoch = d.string()
			s.Offset = d.uvarint()
			s.Presence = d.byte() != 0
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil, errBadSnapshot
	}
	return snap, nil
}

// snapDecoder reads the binary form; after the first error (bad) every
// read returns a zero value.
type snapDecoder struct {
	b   []byte
	bad bool
}

func (d *snapDecoder) byte() byte {
	if d.bad || len(d.b) == 0 {
		d.bad = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *snapDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *snapDecoder) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads an item count, which cannot exceed the bytes left (every
// item takes at least one).
func (d *snapDecoder) count() int {
	n := d.uvarint()
	if d.bad || n > maxSnapshotItems || n > uint64(len(d.b)) {
		d.bad = true
		return 0
	}
	return int(n)
}
