package history

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Position is a place in a channel's stream.
type Position struct {
	Epoch  string
	Offset uint64
}

func (p Position) String() string { return fmt.Sprintf("%d@%s", p.Offset, p.Epoch) }

// Publish is one publish the server accepted.
type Publish struct {
	Channel string
	// Key identifies the publish (its idempotency key, or any id unique
	// per publish call); it must not be empty.
	Key string
	Position
	// Hash is the payload's Hash.
	Hash string
}

// Delivery is one message handed to an application.
type Delivery struct {
	Client  string
	Channel string
	Position
	// Key is the publish's key as read from the payload ("" if unknown).
	Key string
	// Hash is the payload's Hash.
	Hash string
}

// Gap is a recovered: false the server answered a client with.
type Gap struct {
	Client  string
	Channel string
	// After is the last position the client had delivered.
	After Position
	// Epoch is the stream's epoch now.
	Epoch string
	// Missed is how many messages the server says are lost.
	Missed uint64
}

// Hash returns a short hash of a JSON payload, compacted first so that
// different encodings of one value (a MessagePack round trip, spacing)
// hash the same. Bytes that are not JSON are hashed as they are.
func Hash(data []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, data) == nil {
		data = b.Bytes()
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// subscription is where one client's subscription to a channel started.
type subscription struct {
	client, channel string
	from            Position
}

// Recorder collects a history. The zero value is not usable; call New.
type Recorder struct {
	mu         sync.Mutex
	pubs       []Publish
	attempted  map[string]bool // keys of publishes with an unknown outcome
	deliveries []Delivery
	subs       []subscription
	gaps       []Gap
}

// New returns an empty Recorder.
func New() *Recorder {
	return &Recorder{attempted: map[string]bool{}}
}

// Published records an accepted publish.
func (r *Recorder) Published(p Publish) {
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.mu.Unlock()
}

// Attempted records a publish whose outcome is unknown (the call failed).
func (r *Recorder) Attempted(channel, key string) {
	r.mu.Lock()
	r.attempted[channel+"\x00"+key] = true
	r.mu.Unlock()
}

// Subscribed records that client's subscription to channel delivers every
// message after from (the position the server confirmed the subscription
// at). Only the first call per client and channel counts: later ones are
// re-subscriptions, which must continue where the client was.
func (r *Recorder) Subscribed(client, channel string, from Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.subs {
		if s.client == client && s.channel == channel {
			return
		}
	}
	r.subs = append(r.subs, subscription{client, channel, from})
}

// Delivered records a message handed to client's application.
func (r *Recorder) Delivered(d Delivery) {
	r.mu.Lock()
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()
}

// Recovered records a recovered: false answer (a gap).
func (r *Recorder) Recovered(g Gap) {
	r.mu.Lock()
	r.gaps = append(r.gaps, g)
	r.mu.Unlock()
}

// Counts returns how many publishes were accepted and how many deliveries
// were recorded so far.
func (r *Recorder) Counts() (published, delivered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pubs), len(r.deliveries)
}

// Options tune Check.
type Options struct {
	// Window is the channels' history size (messages). A gap in one epoch
	// after which at most Window messages were published is reported as
	// unjustified. Default 0: every gap is accepted (and counted).
	Window int
}

// ChannelReport is the outcome for one channel.
type ChannelReport struct {
	Channel    string
	Published  int
	Delivered  int
	Lost       int
	Duplicated int
	Reordered  int
	Mismatched int
	// RecoveredFalse counts gaps; Excused the messages they covered.
	RecoveredFalse int
	Excused        int
	Unjustified    int
	// Reapplied counts publishes applied again in a later epoch (a retry
	// with the same key after the broker lost its idempotency keys along
	// with the stream), and the deliveries of such second copies. They are
	// not violations: the keys were lost with the data.
	Reapplied int
	// Problems describe the first violations, for the test log.
	Problems []string
}

// Report is the outcome of Check.
type Report struct {
	Channels []ChannelReport
	// Clients holds the same counts per client (Channel is the client's
	// name; Published is 0): what each one got, missed and was told.
	Clients []ChannelReport
	Total   ChannelReport
}

// OK reports whether nothing was lost, duplicated, reordered or mismatched,
// and no gap was unjustified.
func (r Report) OK() bool {
	t := r.Total
	return t.Lost == 0 && t.Duplicated == 0 && t.Reordered == 0 && t.Mismatched == 0 && t.Unjustified == 0
}

// String summarises the report, one line per channel with a problem and a
// total line, followed by the first problems.
func (r Report) String() string {
	var b strings.Builder
	line := func(c ChannelReport) {
		fmt.Fprintf(&b, "%s: published %d, delivered %d, lost %d, duplicated %d, reordered %d, mismatched %d, recovered:false %d (%d messages excused, %d unjustified), reapplied after data loss %d\n",
			c.Channel, c.Published, c.Delivered, c.Lost, c.Duplicated, c.Reordered, c.Mismatched, c.RecoveredFalse, c.Excused, c.Unjustified, c.Reapplied)
	}
	line(r.Total)
	for _, c := range r.Channels {
		if len(c.Problems) > 0 {
			line(c)
			for _, p := range c.Problems {
				b.WriteString("  " + p + "\n")
			}
		}
	}
	return strings.TrimSpace(b.String())
}

// maxProblems bounds the problems listed per channel.
const maxProblems = 10

func (c *ChannelReport) problem(format string, args ...any) {
	if len(c.Problems) < maxProblems {
		c.Problems = append(c.Problems, fmt.Sprintf(format, args...))
	}
}

// Check analyses what was recorded. Call it after the run, once every
// delivery that will come has come.
func (r *Recorder) Check(o Options) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	channels := map[string]*ChannelReport{}
	get := func(ch string) *ChannelReport {
		c := channels[ch]
		if c == nil {
			c = &ChannelReport{Channel: ch}
			channels[ch] = c
		}
		return c
	}
	clients := map[string]*ChannelReport{}
	cl := func(name string) *ChannelReport {
		c := clients[name]
		if c == nil {
			c = &ChannelReport{Channel: name}
			clients[name] = c
		}
		return c
	}

	// The accepted publishes by position, and the epochs in the order they
	// first appeared (a later epoch is a later stream of the channel).
	type posKey struct {
		ch string
		Position
	}
	byPos := map[posKey]Publish{}
	byKey := map[string]Position{} // channel+key -> where it was accepted
	epochRank := map[string]map[string]int{}
	for _, p := range r.pubs {
		c := get(p.Channel)
		c.Published++
		k := posKey{p.Channel, p.Position}
		if prev, dup := byPos[k]; dup && prev.Key != p.Key {
			c.Mismatched++
			c.problem("position %v accepted twice: publishes %q and %q", p.Position, prev.Key, p.Key)
		}
		byPos[k] = p
		kk := p.Channel + "\x00" + p.Key
		if prev, dup := byKey[kk]; dup && prev != p.Position {
			if prev.Epoch != p.Epoch {
				c.Reapplied++
			} else {
				c.Duplicated++
				c.problem("publish %q applied twice: at %v and %v", p.Key, prev, p.Position)
			}
		}
		byKey[kk] = p.Position
		if epochRank[p.Channel] == nil {
			epochRank[p.Channel] = map[string]int{}
		}
		if _, ok := epochRank[p.Channel][p.Epoch]; !ok {
			epochRank[p.Channel][p.Epoch] = len(epochRank[p.Channel])
		}
	}

	// Per client and channel: what it got, checked for order, duplicates
	// and payloads.
	type stream struct{ client, ch string }
	got := map[stream]map[Position]bool{}
	gotKeys := map[stream]map[string]Position{}
	last := map[stream]Position{}
	for _, d := range r.deliveries {
		c, k := get(d.Channel), cl(d.Client)
		c.Delivered++
		k.Delivered++
		s := stream{d.Client, d.Channel}
		if got[s] == nil {
			got[s] = map[Position]bool{}
			gotKeys[s] = map[string]Position{}
		}
		if got[s][d.Position] {
			c.Duplicated++
			k.Duplicated++
			c.problem("%s got %v twice", d.Client, d.Position)
		} else if prev, ok := gotKeys[s][d.Key]; ok && d.Key != "" && prev.Epoch != d.Epoch {
			c.Reapplied++
			k.Reapplied++
		} else if ok && d.Key != "" {
			c.Duplicated++
			k.Duplicated++
			c.problem("%s got publish %q twice: at %v and %v", d.Client, d.Key, prev, d.Position)
		}
		got[s][d.Position] = true
		if d.Key != "" {
			gotKeys[s][d.Key] = d.Position
		}
		if l, ok := last[s]; ok && l.Epoch == d.Epoch && d.Offset <= l.Offset && !(d.Position == l) {
			c.Reordered++
			k.Reordered++
			c.problem("%s got %v after %v", d.Client, d.Position, l)
		}
		last[s] = d.Position
		if p, ok := byPos[posKey{d.Channel, d.Position}]; ok {
			if (d.Hash != "" && d.Hash != p.Hash) || (d.Key != "" && d.Key != p.Key) {
				c.Mismatched++
				k.Mismatched++
				c.problem("%s got %q (hash %s) at %v where %q (hash %s) was accepted", d.Client, d.Key, d.Hash, d.Position, p.Key, p.Hash)
			}
		} else if d.Key != "" {
			if at, ok := byKey[d.Channel+"\x00"+d.Key]; ok {
				c.Mismatched++
				k.Mismatched++
				c.problem("%s got %q at %v; it was accepted at %v", d.Client, d.Key, d.Position, at)
			} else if !r.attempted[d.Channel+"\x00"+d.Key] {
				c.Mismatched++
				k.Mismatched++
				c.problem("%s got %q at %v, which nobody published", d.Client, d.Key, d.Position)
			}
		}
	}

	// Gaps: each excuses the messages of its client it covers.
	type gapSpan struct {
		after Position
		epoch string
	}
	gapsOf := map[stream][]gapSpan{}
	for _, g := range r.gaps {
		c, k := get(g.Channel), cl(g.Client)
		c.RecoveredFalse++
		k.RecoveredFalse++
		s := stream{g.Client, g.Channel}
		gapsOf[s] = append(gapsOf[s], gapSpan{g.After, g.Epoch})
		if o.Window > 0 && g.Epoch == g.After.Epoch {
			later := 0
			for _, p := range r.pubs {
				if p.Channel == g.Channel && p.Epoch == g.After.Epoch && p.Offset > g.After.Offset {
					later++
				}
			}
			if later <= o.Window {
				c.Unjustified++
				k.Unjustified++
				c.problem("%s: recovered: false after %v although only %d messages followed (window %d)", g.Client, g.After, later, o.Window)
			}
		}
	}
	// covered reports whether a gap of s excuses a missing message at p:
	// it is after the gap's position in the same epoch, or in the epoch the
	// stream changed to (before what the client got there).
	covered := func(s stream, p Position) bool {
		for _, g := range gapsOf[s] {
			if p.Epoch == g.after.Epoch && p.Offset > g.after.Offset {
				return true
			}
			if p.Epoch == g.epoch && p.Epoch != g.after.Epoch {
				return true
			}
		}
		return false
	}

	// Lost: every subscriber must have every accepted message after its
	// start, in the start's epoch or any later one.
	for _, sub := range r.subs {
		s := stream{sub.client, sub.channel}
		c, k := get(sub.channel), cl(sub.client)
		ranks := epochRank[sub.channel]
		// An epoch no publish was recorded in is older than all of them.
		startRank, known := ranks[sub.from.Epoch]
		for _, p := range r.pubs {
			if p.Channel != sub.channel {
				continue
			}
			switch {
			case p.Epoch == sub.from.Epoch && p.Offset <= sub.from.Offset:
				continue // before the subscription
			case known && ranks[p.Epoch] < startRank:
				continue // an older stream
			}
			if got[s][p.Position] {
				continue
			}
			if covered(s, p.Position) {
				c.Excused++
				k.Excused++
				continue
			}
			c.Lost++
			k.Lost++
			c.problem("%s never got %q at %v", sub.client, p.Key, p.Position)
		}
	}

	rep := Report{Total: ChannelReport{Channel: "total"}}
	for _, name := range sortedKeys(clients) {
		rep.Clients = append(rep.Clients, *clients[name])
	}
	for _, ch := range sortedKeys(channels) {
		c := *channels[ch]
		rep.Channels = append(rep.Channels, c)
		t := &rep.Total
		t.Published += c.Published
		t.Delivered += c.Delivered
		t.Lost += c.Lost
		t.Duplicated += c.Duplicated
		t.Reordered += c.Reordered
		t.Mismatched += c.Mismatched
		t.RecoveredFalse += c.RecoveredFalse
		t.Excused += c.Excused
		t.Unjustified += c.Unjustified
		t.Reapplied += c.Reapplied
	}
	return rep
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
