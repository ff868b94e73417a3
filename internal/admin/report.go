package admin

import (
	"sort"
	"sync"
	"time"
)

// NodesChannel is the broker channel on which every node with the admin
// page on publishes its NodeReport each Interval, so that each node's page
// lists the whole cluster. Its namespace (node.ReservedNamespace) is
// closed to clients and to the server API.
const NodesChannel = "ferry-admin:nodes"

// Caps of the lists in a Snapshot.
const (
	// MaxRows caps each list of a Snapshot (connections, channels,
	// publishers, slow consumers).
	MaxRows = 50
	// MaxDisconnects is how many recent disconnects a Ring keeps.
	MaxDisconnects = 50
	// MaxNodes caps a NodeTable.
	MaxNodes = 256
)

// Snapshot is one "report" event of the admin stream.
type Snapshot struct {
	// Time is when the snapshot was taken, in unix milliseconds.
	Time int64 `json:"time"`
	// Node is the id of the node serving the page.
	Node  string       `json:"node"`
	Nodes []NodeReport `json:"nodes"`
	// Connections counts this node's connected sessions; Conns lists the
	// MaxRows newest.
	Connections int    `json:"connections"`
	Conns       []Conn `json:"conns"`
	// Channels counts the channels with subscribers on this node;
	// TopChannels lists the MaxRows with the most.
	Channels      int          `json:"channels"`
	TopChannels   []Channel    `json:"top_channels"`
	TopPublishers []Publisher  `json:"top_publishers"`
	SlowConsumers []Conn       `json:"slow_consumers"`
	Disconnects   []Disconnect `json:"disconnects"`
}

// NodeReport is what a node says of itself on NodesChannel.
type NodeReport struct {
	ID          string  `json:"id"`
	Broker      string  `json:"broker"`
	Connections int     `json:"connections"`
	Channels    int     `json:"channels"`
	QueueDepth  int     `json:"queue_depth"`
	Goroutines  int     `json:"goroutines"`
	RSSBytes    int64   `json:"rss_bytes"`
	UptimeSec   float64 `json:"uptime_seconds"`
	Draining    bool    `json:"draining"`
	// Seen is when the report arrived, in unix milliseconds.
	Seen int64 `json:"seen"`
}

// Conn is one connection of this node.
type Conn struct {
	ID            string `json:"id"`
	User          string `json:"user"`
	Transport     string `json:"transport"`
	Opened        int64  `json:"opened"` // unix milliseconds
	Queued        int    `json:"queued"`
	Subscriptions int    `json:"subscriptions"`
	Published     uint64 `json:"published"`
}

// Channel is one channel with its number of subscribers on this node.
type Channel struct {
	Name        string `json:"name"`
	Subscribers int    `json:"subscribers"`
}

// Publisher is one user's publishes over its open connections on this
// node.
type Publisher struct {
	User      string `json:"user"`
	Published uint64 `json:"published"`
	Conns     int    `json:"conns"`
}

// Disconnect is one connection's end.
type Disconnect struct {
	Time      int64  `json:"time"` // unix milliseconds
	Conn      string `json:"conn"`
	User      string `json:"user"`
	Transport string `json:"transport"`
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
}

// Builder gathers one Snapshot from the node's parts, keeping only the
// top MaxRows of each list as it goes. Use NewBuilder; not for concurrent
// use.
type Builder struct {
	snap   Snapshot
	newest topK[Conn]
	slow   topK[Conn]
	chans  topK[Channel]
	pubs   map[string]*Publisher // per user, for this snapshot only
}

// NewBuilder starts a snapshot of node taken at now.
func NewBuilder(node string, now time.Time) *Builder {
	return &Builder{
		snap:   Snapshot{Time: now.UnixMilli(), Node: node},
		newest: topK[Conn]{less: func(a, b Conn) bool { return a.Opened < b.Opened }},
		slow:   topK[Conn]{less: func(a, b Conn) bool { return a.Queued < b.Queued }},
		chans:  topK[Channel]{less: func(a, b Channel) bool { return a.Subscribers < b.Subscribers }},
		pubs:   map[string]*Publisher{},
	}
}

// AddConn counts a connected session.
func (b *Builder) AddConn(c Conn) {
	b.snap.Connections++
	b.newest.add(c)
	if c.Queued > 0 {
		b.slow.add(c)
	}
	if c.Published > 0 {
		p := b.pubs[c.User]
		if p == nil {
			p = &Publisher{User: c.User}
			b.pubs[c.User] = p
		}
		p.Published += c.Published
		p.Conns++
	}
}

// AddChannel counts a channel with its local subscribers.
func (b *Builder) AddChannel(name string, subscribers int) {
	b.snap.Channels++
	b.chans.add(Channel{Name: name, Subscribers: subscribers})
}

// Snapshot returns the snapshot with the nodes and disconnects given.
func (b *Builder) Snapshot(nodes []NodeReport, disconnects []Disconnect) Snapshot {
	s := b.snap
	s.Nodes, s.Disconnects = nodes, disconnects
	s.Conns, s.SlowConsumers, s.TopChannels = b.newest.sorted(), b.slow.sorted(), b.chans.sorted()
	pubs := topK[Publisher]{less: func(a, b Publisher) bool { return a.Published < b.Published }}
	for _, p := range b.pubs {
		pubs.add(*p)
	}
	s.TopPublishers = pubs.sorted()
	return s
}

// topK keeps the MaxRows greatest items seen by less, in O(MaxRows) memory.
type topK[T any] struct {
	less  func(a, b T) bool
	items []T // sorted greatest first
}

func (t *topK[T]) add(v T) {
	n := len(t.items)
	if n == MaxRows && !t.less(t.items[n-1], v) {
		return
	}
	i := sort.Search(n, func(i int) bool { return t.less(t.items[i], v) })
	if n < MaxRows {
		t.items = append(t.items, v)
	}
	copy(t.items[i+1:], t.items[i:])
	t.items[i] = v
}

// sorted returns the items, greatest first (never nil, for JSON).
func (t *topK[T]) sorted() []T {
	if t.items == nil {
		return []T{}
	}
	return t.items
}

// Ring keeps the last MaxDisconnects disconnects. Safe for concurrent use.
type Ring struct {
	mu   sync.Mutex
	buf  [MaxDisconnects]Disconnect // guarded by mu
	next int                        // guarded by mu: where the next one goes
	n    int                        // guarded by mu: how many are kept
}

// Add records d, pushing out the oldest when full.
func (r *Ring) Add(d Disconnect) {
	r.mu.Lock()
	r.buf[r.next] = d
	r.next = (r.next + 1) % MaxDisconnects
	r.n = min(r.n+1, MaxDisconnects)
	r.mu.Unlock()
}

// List returns the disconnects kept, newest first.
func (r *Ring) List() []Disconnect {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Disconnect, r.n)
	for i := range out {
		out[i] = r.buf[(r.next-1-i+2*MaxDisconnects)%MaxDisconnects]
	}
	return out
}

// NodeTable holds the latest report of each node heard from, forgetting a
// node silent for longer than its TTL. Safe for concurrent use.
type NodeTable struct {
	ttl   time.Duration
	mu    sync.Mutex
	nodes map[string]NodeReport // guarded by mu; at most MaxNodes
}

// NewNodeTable returns an empty table that forgets a node after ttl.
func NewNodeTable(ttl time.Duration) *NodeTable {
	return &NodeTable{ttl: ttl, nodes: map[string]NodeReport{}}
}

// Update records a node's report, seen at now. A report from a node not
// yet known is dropped while the table holds MaxNodes live ones.
func (t *NodeTable) Update(r NodeReport, now time.Time) {
	r.Seen = now.UnixMilli()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, known := t.nodes[r.ID]; !known && len(t.nodes) >= MaxNodes {
		t.expireLocked(now)
		if len(t.nodes) >= MaxNodes {
			return
		}
	}
	t.nodes[r.ID] = r
}

// List returns the nodes heard from within the TTL, by id.
func (t *NodeTable) List(now time.Time) []NodeReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	out := make([]NodeReport, 0, len(t.nodes))
	for _, r := range t.nodes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (t *NodeTable) expireLocked(now time.Time) {
	cut := now.Add(-t.ttl).UnixMilli()
	for id, r := range t.nodes {
		if r.Seen < cut {
			delete(t.nodes, id)
		}
	}
}
