package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
)

// groupSpec is the share of a run that one process opens (sent to worker
// processes as JSON).
type groupSpec struct {
	Targets  []Target `json:"targets"`
	Channels []string `json:"channels"`
	// Subscribe makes every connection subscribe to its channel.
	Subscribe bool `json:"subscribe"`
	// First is the run-wide index of the group's first connection: it
	// picks node (index mod nodes), channel and user id.
	First int `json:"first"`
	Count int `json:"count"`
	// Sources are the local addresses to dial from, in turn ("" = any).
	Sources        []string      `json:"sources"`
	Secret         string        `json:"secret"`
	RunID          string        `json:"run_id"`
	Concurrency    int           `json:"concurrency"`
	Client         ClientKind    `json:"client"`
	Loops          int           `json:"loops"`
	ConnectTimeout time.Duration `json:"connect_timeout"`
	TokenTTL       time.Duration `json:"token_ttl"`
	// ReadPause makes each reactor loop sleep this long between polls
	// (see Config.ReadPause).
	ReadPause time.Duration `json:"read_pause,omitempty"`
	// Codec is the connections' encoding (see Config.Codec).
	Codec string `json:"codec,omitempty"`
	// OneUser gives every connection's token the same user (see
	// Config.OneUser).
	OneUser bool `json:"one_user,omitempty"`
	// Transport is ws, or sse / poll for the HTTP fallbacks (see
	// Config.Transport).
	Transport Transport `json:"transport,omitempty"`

	// publisher marks the publishing connections of PublishWS (local
	// only): their replies are counted by channel.
	publisher bool
}

// fallback reports whether the group's connections are HTTP-fallback
// sessions (SSE or long-poll) rather than WebSockets.
func (s groupSpec) fallback() bool {
	return s.Transport == TransportSSE || s.Transport == TransportPoll
}

// openReport is what a group reports when its connections are open.
type openReport struct {
	Opened  int            `json:"opened"`
	Failed  int            `json:"failed"`
	Errors  map[string]int `json:"errors,omitempty"`
	StartNS int64          `json:"start_ns"`
	EndNS   int64          `json:"end_ns"`
	// Handshake is the encoded histogram of per-connection handshake times.
	Handshake []byte `json:"handshake"`
	// Conns counts opened connections by [node][channel] (channel 0 when
	// the connections do not subscribe).
	Conns     [][]int `json:"conns"`
	RSSBefore int64   `json:"rss_before"`
	RSSAfter  int64   `json:"rss_after"`
}

// progressReport is a group's running counters.
type progressReport struct {
	Open       int64   `json:"open"`
	Deliveries uint64  `json:"deliveries"`
	Dups       uint64  `json:"dups"`
	Pings      uint64  `json:"pings"`
	RSS        int64   `json:"rss"`
	CPU        float64 `json:"cpu"`
}

// chanCounts are a group's deliveries on one channel of one node.
type chanCounts struct {
	Subs   int    `json:"subs"`
	Unique uint64 `json:"unique"`
	Dups   uint64 `json:"dups"`
	// WireBytes are the bytes of the WebSocket messages the subscribers
	// received once subscribed (frame headers included).
	WireBytes uint64 `json:"wire_bytes,omitempty"`
}

// closeReport is what a group reports when it is done.
type closeReport struct {
	Latency []byte         `json:"latency"`
	Counts  [][]chanCounts `json:"counts"`
	Lost    map[string]int `json:"lost,omitempty"` // close code -> connections the server ended
	Pings   uint64         `json:"pings"`
	RSS     int64          `json:"rss"`
	CPU     float64        `json:"cpu"`
}

// group is a set of connections opened and read by this process.
type group struct {
	spec    groupSpec
	wire    wireCodec // from spec.Codec
	targets []Target
	tokens  []string
	dialers []*net.Dialer
	conns   []atomic.Pointer[conn] // by index; nil until open
	hs      *readCtx               // used while connections are dialed
	shards  []*readCtx             // goroutine mode
	re      *reactor               // reactor mode

	lib       []*http.Client             // library mode and fallbacks: one per source address
	libConns  []atomic.Pointer[libConn]  // library mode, by index
	httpConns []atomic.Pointer[httpConn] // fallbacks (sse, poll), by index

	bufs     sync.Pool // *[]byte of 4 KiB: handshake read buffers
	readers  sync.WaitGroup
	stopping atomic.Bool
	open     atomic.Int64
	pings    atomic.Uint64
	lostMu   sync.Mutex
	lost     map[string]int

	// pubOK counts published replies by [node][channel] (publisher groups).
	pubOK  [][]atomic.Int64
	pubErr atomic.Int64
}

func newGroup(spec groupSpec) (*group, error) {
	if len(spec.Targets) == 0 {
		return nil, fmt.Errorf("%w: no targets", ErrConfig)
	}
	if spec.Concurrency <= 0 {
		spec.Concurrency = 64
	}
	if spec.ConnectTimeout <= 0 {
		spec.ConnectTimeout = 10 * time.Second
	}
	if spec.TokenTTL <= 0 {
		spec.TokenTTL = 6 * time.Hour
	}
	if spec.Loops <= 0 {
		spec.Loops = runtime.GOMAXPROCS(0)
	}
	if spec.Client == ClientReactor && !reactorAvailable {
		spec.Client = ClientGoroutine
	}
	wire, err := codecNamed(spec.Codec)
	if err != nil {
		return nil, err
	}
	g := &group{
		spec:    spec,
		wire:    wire,
		targets: spec.Targets,
		conns:   make([]atomic.Pointer[conn], spec.Count),
		hs:      newReadCtx(true),
		lost:    map[string]int{},
	}
	g.bufs.New = func() any { b := make([]byte, 4096); return &b }
	if spec.publisher {
		g.pubOK = make([][]atomic.Int64, len(spec.Targets))
		for i := range g.pubOK {
			g.pubOK[i] = make([]atomic.Int64, max(1, len(spec.Channels)))
		}
	}
	sources := spec.Sources
	if len(sources) == 0 {
		sources = []string{""}
	}
	for _, s := range sources {
		d := &net.Dialer{Control: bindNoPort}
		if s != "" {
			ip := net.ParseIP(s)
			if ip == nil {
				return nil, fmt.Errorf("%w: bad source address %q", ErrConfig, s)
			}
			d.LocalAddr = &net.TCPAddr{IP: ip}
		}
		g.dialers = append(g.dialers, d)
	}
	switch {
	case spec.fallback():
		g.lib = g.httpClients()
		g.httpConns = make([]atomic.Pointer[httpConn], spec.Count)
	case spec.Client == ClientLibrary:
		g.lib = g.httpClients()
		g.libConns = make([]atomic.Pointer[libConn], spec.Count)
	}
	return g, nil
}

// prepare mints one token per connection, before any clock starts: each
// for its own user (so the per-user connection limit never applies), or
// with OneUser all for one user. Every token is distinct (its expiry is a
// second later than the previous one's), so the server verifies each.
func (g *group) prepare() error {
	g.tokens = make([]string, g.spec.Count)
	secret := []byte(g.spec.Secret)
	for i := range g.tokens {
		gi := g.spec.First + i
		user := "bench-" + g.spec.RunID + "-" + strconv.Itoa(gi)
		if g.spec.OneUser {
			user = "bench-" + g.spec.RunID + "-all"
		}
		tok, err := auth.Mint(secret, user, g.spec.TokenTTL+time.Duration(gi)*time.Second, nil)
		if err != nil {
			return err
		}
		g.tokens[i] = tok
	}
	return nil
}

// openAll dials every connection with at most Concurrency handshakes in
// flight, then hands each to its reader.
func (g *group) openAll(ctx context.Context) (openReport, error) {
	rep := openReport{Errors: map[string]int{}, RSSBefore: processRSS()}
	rep.Conns = make([][]int, len(g.targets))
	for i := range rep.Conns {
		rep.Conns[i] = make([]int, max(1, len(g.spec.Channels)))
	}
	switch {
	case g.spec.fallback():
	case g.spec.Client == ClientReactor:
		re, err := newReactor(g, g.spec.Loops)
		if err != nil {
			return rep, err
		}
		g.re = re
	default:
		for range 16 {
			g.shards = append(g.shards, newReadCtx(true))
		}
	}

	var (
		next   atomic.Int64
		mu     sync.Mutex
		wg     sync.WaitGroup
		hsHist = newHist()
	)
	start := time.Now()
	workers := min(g.spec.Concurrency, g.spec.Count)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := newHist()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= g.spec.Count {
					break
				}
				t0 := time.Now()
				if g.spec.fallback() || g.spec.Client == ClientLibrary {
					node, ch, err := g.dialOwn(ctx, i)
					mu.Lock()
					if err != nil {
						rep.Failed++
						rep.Errors[errorKind(err)]++
					} else {
						rep.Opened++
						rep.Conns[node][ch]++
					}
					mu.Unlock()
					if err == nil {
						recordNS(local, time.Since(t0).Nanoseconds())
					}
					continue
				}
				c, err := g.dial(ctx, i)
				if err == nil {
					err = g.attach(c)
				}
				if err != nil {
					mu.Lock()
					rep.Failed++
					rep.Errors[errorKind(err)]++
					mu.Unlock()
					continue
				}
				recordNS(local, time.Since(t0).Nanoseconds())
				mu.Lock()
				rep.Opened++
				rep.Conns[c.node][max(0, c.ch)]++
				mu.Unlock()
			}
			mu.Lock()
			hsHist.Merge(local)
			mu.Unlock()
		}()
	}
	wg.Wait()
	end := time.Now()
	rep.StartNS, rep.EndNS = start.UnixNano(), end.UnixNano()
	rep.RSSAfter = processRSS()
	var err error
	if rep.Handshake, err = encodeHist(hsHist); err != nil {
		return rep, err
	}
	if n := g.spec.Count - rep.Opened - rep.Failed; n > 0 {
		rep.Failed += n
		rep.Errors["canceled"] += n
	}
	return rep, ctx.Err()
}

// dialOwn opens connection i as one that has a goroutine of its own (a
// library WebSocket, an SSE stream or a long-poll session) and starts
// that goroutine; it returns the connection's node and channel.
func (g *group) dialOwn(ctx context.Context, i int) (node int16, ch int32, err error) {
	if g.spec.fallback() {
		hc, err := g.dialFallback(ctx, i)
		if err != nil {
			return 0, 0, err
		}
		g.attachFallback(i, hc)
		return hc.node, hc.ch, nil
	}
	lc, err := g.dialLibrary(ctx, i)
	if err != nil {
		return 0, 0, err
	}
	g.attachLibrary(i, lc)
	return lc.node, lc.ch, nil
}

// attach hands a dialed connection to its reader.
func (g *group) attach(c *conn) error {
	g.open.Add(1)
	if g.re != nil {
		if err := g.re.add(c); err != nil {
			g.open.Add(-1)
			if c.nc != nil {
				_ = c.nc.Close()
			}
			return failure("reactor", err)
		}
		return nil
	}
	c.rc = g.shards[int(c.idx)%len(g.shards)]
	g.conns[c.idx].Store(c)
	g.readers.Add(1)
	go g.readGoroutine(c)
	return nil
}

// lose records a connection that the server ended or broke.
func (g *group) lose(c *conn, code int) {
	c.state |= stDead
	g.open.Add(-1)
	g.lostMu.Lock()
	g.lost[strconv.Itoa(code)]++
	g.lostMu.Unlock()
}

func (g *group) readCtxs() []*readCtx {
	out := []*readCtx{g.hs}
	if g.re != nil {
		out = append(out, g.re.readCtxs()...)
	}
	return append(out, g.shards...)
}

func (g *group) progress() progressReport {
	p := progressReport{Open: g.open.Load(), Pings: g.pings.Load(), RSS: processRSS(), CPU: processCPU()}
	for _, rc := range g.readCtxs() {
		p.Deliveries += rc.deliveries.Load()
		p.Dups += rc.dups.Load()
	}
	return p
}

// closeAll stops the readers, closes every connection (with a close frame)
// and reports the counts.
func (g *group) closeAll() (closeReport, error) {
	rep := closeReport{RSS: processRSS(), CPU: processCPU()}
	g.stopping.Store(true)
	if g.re != nil {
		g.re.halt()
	}
	g.closeLibrary()
	g.closeFallback()
	for i := range g.conns {
		c := g.conns[i].Load()
		if c == nil || c.nc == nil {
			continue
		}
		_ = c.nc.SetDeadline(time.Unix(1, 0)) // wakes its reader
	}
	g.readers.Wait()

	rep.Counts = make([][]chanCounts, len(g.targets))
	for i := range rep.Counts {
		rep.Counts[i] = make([]chanCounts, max(1, len(g.spec.Channels)))
	}
	bye := appendClientFrame(nil, opClose, []byte{0x03, 0xe8}, 0x5a5a5a5a) // 1000
	for i := range g.conns {
		c := g.conns[i].Load()
		if c == nil {
			continue
		}
		if c.ch >= 0 {
			cc := &rep.Counts[c.node][c.ch]
			cc.Subs++
			cc.Unique += c.unique
			cc.Dups += c.dups
			cc.WireBytes += c.wireBytes
		}
		if c.state&stDead == 0 {
			if c.nc != nil {
				_ = c.nc.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
			}
			c.write(bye)
		}
		if c.nc != nil {
			_ = c.nc.Close()
		}
		closeFD(c.fd)
		c.fd = -1
	}
	g.countLibrary(&rep)
	all := newHist()
	for _, rc := range g.readCtxs() {
		all.Merge(rc.hist)
	}
	var err error
	rep.Latency, err = encodeHist(all)
	rep.Pings = g.pings.Load()
	g.lostMu.Lock()
	if len(g.lost) > 0 {
		rep.Lost = g.lost
	}
	g.lostMu.Unlock()
	return rep, err
}
