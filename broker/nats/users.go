package nats

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ferry-io/ferry/broker"
)

// Per-user connection bookkeeping, at a cost per call that does not grow
// with the number of connections the user holds.
//
// In the users bucket each connection is its own key,
// c.<user>.<conn> (a record: node, Since, expiry), and each user has a
// head, h.<user>: the count of its connections and the front, the
// frontSize oldest of them by (Since, conn id). Both are updated by
// compare-and-set (slot.go), so nodes racing for one user retry on what
// the other wrote. A connect writes its record and then the head (count
// + 1, into the front when older than the front's newest); a refresh
// rewrites only its record; a disconnect deletes its record and then
// updates the head. The connections to evict are the first count - keep
// of the front, each read once for its node.
//
// Expiry: every connection's record is rewritten by each refresh, and the
// bucket keeps one message per key in write order, so with the single ttl
// Ferry uses the user's first record in the stream expires first. A
// connect that finds the user over its limit (expired records still
// counted) reads that first record and deletes it while it has expired,
// at most expireBatch per call, before it counts again. A connect under
// the limit needs no such read: the live connections are fewer still.
//
// The front is a prefix of the user's connections in eviction order:
// removing any of them or adding an older one keeps it one. When it holds
// fewer than an eviction needs, it is refilled from the chunks: the order
// past the front as the last rebuild listed it, frontSize entries a key,
// skipping connections gone since (one read each). The head is rebuilt
// from a listing of the user's records (a read per record, a write per
// chunk) when there is no chunk left, when a connection was added inside
// the chunks' range (out of order by Since, so the chunks cannot hold it),
// when one the front names is gone (a node died between its two writes),
// when more than a front's worth is to be evicted at once, or when more
// than a batch expired at once. A user at its limit whose evicted
// connections leave one by one thus pays for one listing per the
// connections the previous one listed: O(1) amortized.

// frontSize is how many of a user's oldest connections its head names.
const frontSize = 32

// expireBatch is how many expired records one call deletes before it
// falls back to rebuilding the head.
const expireBatch = 64

// userHead is the value of a user's head key.
type userHead struct {
	N     int
	Front []frontEntry
	// The order past the front, as the last rebuild listed it, in chunks
	// of frontSize entries (keys q.<user>.<Gen>.<i>, i < Chunks); Next and
	// Off are where the front continues. W is the newest connection they
	// cover: unless Dirty, every counted connection up to W is in the
	// front or in the chunks from Next on (the chunks may also name
	// connections gone since, skipped when read). Dirty is set when a
	// connection in that range could not be placed (added out of order,
	// or pushed out of a full front): the next refill rebuilds instead.
	Gen          uint64
	Chunks, Next int
	Off          int
	W            frontEntry
	Dirty        bool
}

// frontEntry names one connection of the front.
type frontEntry struct {
	Conn  string
	Since int64 // unix milliseconds
}

// A head is stored as uvarints N, Gen, Chunks, Next, Off, Dirty (0 or 1),
// then W and the front's entries, each as varint Since, uvarint length of
// Conn and Conn; a chunk is its entries alone. Read and written on every
// connect and disconnect, a head is kept small and cheap to decode.

func appendEntries(buf []byte, es ...frontEntry) []byte {
	for _, e := range es {
		buf = binary.AppendVarint(buf, e.Since)
		buf = binary.AppendUvarint(buf, uint64(len(e.Conn)))
		buf = append(buf, e.Conn...)
	}
	return buf
}

// readEntries decodes the entries of buf.
func readEntries(buf []byte, into []frontEntry) ([]frontEntry, error) {
	for len(buf) > 0 {
		since, k := binary.Varint(buf)
		if k <= 0 {
			return nil, fmt.Errorf("%w: user head entry", errMalformed)
		}
		buf = buf[k:]
		l, k := binary.Uvarint(buf)
		if k <= 0 || l > uint64(len(buf)-k) {
			return nil, fmt.Errorf("%w: user head entry", errMalformed)
		}
		into = append(into, frontEntry{Since: since, Conn: string(buf[k : k+int(l)])})
		buf = buf[k+int(l):]
	}
	return into, nil
}

func (h userHead) marshal() []byte {
	buf := binary.AppendUvarint(nil, uint64(h.N))
	buf = binary.AppendUvarint(buf, h.Gen)
	buf = binary.AppendUvarint(buf, uint64(h.Chunks))
	buf = binary.AppendUvarint(buf, uint64(h.Next))
	buf = binary.AppendUvarint(buf, uint64(h.Off))
	dirty := uint64(0)
	if h.Dirty {
		dirty = 1
	}
	buf = binary.AppendUvarint(buf, dirty)
	buf = appendEntries(buf, h.W)
	return appendEntries(buf, h.Front...)
}

func (h *userHead) unmarshal(buf []byte) error {
	var nums [6]uint64
	for i := range nums {
		n, k := binary.Uvarint(buf)
		if k <= 0 || n > math.MaxInt32 && i != 1 {
			return fmt.Errorf("%w: user head", errMalformed)
		}
		nums[i], buf = n, buf[k:]
	}
	es, err := readEntries(buf, make([]frontEntry, 0, frontSize+1))
	if err != nil {
		return err
	}
	if len(es) == 0 || nums[5] > 1 {
		return fmt.Errorf("%w: user head", errMalformed)
	}
	*h = userHead{N: int(nums[0]), Gen: nums[1], Chunks: int(nums[2]), Next: int(nums[3]), Off: int(nums[4]), Dirty: nums[5] == 1, W: es[0], Front: es[1:]}
	return nil
}

func compareFront(a, b frontEntry) int {
	return cmp.Or(cmp.Compare(a.Since, b.Since), cmp.Compare(a.Conn, b.Conn))
}

// add counts a new connection and puts it in the front when it belongs
// there: before the front's newest, or anywhere while the front holds
// every connection and has room. One that belongs in the chunks' range
// but cannot be placed there marks the head Dirty.
func (h *userHead) add(e frontEntry) {
	all := len(h.Front) >= h.N && h.Next >= h.Chunks
	h.N = max(h.N, len(h.Front)) + 1
	covered := func(e frontEntry) bool { return h.Chunks > 0 && compareFront(e, h.W) <= 0 }
	i, _ := slices.BinarySearchFunc(h.Front, e, compareFront)
	if i == len(h.Front) && !(all && i < frontSize) {
		h.Dirty = h.Dirty || covered(e)
		return
	}
	h.Front = slices.Insert(h.Front, i, e)
	if len(h.Front) > frontSize {
		out := h.Front[frontSize]
		h.Front = h.Front[:frontSize]
		// The one pushed out is older than every chunk entry left, or
		// within the range the chunks cover: either way it is lost.
		h.Dirty = h.Dirty || h.Next < h.Chunks || covered(out)
	}
}

// remove uncounts a connection.
func (h *userHead) remove(conn string) {
	h.N = max(h.N-1, 0)
	h.Front = slices.DeleteFunc(h.Front, func(e frontEntry) bool { return e.Conn == conn })
}

func headKey(user string) string { return "h." + token(user) }
func chunkKey(user string, gen uint64, i int) string {
	return fmt.Sprintf("q.%s.%d.%d", token(user), gen, i)
}
func connKey(user, conn string) string { return "c." + token(user) + "." + token(conn) }

// connFilter is the subject of all the user's connection records.
func (b *Broker) connFilter(user string) string {
	return kvSubject(b.names.users, "c."+token(user)+".*")
}

// readHead returns user's head and the revision it was read at.
func (b *Broker) readHead(ctx context.Context, user string) (userHead, uint64, error) {
	var h userHead
	sl, err := b.readSlot(ctx, b.names.users, headKey(user))
	if err != nil || !sl.live {
		return h, sl.rev, err
	}
	if err := h.unmarshal(sl.val); err != nil {
		return userHead{}, 0, err
	}
	return h, sl.rev, nil
}

// writeHead writes h at base (deleting the key when h is empty); it
// returns errConflict when the head changed since base.
func (b *Broker) writeHead(ctx context.Context, user string, base uint64, h userHead) error {
	if h.N <= 0 && len(h.Front) == 0 {
		if base == 0 {
			return nil // nothing there, nothing to write
		}
		_, err := b.writeSlot(ctx, b.names.users, headKey(user), base, nil, true)
		return err
	}
	_, err := b.writeSlot(ctx, b.names.users, headKey(user), base, h.marshal(), false)
	return err
}

// updateHead applies change to user's head by compare-and-set, retrying
// lost races, and returns the head written.
func (b *Broker) updateHead(ctx context.Context, user string, change func(*userHead)) (userHead, error) {
	for range maxCASAttempts {
		h, rev, err := b.readHead(ctx, user)
		if err != nil {
			return h, err
		}
		change(&h)
		if err = b.writeHead(ctx, user, rev, h); !errors.Is(err, errConflict) {
			return h, err
		}
	}
	return userHead{}, fmt.Errorf("%w: lost %d races for user %s", errConflict, maxCASAttempts, user)
}

// uncount removes conn from user's head.
func (b *Broker) uncount(ctx context.Context, user, conn string) error {
	_, err := b.updateHead(ctx, user, func(h *userHead) { h.remove(conn) })
	return err
}

// readConn returns the record of conn and the slot it was read from.
func (b *Broker) readConn(ctx context.Context, key string) (record, slot, error) {
	sl, err := b.readSlot(ctx, b.names.users, key)
	var r record
	if err != nil || !sl.live {
		return r, sl, err
	}
	if err := json.Unmarshal(sl.val, &r); err != nil {
		return r, sl, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return r, sl, nil
}

// dropConn deletes the record at key provided it is still at rev, calls
// then (the uncounting, when the record was counted), and purges the key's
// messages up to the deletion, so that the bucket keeps nothing for it (a
// deletion marker would stay first in the user's records; one left by a
// failed purge is purged by the next expireConns). It returns errConflict,
// without calling then, when the record changed since rev.
func (b *Broker) dropConn(ctx context.Context, key string, rev uint64, then func() error) error {
	del, err := b.writeSlot(ctx, b.names.users, key, rev, nil, true)
	if err != nil {
		return err
	}
	if err := then(); err != nil {
		return err
	}
	return b.purgeKey(ctx, key, del)
}

// purgeKey removes the messages of key up to and including seq; a later
// write to the key (a connection added again meanwhile) stays.
func (b *Broker) purgeKey(ctx context.Context, key string, seq uint64) error {
	s, err := b.bucket(ctx, b.names.users)
	if err != nil {
		return err
	}
	return s.Purge(ctx, jetstream.WithPurgeSubject(kvSubject(b.names.users, key)), jetstream.WithPurgeSequence(seq+1))
}

// firstConn returns the user's first connection message in the stream at
// or after seq (the oldest written), or nil when there is none.
func (b *Broker) firstConn(ctx context.Context, user string, seq uint64) (*jetstream.RawStreamMsg, error) {
	s, err := b.bucket(ctx, b.names.users)
	if err != nil {
		return nil, err
	}
	m, err := retryRead(ctx, b.readAttempt(), func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		return s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(b.connFilter(user)))
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, err
}

// keyOf is the key of a message of the users bucket.
func (b *Broker) keyOf(m *jetstream.RawStreamMsg) string {
	return m.Subject[len(kvSubject(b.names.users, "")):]
}

// connOf decodes a connection message; ok is false for a deletion marker.
func connOf(m *jetstream.RawStreamMsg) (r record, ok bool, err error) {
	if op := m.Header.Get(hdrKVOperation); op == "DEL" || op == "PURGE" {
		return r, false, nil
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return r, false, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return r, true, nil
}

// expireConns deletes the user's expired records, oldest written first,
// and uncounts them; it reports false when it stopped after expireBatch
// with more possibly left.
func (b *Broker) expireConns(ctx context.Context, user string) (bool, error) {
	now := time.Now().UnixMilli()
	for range expireBatch {
		m, err := b.firstConn(ctx, user, 1)
		if err != nil || m == nil {
			return true, err
		}
		r, live, err := connOf(m)
		if err != nil {
			return true, err
		}
		key := b.keyOf(m)
		if !live { // a deletion whose purge did not happen
			if err := b.purgeKey(ctx, key, m.Sequence); err != nil {
				return true, err
			}
			continue
		}
		if r.Exp > now {
			return true, nil
		}
		err = b.dropConn(ctx, key, m.Sequence, func() error { return b.uncount(ctx, user, r.Conn) })
		if err != nil && !errors.Is(err, errConflict) { // a conflict: refreshed or dropped by another node meanwhile
			return true, err
		}
	}
	return false, nil
}

// AddUserConn records ref for user until ttl passes and returns the user's
// live connections beyond the keep newest, oldest first (equal Since: by
// Conn); keep <= 0 returns none. See the top of this file for the cost.
func (b *Broker) AddUserConn(ctx context.Context, user string, ref broker.ConnRef, ttl time.Duration, keep int) ([]broker.ConnRef, error) {
	if err := b.checkOpen(); err != nil {
		return nil, err
	}
	exp, err := b.expiry(ttl)
	if err != nil {
		return nil, fmt.Errorf("nats broker: add user conn %q: %w", user, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	out, err := b.addUserConn(ctx, user, ref, exp, keep)
	if err != nil {
		return nil, b.fail(fmt.Sprintf("add user conn %q", user), err)
	}
	return out, nil
}

func (b *Broker) addUserConn(ctx context.Context, user string, ref broker.ConnRef, exp int64, keep int) ([]broker.ConnRef, error) {
	head, err := b.putConn(ctx, user, ref, exp)
	if err != nil || keep <= 0 {
		return nil, err
	}
	if head == nil { // a refresh: the head did not change
		h, _, err := b.readHead(ctx, user)
		if err != nil {
			return nil, err
		}
		head = &h
	}
	if head.N <= keep {
		// Expired records are still counted, so the live ones are not over
		// the limit either.
		return nil, nil
	}
	swept, err := b.expireConns(ctx, user)
	if err != nil {
		return nil, err
	}
	for attempt := 0; swept && attempt < maxCASAttempts; attempt++ {
		h, _, err := b.readHead(ctx, user)
		if err != nil {
			return nil, err
		}
		need := h.N - keep
		if need <= 0 {
			return nil, nil
		}
		if need <= len(h.Front) {
			out, ok, err := b.frontRefs(ctx, user, h.Front[:need])
			if err != nil || ok {
				return out, err
			}
			break // a connection of the front is gone: rebuild
		}
		if need > frontSize {
			break // more than a front's worth at once: rebuild
		}
		refilled, err := b.refillFront(ctx, user)
		if err != nil {
			return nil, err
		}
		swept = refilled
	}
	all, err := b.rebuildHead(ctx, user)
	if err != nil || len(all) <= keep {
		return nil, err
	}
	return all[:len(all)-keep], nil
}

// putConn writes the record of ref, keeping the Since of a known
// connection, and counts a new one; it returns the head written then, or
// nil for a known connection (a refresh).
func (b *Broker) putConn(ctx context.Context, user string, ref broker.ConnRef, exp int64) (*userHead, error) {
	key := connKey(user, ref.Conn)
	for range maxCASAttempts {
		old, sl, err := b.readConn(ctx, key)
		if err != nil {
			return nil, err
		}
		r := record{Conn: ref.Conn, Node: ref.Node, Since: ref.Since.UnixMilli(), Exp: exp}
		if sl.live {
			r.Since = old.Since // a connection added again keeps its Since
		} else if ref.Since.IsZero() {
			r.Since = time.Now().UnixMilli()
		}
		val, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		err = b.writeConn(ctx, key, sl.rev, val)
		if errors.Is(err, errConflict) {
			continue // dropped as expired, or refreshed, meanwhile
		}
		if err != nil || sl.live {
			return nil, err
		}
		h, err := b.updateHead(ctx, user, func(h *userHead) { h.add(frontEntry{Conn: ref.Conn, Since: r.Since}) })
		return &h, err
	}
	return nil, fmt.Errorf("%w: lost %d races for %s", errConflict, maxCASAttempts, key)
}

// writeConn writes a connection record at base (see slot.go). A record
// that was dropped is purged, so its key starts again at revision 0, and
// the message id "<key>:0" of its first write may still be in the
// stream's deduplication window: a write at base 0 gets a fresh id. Only
// the node holding the connection creates its key, so no other write at
// base 0 can race it.
func (b *Broker) writeConn(ctx context.Context, key string, base uint64, val []byte) error {
	if base > 0 {
		_, err := b.writeSlot(ctx, b.names.users, key, base, val, false)
		return err
	}
	msg := &nats.Msg{Subject: kvSubject(b.names.users, key), Data: val}
	_, err := b.casPublish(ctx, msg, 0, key+":0:"+randomHex(8))
	return err
}

// frontRefs reads the records of the connections in front; ok is false
// when one of them is gone or expired (the head must be rebuilt).
func (b *Broker) frontRefs(ctx context.Context, user string, front []frontEntry) ([]broker.ConnRef, bool, error) {
	now := time.Now().UnixMilli()
	out := make([]broker.ConnRef, 0, len(front))
	for _, e := range front {
		r, sl, err := b.readConn(ctx, connKey(user, e.Conn))
		if err != nil {
			return nil, false, err
		}
		if !sl.live || r.Exp <= now {
			return nil, false, nil
		}
		out = append(out, broker.ConnRef{Conn: e.Conn, Node: r.Node, Since: time.UnixMilli(r.Since)})
	}
	return out, true, nil
}

// refillFront moves the next connections of the chunks into the front,
// up to frontSize, skipping those gone since the chunk was written. It
// reports false when there is nothing to move from (no chunk left, the
// head is Dirty, or the chunk is gone): the head must be rebuilt.
func (b *Broker) refillFront(ctx context.Context, user string) (bool, error) {
	for range maxCASAttempts {
		h, rev, err := b.readHead(ctx, user)
		if err != nil || h.Dirty || h.Next >= h.Chunks {
			return false, err
		}
		sl, err := b.readSlot(ctx, b.names.users, chunkKey(user, h.Gen, h.Next))
		if err != nil || !sl.live {
			return false, err
		}
		chunk, err := readEntries(sl.val, nil)
		if err != nil {
			return false, err
		}
		for h.Off < len(chunk) && len(h.Front) < frontSize {
			e := chunk[h.Off]
			h.Off++
			if slices.ContainsFunc(h.Front, func(f frontEntry) bool { return f.Conn == e.Conn }) {
				continue
			}
			_, cs, err := b.readConn(ctx, connKey(user, e.Conn))
			if err != nil {
				return false, err
			}
			if cs.live {
				h.Front = append(h.Front, e)
			}
		}
		if h.Off >= len(chunk) {
			h.Next, h.Off = h.Next+1, 0
		}
		if err := b.writeHead(ctx, user, rev, h); !errors.Is(err, errConflict) {
			return err == nil, err
		}
	}
	return false, fmt.Errorf("%w: lost %d races refilling user %s", errConflict, maxCASAttempts, user)
}

// rebuildHead lists every record of user, deletes the expired ones,
// writes the head anew from the rest (the oldest frontSize in the front,
// the others in chunks under a new generation) and returns them in
// eviction order. It costs a read per record and a write per chunk: the
// slow path, taken when the front and the chunks cannot answer, so at
// most once per the connections the previous rebuild listed.
func (b *Broker) rebuildHead(ctx context.Context, user string) ([]broker.ConnRef, error) {
	b.userRebuilds.Add(1)
	for range maxCASAttempts {
		old, rev, err := b.readHead(ctx, user)
		if err != nil {
			return nil, err
		}
		all, err := b.listConns(ctx, user)
		if err != nil {
			return nil, err
		}
		h := userHead{N: len(all), Gen: binary.BigEndian.Uint64(randomBytes(8))}
		for i, c := range all {
			e := frontEntry{Conn: c.Conn, Since: c.Since.UnixMilli()}
			if i < frontSize {
				h.Front = append(h.Front, e)
				continue
			}
			if (i-frontSize)%frontSize == 0 {
				h.Chunks++
			}
			h.W = e
		}
		for i := range h.Chunks {
			lo := frontSize * (i + 1)
			var val []byte
			for _, c := range all[lo:min(lo+frontSize, len(all))] {
				val = appendEntries(val, frontEntry{Conn: c.Conn, Since: c.Since.UnixMilli()})
			}
			// Under a generation nobody else uses: a plain write.
			if _, err := b.js.Publish(ctx, kvSubject(b.names.users, chunkKey(user, h.Gen, i)), val); err != nil {
				return nil, err
			}
		}
		err = b.writeHead(ctx, user, rev, h)
		if errors.Is(err, errConflict) {
			b.dropChunks(ctx, user, h)
			continue
		}
		if err != nil {
			return nil, err
		}
		b.dropChunks(ctx, user, old)
		return all, nil
	}
	return nil, fmt.Errorf("%w: lost %d races rebuilding user %s", errConflict, maxCASAttempts, user)
}

// dropChunks purges the chunks of h's generation. Best effort: chunks
// nobody reads any more are dropped with the bucket's age limit anyway.
func (b *Broker) dropChunks(ctx context.Context, user string, h userHead) {
	if h.Chunks == 0 {
		return
	}
	s, err := b.bucket(ctx, b.names.users)
	if err != nil {
		return
	}
	subj := kvSubject(b.names.users, fmt.Sprintf("q.%s.%d.*", token(user), h.Gen))
	_ = s.Purge(ctx, jetstream.WithPurgeSubject(subj))
}

// listConns returns the live connections of user in eviction order,
// deleting the expired records it meets. It reads them in batches through
// a short-lived consumer (one request per record would not fit a user with
// tens of thousands in Config.Timeout).
func (b *Broker) listConns(ctx context.Context, user string) ([]broker.ConnRef, error) {
	s, err := b.bucket(ctx, b.names.users)
	if err != nil {
		return nil, err
	}
	cons, done, err := b.readConsumer(ctx, s, b.connFilter(user))
	if err != nil {
		return nil, err
	}
	defer done()
	now := time.Now().UnixMilli()
	var all []broker.ConnRef
	var gone []*jetstream.RawStreamMsg // expired records and deletion markers
	for {
		batch, err := cons.FetchNoWait(historyBatch)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			raw := &jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: meta.Sequence.Stream, Header: m.Headers(), Data: m.Data()}
			r, live, err := connOf(raw)
			if err != nil {
				return nil, err
			}
			if live && r.Exp > now {
				all = append(all, broker.ConnRef{Conn: r.Conn, Node: r.Node, Since: time.UnixMilli(r.Since)})
			} else {
				gone = append(gone, raw)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	for _, m := range gone {
		var err error
		if m.Header.Get(hdrKVOperation) == "" {
			// Uncounted: the head is written anew from the listing.
			err = b.dropConn(ctx, b.keyOf(m), m.Sequence, func() error { return nil })
		} else {
			err = b.purgeKey(ctx, b.keyOf(m), m.Sequence)
		}
		if err != nil && !errors.Is(err, errConflict) {
			return nil, err
		}
	}
	slices.SortFunc(all, func(a, b broker.ConnRef) int {
		return cmp.Or(a.Since.Compare(b.Since), cmp.Compare(a.Conn, b.Conn))
	})
	return all, nil
}

// RemoveUserConn removes conn from user's connections.
func (b *Broker) RemoveUserConn(ctx context.Context, user string, conn string) error {
	if err := b.checkOpen(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.removeUserConn(ctx, user, conn); err != nil {
		return b.fail(fmt.Sprintf("remove user conn %q", user), err)
	}
	return nil
}

func (b *Broker) removeUserConn(ctx context.Context, user, conn string) error {
	key := connKey(user, conn)
	for range maxCASAttempts {
		_, sl, err := b.readConn(ctx, key)
		if err != nil || !sl.live {
			return err
		}
		err = b.dropConn(ctx, key, sl.rev, func() error { return b.uncount(ctx, user, conn) })
		if !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: lost %d races for %s", errConflict, maxCASAttempts, key)
}
