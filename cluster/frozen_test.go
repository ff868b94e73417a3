package cluster_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/history"
	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// The frozen-node run: heartbeats of 3 s with a 2 s timeout (clients
// notice a silent server 5 s after its last frame), a freeze of 20 s, and
// the promise that every client receives again within 9 s of the freeze.
const (
	frozenHeartbeat = "FERRY_HEARTBEAT_INTERVAL=3s"
	frozenTimeout   = "FERRY_HEARTBEAT_TIMEOUT=2s"
	freezeFor       = 20 * time.Second
	receiveAgain    = 9 * time.Second
	// frozenStall is when an HTTP fallback client gives up on a quiet
	// stream or an unanswered request: heartbeat interval + timeout.
	frozenStall = 5 * time.Second
)

// timeline is what one client's application got: each new message
// (deduplicated by offset, as the SDK and the fallback clients do) goes to
// the history checker, and its arrival time is kept to measure outages.
type timeline struct {
	name string
	rec  *history.Recorder

	mu    sync.Mutex
	pos   history.Position // last delivered
	has   bool             // a subscription confirmed pos
	times []time.Time      // arrival of each new message
}

// subscribed records the position a subscription confirmed; a later one
// that did not recover reports a gap.
func (tl *timeline) subscribed(ch, epoch string, off uint64, recovered bool, missed uint64) {
	tl.mu.Lock()
	first, after := !tl.has, tl.pos
	if first {
		tl.pos, tl.has = history.Position{Epoch: epoch, Offset: off}, true
	}
	tl.mu.Unlock()
	switch {
	case first:
		tl.rec.Subscribed(tl.name, ch, history.Position{Epoch: epoch, Offset: off})
	case !recovered:
		tl.rec.Recovered(history.Gap{Client: tl.name, Channel: ch, After: after, Epoch: epoch, Missed: missed})
	}
}

// message hands a message to the application unless it has it already.
func (tl *timeline) message(ch, epoch string, off uint64, data []byte) {
	tl.mu.Lock()
	if tl.pos.Epoch == epoch && off <= tl.pos.Offset {
		tl.mu.Unlock()
		return
	}
	tl.pos = history.Position{Epoch: epoch, Offset: off}
	tl.times = append(tl.times, time.Now())
	tl.mu.Unlock()
	var p struct {
		K string `json:"k"`
	}
	_ = json.Unmarshal(data, &p)
	tl.rec.Delivered(history.Delivery{Client: tl.name, Channel: ch, Position: history.Position{Epoch: epoch, Offset: off}, Key: p.K, Hash: history.Hash(data)})
}

// outage is the longest time without a new message between from and to
// (from and to count as arrivals: a client that got nothing since from has
// an outage of to-from).
func (tl *timeline) outage(from, to time.Time) time.Duration {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	last, worst := from, time.Duration(0)
	for _, at := range append(slices.Clone(tl.times), to) {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			at = to
		}
		worst = max(worst, at.Sub(last))
		last = at
	}
	return worst
}

// frozenSDK is a Go SDK client with its default settings (backoff,
// connect timeout): the figures are the ones an application gets.
func frozenSDK(t *testing.T, c *cluster, base, name, ch string, rec *history.Recorder) (*timeline, *recorder) {
	t.Helper()
	tl := &timeline{name: name, rec: rec}
	nodes := newRecorder(name) // only its node list is used
	cl, err := client.New(base, client.Config{
		Token:  c.token(name),
		Logger: slog.New(&connectedLog{rec: nodes}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	ctx, cancel := withTimeout()
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	sub, err := cl.Subscribe(ctx, ch,
		client.WithHandler(func(m client.Message) { tl.message(m.Channel, m.Epoch, m.Offset, m.Data) }),
		client.WithGapHandler(func(g client.Gap) {
			rec.Recovered(history.Gap{Client: name, Channel: g.Channel, After: history.Position{Epoch: g.After.Epoch, Offset: g.After.Offset}, Epoch: g.Epoch, Missed: g.Missed})
		}))
	if err != nil {
		t.Fatalf("%s: subscribe: %v", name, err)
	}
	p := sub.Position()
	tl.subscribed(ch, p.Epoch, p.Offset, true, 0)
	return tl, nodes
}

// httpSub is an SSE or long-poll client (docs/protocol.md section 17) of
// one or more base URLs (a proxy, or nodes in the order to try them): a
// request that fails or hangs past frozenStall is tried again on the next
// base (a proxy sends it to a node that answers), whose node adopts the
// session, and a session no node knows is opened anew from the
// application's position.
type httpSub struct {
	*timeline
	transport string // "sse" or "poll"
	c         *cluster
	bases     []string
	ch        string
	http      *http.Client // streams: no overall timeout

	mu      sync.Mutex
	cur     int // index in bases of the one in use
	session string
	ticket  string
	lastSeq uint64
}

func startHTTPSub(t *testing.T, c *cluster, bases []string, transport, name, ch string, rec *history.Recorder) *httpSub {
	t.Helper()
	s := &httpSub{timeline: &timeline{name: name, rec: rec}, transport: transport, c: c, bases: bases, ch: ch, http: &http.Client{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	octx, ocancel := context.WithTimeout(ctx, hangGuard)
	defer ocancel()
	for !s.open(octx) {
		if !sleepCtx(octx, 100*time.Millisecond) {
			t.Fatalf("%s: no session within %v", name, hangGuard)
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s.step(ctx)
		}
	}()
	eventually(t, name+" subscribed", func() bool {
		s.timeline.mu.Lock()
		defer s.timeline.mu.Unlock()
		return s.has
	})
	return s
}

// failed moves the client on to the next base after a request failed,
// hung or was refused, and pauses briefly.
func (s *httpSub) failed(ctx context.Context) {
	s.mu.Lock()
	s.cur++
	s.mu.Unlock()
	sleepCtx(ctx, 100*time.Millisecond)
}

// request sends one request to the base in use, bounded by frozenStall
// unless it is a stream.
func (s *httpSub) request(ctx context.Context, method, path, body string, header http.Header) (*http.Response, context.CancelFunc, error) {
	s.mu.Lock()
	base := s.bases[s.cur%len(s.bases)]
	s.mu.Unlock()
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, method, base+path, strings.NewReader(body))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	var timer *time.Timer
	if path != "/v1/sse" && !strings.HasPrefix(path, "/v1/sse?") {
		timer = time.AfterFunc(frozenStall, cancel)
	}
	resp, err := s.http.Do(req)
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
		cancel()
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return resp, stop, nil
}

// open opens a session subscribed to ch from the application's position.
func (s *httpSub) open(ctx context.Context) bool {
	sub := map[string]any{"type": "subscribe", "id": 2, "channel": s.ch}
	s.timeline.mu.Lock()
	if s.has {
		sub["since"] = map[string]any{"offset": s.pos.Offset, "epoch": s.pos.Epoch}
	}
	s.timeline.mu.Unlock()
	body, _ := json.Marshal([]any{map[string]any{"type": "connect", "id": 1, "token": s.c.token(s.name)}, sub})
	resp, stop, err := s.request(ctx, http.MethodPost, "/v1/sessions?transport="+s.transport, string(body), http.Header{})
	if err != nil {
		s.failed(ctx)
		return false
	}
	defer stop()
	defer resp.Body.Close()
	var f frame
	var extra struct {
		StreamTicket string `json:"stream_ticket"`
	}
	raw := json.RawMessage{}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&raw) != nil ||
		json.Unmarshal(raw, &f) != nil || json.Unmarshal(raw, &extra) != nil || f.SessionToken == "" {
		return false
	}
	s.mu.Lock()
	s.session, s.ticket, s.lastSeq = f.SessionToken, extra.StreamTicket, 0
	s.mu.Unlock()
	return true
}

// step is one poll, or one SSE stream (with the ticket it needs).
func (s *httpSub) step(ctx context.Context) {
	s.mu.Lock()
	h := http.Header{}
	h.Set("Ferry-Session", s.session)
	h.Set("Last-Event-ID", strconv.FormatUint(s.lastSeq, 10))
	ticket := s.ticket
	s.ticket = ""
	s.mu.Unlock()
	if s.transport == "poll" {
		resp, stop, err := s.request(ctx, http.MethodPost, "/v1/poll?wait=1000", "", h)
		if err != nil {
			s.failed(ctx)
			return
		}
		defer stop()
		defer resp.Body.Close()
		var frames []frame
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
			s.open(ctx)
		case resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&frames) != nil:
			s.failed(ctx)
		}
		for _, f := range frames {
			s.handle(f)
		}
		return
	}
	if ticket == "" {
		resp, stop, err := s.request(ctx, http.MethodPost, "/v1/tickets", "", h)
		if err != nil {
			s.failed(ctx)
			return
		}
		var r struct {
			Ticket string `json:"ticket"`
		}
		switch {
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
			s.open(ctx)
		case resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil:
			s.failed(ctx)
		default:
			s.mu.Lock()
			s.ticket = r.Ticket
			s.mu.Unlock()
		}
		resp.Body.Close()
		stop()
		return
	}
	s.stream(ctx, ticket, h)
}

// stream reads one SSE stream until it ends or stays quiet for
// frozenStall (the node froze).
func (s *httpSub) stream(ctx context.Context, ticket string, h http.Header) {
	h.Del("Ferry-Session")
	if h.Get("Last-Event-ID") == "0" {
		h.Del("Last-Event-ID")
	}
	resp, stop, err := s.request(ctx, http.MethodGet, "/v1/sse?ticket="+ticket, "", h)
	if err != nil {
		s.failed(ctx)
		return
	}
	defer stop()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.failed(ctx)
		return
	}
	watchdog := time.AfterFunc(frozenStall, stop)
	defer watchdog.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		watchdog.Reset(frozenStall)
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data:"); ok {
			var f frame
			if json.Unmarshal([]byte(strings.TrimSpace(data)), &f) == nil {
				s.handle(f)
			}
		}
	}
	// The stream went quiet (the node froze) or was cut: the next one
	// goes to the next base.
	if ctx.Err() == nil {
		s.failed(ctx)
	}
}

// handle hands one server frame to the application.
func (s *httpSub) handle(f frame) {
	switch f.Type {
	case "message":
		if f.Seq > 0 {
			s.mu.Lock()
			s.lastSeq = f.Seq
			s.mu.Unlock()
		}
		s.message(f.Channel, f.Epoch, f.Offset, f.Data)
	case "subscribed":
		s.subscribed(f.Channel, f.Epoch, f.Offset, f.Recovered, f.Missed)
	}
}

// TestFrozenNode: one of three nodes on Redis is frozen (SIGSTOP) for 20 s
// behind HAProxy with the shipped configuration, while SDK clients on
// WebSocket and raw SSE and long-poll clients are subscribed and an API
// publisher sends 20 messages a second to another node. Every client must
// receive again within 9 s of the freeze: it notices the silence
// (heartbeat 3 s + 2 s), HAProxy has taken the node out of rotation, and
// the node that gets the reconnect resumes the session without waiting for
// the frozen node (its liveness record lapsed). Nothing is lost or
// delivered twice to the application; when the node is continued it finds
// its record lapsed and does not take its moved sessions back.
func TestFrozenNode(t *testing.T) {
	c := startCluster(t, 3, frozenHeartbeat, frozenTimeout)
	hap := proxytest.StartHAProxy(t, c.backends()...)
	waitAllUp(t, hap)
	const ch = "chat:frozen"
	rec := history.New()

	var tls []*timeline
	var ws []*recorder // each SDK client's nodes, in the order of wsTL
	var wsTL []*timeline
	for i := range 6 {
		tl, nodes := frozenSDK(t, c, hap.URL(), fmt.Sprintf("ws%d", i+1), ch, rec)
		wsTL, ws = append(wsTL, tl), append(ws, nodes)
	}
	tls = append(tls, wsTL...)
	eventually(t, "every SDK client knows its node", func() bool {
		for _, r := range ws {
			if r.lastNode() == "" {
				return false
			}
		}
		return true
	})
	// The victim: the node with the most SDK clients; the publisher
	// talks to another node directly.
	count := map[string]int{}
	for _, r := range ws {
		count[r.lastNode()]++
	}
	var victim, target *ferrytest.Node
	for _, n := range c.nodes.Nodes {
		if victim == nil || count[n.ID] > count[victim.ID] {
			victim = n
		}
	}
	// SSE clients talk to the nodes directly, the victim first (a stream
	// through HAProxy may land anywhere); long-poll clients go through
	// HAProxy, which sends each poll to the next node.
	direct := []string{victim.BaseURL()}
	for _, n := range c.nodes.Nodes {
		if n != victim {
			direct = append(direct, n.BaseURL())
			if target == nil {
				target = n
			}
		}
	}
	for i := range 2 {
		tls = append(tls, startHTTPSub(t, c, direct, "sse", fmt.Sprintf("sse%d", i+1), ch, rec).timeline)
		tls = append(tls, startHTTPSub(t, c, []string{hap.URL()}, "poll", fmt.Sprintf("poll%d", i+1), ch, rec).timeline)
	}
	var moved []string
	for i, r := range ws {
		if r.lastNode() == victim.ID {
			moved = append(moved, wsTL[i].name)
		}
	}

	pubCtx, stopPub := context.WithCancel(context.Background())
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		frozenPublish(pubCtx, c, target.BaseURL(), ch, rec)
	}()
	defer func() { stopPub(); <-pubDone }()
	eventually(t, "the publisher got going", func() bool { p, _ := rec.Counts(); return p >= 40 })

	for _, tl := range tls {
		tl.mu.Lock()
		t.Logf("%-6s had %d messages before the freeze", tl.name, len(tl.times))
		tl.mu.Unlock()
	}
	if err := victim.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := victim.Thaw(); err != nil {
				t.Error(err)
			}
		}
	}
	defer thaw()
	t.Logf("froze %s (SIGSTOP); %d SDK clients were on it: %v", victim.ID, len(moved), moved)

	// Checked while the node is still frozen: a client that only gets
	// going again when it is continued fails here.
	check := frozenAt.Add(receiveAgain + 3*time.Second)
	time.Sleep(time.Until(check))
	var outages []time.Duration
	for _, tl := range tls {
		o := tl.outage(frozenAt, check)
		if o > time.Second {
			outages = append(outages, o)
		}
		t.Logf("%-6s longest time without a message after the freeze: %v", tl.name, o.Round(time.Millisecond))
		if o > receiveAgain {
			t.Errorf("%s received nothing for %v after the freeze (want at most %v, while the node is still frozen)", tl.name, o.Round(time.Millisecond), receiveAgain)
		}
	}
	t.Logf("clients affected by the freeze (more than 1 s without a message): %d, time until they received again p50 %v, max %v",
		len(outages), percentile(outages, 50).Round(time.Millisecond), percentile(outages, 100).Round(time.Millisecond))
	for _, name := range moved {
		for i, tl := range wsTL {
			if tl.name == name && ws[i].lastNode() == victim.ID {
				t.Errorf("%s is still on the frozen node", name)
			}
		}
	}

	time.Sleep(time.Until(frozenAt.Add(freezeFor)))
	thaw()
	t.Logf("continued %s (SIGCONT) %v after the freeze", victim.ID, time.Since(frozenAt).Round(time.Millisecond))
	// Woken, it finds its record lapsed, and every session that moved
	// meanwhile is fenced off: not saved over, its connection closed.
	eventually(t, "the continued node notices its liveness record lapsed and fences its moved sessions off", func() bool {
		log := victim.Log()
		return strings.Contains(log, "liveness record lapsed") && strings.Count(log, "session moved to another connection") >= len(moved)
	})
	// A few more seconds of traffic with the node back, then the check.
	published, _ := rec.Counts()
	eventually(t, "more messages after the thaw", func() bool { p, _ := rec.Counts(); return p >= published+60 })
	stopPub()
	<-pubDone
	total, _ := rec.Counts()
	eventually(t, "every client has every message", func() bool {
		for _, tl := range tls {
			tl.mu.Lock()
			n := len(tl.times)
			tl.mu.Unlock()
			if n < total {
				return false
			}
		}
		return true
	})
	rep := rec.Check(history.Options{})
	t.Logf("history: %s", rep)
	if !rep.OK() || rep.Total.RecoveredFalse > 0 {
		t.Errorf("the freeze cost messages, duplicates or gaps: %s", rep)
	}
	for _, name := range moved {
		for i, tl := range wsTL {
			if tl.name == name && ws[i].lastNode() == victim.ID {
				t.Errorf("%s went back to the continued node's old connection", name)
			}
		}
	}
}

// frozenPublish publishes {"k": key} to ch through base every 50 ms until
// ctx ends, each with an idempotency key and retried with it until
// accepted, recording every accepted publish.
func frozenPublish(ctx context.Context, c *cluster, base, ch string, rec *history.Recorder) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		key := fmt.Sprintf("%s-%d", ch, i)
		data := map[string]string{"k": key}
		raw, _ := json.Marshal(data)
		for ctx.Err() == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := c.publish(actx, base, ch, data, key)
			cancel()
			if err == nil {
				rec.Published(history.Publish{Channel: ch, Key: key, Position: history.Position{Epoch: res.Epoch, Offset: res.Offset}, Hash: history.Hash(raw)})
				break
			}
			rec.Attempted(ch, key)
			sleepCtx(ctx, 100*time.Millisecond)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}
