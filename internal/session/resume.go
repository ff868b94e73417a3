package session

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

// snapshot is a session's state as kept in the broker's KV for resumption
// on any node (encoded as snapshot.go says; the JSON names are those of the
// earlier JSON form, still read).
type snapshot struct {
	ID        string `json:"id"`
	User      string `json:"user"`
	TokenHash string `json:"token_hash"` // hashToken of the resume token: the token itself is never stored
	Node      string `json:"node"`
	Conn      string `json:"conn"`
	Live      bool   `json:"live"`            // the connection was open when this was written
	Acked     bool   `json:"acked,omitempty"` // the client acknowledges: offsets are what it acked
	// Gen is the record's generation: 0 for a new session, one more at
	// each resume. The connection that holds generation g owns the
	// session while the record says g; one that finds a later generation
	// lost it (it was taken over while its node was frozen or cut off)
	// and must neither write the record nor deliver (see fenced).
	Gen uint32 `json:"gen,omitempty"`
	// Seq is the last seq handed out; Unacked maps the seqs after the
	// last ack to channel offsets (HTTP sessions, so that another node
	// can read the client's Last-Event-ID and go on numbering).
	Seq     uint64        `json:"seq,omitempty"`
	Unacked []snapshotAck `json:"unacked,omitempty"`
	Subs    []snapshotSub `json:"subs,omitempty"`
}

type snapshotAck struct {
	Seq     uint64 `json:"s"`
	Channel string `json:"c"`
	Offset  uint64 `json:"o"`
}

// applyResumeSeq moves the snapshot's positions to what the client says it
// received (seq), using the unacked seq->offset map.
func (snap *snapshot) applyResumeSeq(seq uint64) {
	for _, a := range snap.Unacked {
		if a.Seq > seq {
			continue
		}
		for i := range snap.Subs {
			if snap.Subs[i].Channel == a.Channel && a.Offset > snap.Subs[i].Offset {
				snap.Subs[i].Offset = a.Offset
			}
		}
	}
	snap.Unacked = nil
	snap.Seq = max(snap.Seq, seq)
}

type snapshotSub struct {
	Channel  string `json:"ch"`
	Epoch    string `json:"epoch"`
	Offset   uint64 `json:"offset"`
	Presence bool   `json:"presence,omitempty"`
}

func snapshotKey(id string) string { return "ferry:session:" + id }

// hashToken is what a snapshot keeps of a resume token: the first 128 bits
// of its SHA-256, base64url (22 characters; a node keeps a live snapshot
// for every connection, and with the memory broker in its own heap).
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// tokenMatches reports, in constant time, whether tok is the resume token
// whose hash a snapshot keeps. Snapshots written before the hash was
// shortened keep the whole SHA-256 in hex.
func tokenMatches(hash, tok string) bool {
	want := hashToken(tok)
	if len(hash) == 2*sha256.Size {
		h := sha256.Sum256([]byte(tok))
		want = hex.EncodeToString(h[:])
	}
	return subtle.ConstantTimeCompare([]byte(hash), []byte(want)) == 1
}

// takeoverWait bounds how long a resume waits for the old connection to
// hand its state over.
const takeoverWait = 3 * time.Second

// loadSnapshot returns the state of the session the client asks to resume,
// or nil when it cannot be resumed (unknown, expired, another user's, wrong
// token). A session whose connection is still open is taken over: the old
// connection is closed with 4016 and its final state is used. adopt skips
// the token check (see Adopt).
func (s *Session) loadSnapshot(ctx context.Context, r *protocol.Resume, user string, adopt bool) *snapshot {
	env := s.env
	if env.KV == nil || r.Session == "" {
		return nil
	}
	snap, err := s.readSnapshot(ctx, r.Session)
	if err != nil {
		return nil
	}
	tokenOK := adopt || tokenMatches(snap.TokenHash, r.Token)
	if snap.User != user || !tokenOK {
		env.Logger.Warn("resume refused: token or user mismatch", slog.String("session", r.Session), slog.String("user", user))
		return nil
	}
	if !snap.Live {
		return snap
	}
	// Take the session over from its live connection.
	if snap.Node == env.NodeID {
		if old, ok := env.Registry.ByConn(snap.Conn); ok && old.sessionID() == snap.ID {
			old.Close(protocol.CloseSessionTakenOver, "session taken over by a resumed connection")
			select {
			case <-old.Done():
			case <-time.After(takeoverWait):
			}
		}
	} else {
		if !env.Node.Alive(ctx, snap.Node) {
			// The node that held it keeps no liveness record: killed,
			// or frozen (SIGSTOP, a stalled VM) for longer than
			// node.LivenessTTL. Its answer would come, if at all, when
			// it wakes: resume from what it last saved. The new
			// generation this connection writes fences the old one off
			// (fenced), and the client drops what it gets twice by
			// offset.
			env.Logger.Info("resume: the session's node is not alive; resuming from its last snapshot",
				slog.String("session", r.Session), slog.String("old_node", snap.Node))
			return snap
		}
		err := env.Node.Control(ctx, broker.Control{Node: snap.Node, Kind: broker.ControlTakeover, User: user, Conn: snap.Conn,
			Code: protocol.CloseSessionTakenOver, Reason: "session taken over by a resumed connection"})
		if errors.Is(err, broker.ErrNoNode) {
			// The node that held it is gone (killed, say): nobody will
			// hand anything over, so resume from what it last saved
			// instead of waiting for an answer that cannot come.
			return snap
		}
	}
	deadline := env.now().Add(takeoverWait)
	for i := 1; ; i++ {
		next, err := s.readSnapshot(ctx, r.Session)
		if err == nil && !next.Live {
			return next
		}
		// Every 10th poll (200 ms), whether the old node's record
		// lapsed meanwhile (it froze just before the client came back).
		gone := snap.Node != env.NodeID && i%10 == 0 && !env.Node.Alive(ctx, snap.Node)
		if gone || env.now().After(deadline) || ctx.Err() != nil {
			// The old node did not answer: resume from what was saved.
			if err == nil {
				return next
			}
			return snap
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Session) readSnapshot(ctx context.Context, id string) (*snapshot, error) {
	b, err := s.env.KV.Get(ctx, snapshotKey(id))
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(b)
}

// saveSnapshot writes the session's state, unless the record moved on to a
// later generation (fenced): a live connection that finds so is closed
// with 4016. live says whether the connection is still open: its
// subscriptions are then the session's own; a closed session's are subs
// (what Closed took from it).
func (s *Session) saveSnapshot(ctx context.Context, live bool, subs []*subscription) {
	s.writeSnapshot(ctx, live, subs, true)
}

// writeSnapshot is saveSnapshot; fence false skips the generation check
// (right after connect, which wrote the generation it read plus one).
func (s *Session) writeSnapshot(ctx context.Context, live bool, subs []*subscription, fence bool) {
	env := s.env
	if env.KV == nil {
		return
	}
	if fence && s.fenced(ctx) {
		env.Logger.Info("session moved to another connection while this node did not answer: not saving, closing",
			slog.String("conn", s.connID), slog.String("session", s.sessionID()))
		if live {
			s.Close(protocol.CloseSessionTakenOver, "session taken over by a resumed connection")
		}
		return
	}
	s.mu.Lock()
	if live && s.state != stateConnected {
		// A live save that began before the connection closed: Closed
		// took the subscriptions and its release writes the final
		// state; written after it, this would mark the session live
		// again, with no channels.
		s.mu.Unlock()
		return
	}
	snap := snapshot{ID: s.id, User: s.user, TokenHash: s.tokenHash, Node: env.NodeID, Conn: s.connID, Live: live, Acked: s.everAcked, Gen: s.gen}
	if snap.ID == "" {
		s.mu.Unlock()
		return
	}
	if s.puller != nil {
		snap.Seq = s.queue.LastSeq()
		if s.acks != nil {
			for i := 0; i < s.acks.n; i++ {
				e := s.acks.buf[(s.acks.head+i)%len(s.acks.buf)]
				snap.Unacked = append(snap.Unacked, snapshotAck{Seq: e.seq, Channel: e.channel, Offset: e.offset})
			}
		}
	}
	if live {
		subs = s.subs
	}
	for _, sub := range subs {
		off := sub.written
		if s.everAcked {
			off = sub.acked
		}
		if sub.recovering && sub.epoch == "" {
			// Not started yet (its position is not known): a
			// recovering subscription that started has its position
			// in written/acked, and leaving it out would lose the
			// channel for the next resume (a session adopted, then
			// drained or killed while its replay ran).
			continue
		}
		snap.Subs = append(snap.Subs, snapshotSub{Channel: sub.ch, Epoch: sub.epoch, Offset: off, Presence: sub.presence})
	}
	snap.Subs = s.appendRestoringLocked(snap.Subs)
	s.mu.Unlock()
	b := encodeSnapshot(nil, &snap)
	if err := env.KV.Set(ctx, snapshotKey(snap.ID), b, env.Limits.SessionTTL); err != nil {
		env.Logger.Warn("save session", slog.String("session", snap.ID), slog.Any("err", err))
	}
}

// fenced reports whether the session's record names a later generation
// than this connection's: the session was resumed elsewhere while this
// connection's node did not answer (frozen, or cut off from the broker),
// so this connection no longer owns it. A record that cannot be read
// (expired, the broker down) does not fence: the write that follows is
// the one that decides.
//
// The check and the write that follows it are two steps: a resume that
// lands between them is overwritten once with this connection's older
// positions. That costs the client duplicates (dropped by offset), never a
// loss, and the resumed connection's next save puts its generation back.
func (s *Session) fenced(ctx context.Context) bool {
	s.mu.Lock()
	id, gen := s.id, s.gen
	s.mu.Unlock()
	if id == "" {
		return false
	}
	cur, err := s.readSnapshot(ctx, id)
	// Compared as a signed difference: the generation may wrap.
	return err == nil && int32(cur.Gen-gen) > 0
}

// Fence closes the connection (4016) if its session moved to a later
// generation: the node calls it on every connection when its liveness
// record lapsed (it was frozen or cut off longer than node.LivenessTTL),
// before the connection can deliver into a session another node owns now.
func (s *Session) Fence(ctx context.Context) {
	s.mu.Lock()
	connected := s.state == stateConnected
	s.mu.Unlock()
	if connected && s.fenced(ctx) {
		env := s.env
		env.Logger.Info("session moved to another connection while this node did not answer: closing",
			slog.String("conn", s.connID), slog.String("session", s.sessionID()))
		s.Close(protocol.CloseSessionTakenOver, "session taken over by a resumed connection")
	}
}

// appendRestoringLocked appends to subs the snapshot subscriptions that
// the running restore has not reached yet (they are the session's as much
// as the ones it holds: leaving them out of a save loses those channels
// for the next resume), except channels subs already has.
func (s *Session) appendRestoringLocked(subs []snapshotSub) []snapshotSub {
	if s.extra == nil {
		return subs
	}
	n := len(subs)
next:
	for _, r := range s.extra.restoring {
		for _, have := range subs[:n] {
			if have.Channel == r.Channel {
				continue next
			}
		}
		subs = append(subs, r)
	}
	return subs
}

// restoredLocked records that restore is done with the first i of the
// snapshot's subscriptions (added to the session, or refused). Once the
// session is closed nothing changes: the subscriptions Closed took and
// the rest still in restoring are together what its last save keeps.
func (s *Session) restoredLocked(subs []snapshotSub, i int) {
	if s.state != stateConnected || s.extra == nil {
		return
	}
	if i >= len(subs) {
		s.extra.restoring = nil
		s.dropExtraLocked()
		return
	}
	s.extra.restoring = subs[i:]
}

// restore re-subscribes a resumed session to its channels, replaying what
// it missed on each. Until it added a channel, the channel is in the
// session's restoring (set at connect), which every save keeps.
func (s *Session) restore(ctx context.Context, snap *snapshot) {
	defer func() {
		s.mu.Lock()
		s.restoredLocked(snap.Subs, len(snap.Subs))
		s.mu.Unlock()
	}()
	for i, ss := range snap.Subs {
		rules, err := s.permit(ss.Channel, false)
		if err != nil {
			s.mu.Lock()
			s.restoredLocked(snap.Subs, i+1)
			s.mu.Unlock()
			s.reply(&protocol.Unsubscribed{Channel: ss.Channel, Reason: protocol.AsError(err).Reason})
			continue
		}
		sub := &subscription{ch: ss.Channel, recovering: true, presence: ss.Presence && rules.JoinLeave, rate: float32(rules.Rate)}
		// Its position is known from the start (the snapshot's): a
		// takeover while it starts (an HTTP session whose next request
		// lands on another node) saves it with that position instead of
		// leaving it out as not started, which would lose the channel.
		sub.epoch, sub.written, sub.acked = ss.Epoch, ss.Offset, ss.Offset
		s.mu.Lock()
		if s.state != stateConnected {
			s.mu.Unlock()
			return
		}
		s.restoredLocked(snap.Subs, i+1)
		if s.subFor(ss.Channel) != nil {
			s.mu.Unlock()
			continue
		}
		s.addSubLocked(sub)
		s.updateRateLocked()
		s.mu.Unlock()
		since := &broker.Position{Offset: ss.Offset, Epoch: ss.Epoch}
		if _, err := s.startSubscription(ctx, 0, ss.Channel, sub, since, rules); err != nil {
			s.mu.Lock()
			if s.removeSubLocked(sub) {
				s.updateRateLocked()
			}
			s.mu.Unlock()
			s.reply(&protocol.Unsubscribed{Channel: ss.Channel, Reason: protocol.AsError(err).Reason})
		}
	}
}

// release gives back what a closed session held outside itself and keeps
// its state for resumption.
func (s *Session) release(subs []*subscription, code int) {
	env := s.env
	// Not the node's Lifetime: what a closed session releases and saves
	// (its state for resumption on another node) must still be done when
	// it is closed by a shutdown.
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	for _, sub := range subs {
		s.dropSubscription(ctx, sub.ch, sub)
	}
	if env.Users != nil && s.user != "" {
		if err := env.Users.RemoveUserConn(ctx, s.user, s.connID); err != nil && !errors.Is(err, broker.ErrClosed) {
			env.Logger.Warn("remove user connection", slog.String("user", s.user), slog.Any("err", err))
		}
	}
	switch code {
	case protocol.CloseUnauthorized, protocol.CloseForbidden:
		// Nothing to resume for a client that was refused or thrown out.
		if env.KV != nil && s.id != "" {
			_ = env.KV.Delete(ctx, snapshotKey(s.id))
		}
		return
	}
	s.saveSnapshot(ctx, false, subs)
}

// sessionID is the session's id ("" before connect).
func (s *Session) sessionID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}
