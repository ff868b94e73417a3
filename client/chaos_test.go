package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// chaosProxy is a TCP proxy in front of a node that cuts connections on
// demand (with RST: what was in flight is lost).
type chaosProxy struct {
	ln       net.Listener
	upstream string
	cuts     atomic.Int64
	upBytes  atomic.Int64 // bytes passed from clients to the node
	wg       sync.WaitGroup

	mu     sync.Mutex
	pairs  map[*proxyPair]struct{}
	closed bool
}

type proxyPair struct {
	a, b net.Conn
	once sync.Once
}

func (p *proxyPair) cut() {
	p.once.Do(func() {
		for _, c := range []net.Conn{p.a, p.b} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

func newChaosProxy(t testing.TB, upstream string) *chaosProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &chaosProxy{ln: ln, upstream: upstream, pairs: map[*proxyPair]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *chaosProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		pair := &proxyPair{a: c, b: up}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pair.cut()
			continue
		}
		p.pairs[pair] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pair, up, c)
		go p.pipe(pair, c, up)
	}
}

func (p *chaosProxy) pipe(pair *proxyPair, dst, src net.Conn) {
	defer p.wg.Done()
	if dst == pair.b {
		src = countingReader{src, &p.upBytes}
	}
	_, _ = io.Copy(dst, src)
	pair.cut()
	p.mu.Lock()
	delete(p.pairs, pair)
	p.mu.Unlock()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	net.Conn
	n *atomic.Int64
}

func (r countingReader) Read(b []byte) (int, error) {
	k, err := r.Conn.Read(b)
	r.n.Add(int64(k))
	return k, err
}

// cutSome cuts each open connection with probability prob.
func (p *chaosProxy) cutSome(rng *rand.Rand, prob float64) {
	p.mu.Lock()
	var victims []*proxyPair
	for pair := range p.pairs {
		if rng.Float64() < prob {
			victims = append(victims, pair)
		}
	}
	p.mu.Unlock()
	for _, v := range victims {
		v.cut()
	}
	p.cuts.Add(int64(len(victims)))
}

func (p *chaosProxy) close() {
	p.mu.Lock()
	p.closed = true
	pairs := p.pairs
	p.pairs = map[*proxyPair]struct{}{}
	p.mu.Unlock()
	_ = p.ln.Close()
	for pair := range pairs {
		pair.cut()
	}
	p.wg.Wait()
}

// chaosDuration is 10 s, or FERRY_CHAOS_SECONDS.
func chaosDuration(t testing.TB) time.Duration {
	if s := os.Getenv("FERRY_CHAOS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("FERRY_CHAOS_SECONDS=%q: want a positive number of seconds", s)
		}
		return time.Duration(n) * time.Second
	}
	return 10 * time.Second
}

// chaosPayload is what the publishers send.
type chaosPayload struct {
	ID string `json:"id"` // publisher-sequence, unique per Publish call
}

// chaosSub records what one subscriber got.
type chaosSub struct {
	name   string
	c      *client.Client
	mu     sync.Mutex
	ids    []string // by delivery order
	last   uint64
	errors []string // order violations
}

func (s *chaosSub) handle(m client.Message) {
	var p chaosPayload
	err := json.Unmarshal(m.Data, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors = append(s.errors, fmt.Sprintf("offset %d: %v", m.Offset, err))
	}
	if m.Offset != s.last+1 {
		s.errors = append(s.errors, fmt.Sprintf("offset %d after %d", m.Offset, s.last))
	}
	s.last = m.Offset
	s.ids = append(s.ids, p.ID)
}

func (s *chaosSub) delivered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// TestChaos: three publishers and three subscribers go through a proxy that
// cuts connections at random for a fixed wall time. Every subscriber must
// get every message exactly once and in order, and every publish must be
// applied exactly once (the history holds each payload once) although
// publishes are retried across cuts.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	n := startNode(t, nil)
	proxy := newChaosProxy(t, n.ts.Listener.Addr().String())
	url := "http://" + proxy.ln.Addr().String()
	const ch = "chat:chaos"
	base := client.Config{Backoff: client.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}}

	subCfgs := []struct {
		name string
		cfg  func(*client.Config)
	}{
		{"json", func(*client.Config) {}},
		{"json-window-16", func(c *client.Config) { c.Window = 16 }},
		{"msgpack-ack-8", func(c *client.Config) { c.Codec, c.AckEvery = protocol.Msgpack, 8 }},
	}
	var subs []*chaosSub
	for i, sc := range subCfgs {
		s := &chaosSub{name: sc.name}
		cfg := base
		cfg.Token = mint(t, fmt.Sprintf("sub%d", i), time.Hour)
		cfg.Logger = testLogger(t, "sub:"+sc.name)
		sc.cfg(&cfg)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		c, err := client.Dial(ctx, url, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s.c = c
		if _, err := c.Subscribe(t.Context(), ch, client.WithHandler(s.handle)); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}

	type pubResult struct {
		id  string
		res client.PublishResult
		err error
	}
	var (
		resMu   sync.Mutex
		results []pubResult
		pubWG   sync.WaitGroup
		pubs    []*client.Client
	)
	stop := make(chan struct{})
	for i := range 3 {
		cfg := base
		cfg.Token = mint(t, fmt.Sprintf("pub%d", i), time.Hour)
		cfg.Logger = testLogger(t, fmt.Sprintf("pub%d", i))
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		c, err := client.Dial(ctx, url, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pubs = append(pubs, c)
		// Each publisher keeps up to 4 publishes in flight, paced.
		for lane := range 4 {
			pubWG.Add(1)
			go func() {
				defer pubWG.Done()
				tick := time.NewTicker(8 * time.Millisecond)
				defer tick.Stop()
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					id := fmt.Sprintf("p%d-l%d-%d", i, lane, seq)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					res, err := c.Publish(ctx, ch, chaosPayload{ID: id}, client.WithPriority(protocol.PriorityCritical))
					cancel()
					resMu.Lock()
					results = append(results, pubResult{id, res, err})
					resMu.Unlock()
				}
			}()
		}
	}

	// Cut connections at random for the chaos time.
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	end := time.Now().Add(chaosDuration(t))
	for time.Now().Before(end) {
		time.Sleep(time.Duration(20+rng.IntN(180)) * time.Millisecond)
		proxy.cutSome(rng, 0.4)
	}
	close(stop)
	pubWG.Wait()

	// The server's view: every publish applied once.
	h := historyAPI(t, n, ch)
	if uint64(len(h.Messages)) != h.Offset {
		t.Fatalf("history holds %d messages, offset is %d", len(h.Messages), h.Offset)
	}
	byID := map[string]uint64{}
	historyIDs := make([]string, len(h.Messages))
	for i, m := range h.Messages {
		var p chaosPayload
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		if m.Offset != uint64(i+1) {
			t.Fatalf("history message %d has offset %d", i, m.Offset)
		}
		if prev, dup := byID[p.ID]; dup {
			t.Fatalf("payload %s applied twice: offsets %d and %d", p.ID, prev, m.Offset)
		}
		byID[p.ID] = m.Offset
		historyIDs[i] = p.ID
	}
	dupReplies := 0
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("publish %s failed: %v", r.id, r.err)
		}
		if byID[r.id] != r.res.Offset {
			t.Fatalf("publish %s answered offset %d, history has it at %d", r.id, r.res.Offset, byID[r.id])
		}
		if r.res.Duplicate {
			dupReplies++
		}
	}
	if len(results) != len(h.Messages) {
		t.Fatalf("%d publishes succeeded, history holds %d", len(results), len(h.Messages))
	}

	// Every subscriber gets everything once, in order.
	total := len(h.Messages)
	deadline := time.Now().Add(15 * time.Second) // a hang guard: lost messages never come
	for _, s := range subs {
		for s.delivered() < total && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var figures []string
	for _, s := range subs {
		s.mu.Lock()
		if len(s.errors) > 0 {
			t.Errorf("%s: %d order errors, first %v", s.name, len(s.errors), s.errors[:min(5, len(s.errors))])
		}
		if len(s.ids) != total {
			t.Errorf("%s: %d messages, want %d", s.name, len(s.ids), total)
		}
		for i := range min(len(s.ids), total) {
			if s.ids[i] != historyIDs[i] {
				t.Errorf("%s: message %d is %s, history has %s", s.name, i+1, s.ids[i], historyIDs[i])
				break
			}
		}
		s.mu.Unlock()
		st := s.c.Stats()
		figures = append(figures, fmt.Sprintf("%s: delivered %d, replays dropped %d, connects %d (resumed %d, resume fallbacks %d)",
			s.name, st.Delivered, st.DuplicatesDropped, st.Connects, st.Resumed, st.ResumeFallbacks))
	}
	retries, pubConnects := 0, 0
	for _, c := range pubs {
		st := c.Stats()
		retries += st.PublishRetries
		pubConnects += st.Connects
	}
	t.Logf("chaos %v: %d connections cut; %d messages published (%d publish frames retried after a cut, %d answered duplicate: applied once); publishers connected %d times",
		chaosDuration(t), proxy.cuts.Load(), total, retries, dupReplies, pubConnects)
	for _, f := range figures {
		t.Log(f)
	}
}
