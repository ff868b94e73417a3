package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
)

// recorder keeps what one subscriber was delivered, by (epoch, offset),
// and how its connections went.
type recorder struct {
	name string

	mu         sync.Mutex
	cur        position         // last position delivered
	seen       map[position]int // deliveries per position
	epochs     []string         // epochs in the order their first message came
	duplicates int              // deliveries of a position already delivered
	stale      int              // messages of an epoch after a later one began
	backwards  int              // same epoch, lower offset, never delivered before
	skips      []string         // offsets skipped within an epoch ("E:5-7")
	notRecov   []string         // subscribed/gap reports with recovered false ("E missed N")
	codes      map[int]int      // close codes of the connections that ended
	nodes      []string         // node of each connection, in order
	reconnects []time.Duration  // from a connection's loss to the next one's subscription
	lostAt     time.Time        // when the current connection was lost (zero while connected)
	failed     map[string]int   // failed connection attempts, by error
	gaps       []client.Gap     // the SDK's gap reports
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, seen: map[position]int{}, codes: map[int]int{}, failed: map[string]int{}}
}

// message records one delivered message.
func (r *recorder) message(epoch string, off uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := position{Offset: off, Epoch: epoch}
	if r.seen[p] > 0 {
		r.seen[p]++
		r.duplicates++
		return
	}
	r.seen[p] = 1
	if epoch != r.cur.Epoch || r.cur.Offset == 0 && r.cur.Epoch == "" {
		if slices.Contains(r.epochs, epoch) {
			r.stale++
			return
		}
		r.epochs = append(r.epochs, epoch)
		r.cur = p
		return
	}
	switch {
	case off > r.cur.Offset+1:
		r.skips = append(r.skips, fmt.Sprintf("%s:%d-%d", short(epoch), r.cur.Offset+1, off-1))
		r.cur = p
	case off == r.cur.Offset+1:
		r.cur = p
	default:
		r.backwards++
	}
}

// notRecovered records a subscription answered with recovered false.
func (r *recorder) notRecovered(epoch string, missed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notRecov = append(r.notRecov, fmt.Sprintf("%s missed %d", short(epoch), missed))
}

// lost marks the moment the connection ended, with its close code (-1:
// none).
func (r *recorder) lost(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.codes[code]++
	if r.lostAt.IsZero() {
		r.lostAt = time.Now()
	}
}

// attemptFailed records a failed connection attempt.
func (r *recorder) attemptFailed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := err.Error()
	if len(msg) > 120 {
		msg = msg[:120]
	}
	r.failed[msg]++
}

// connected records a new connection (on node, "" when unknown) and, after
// a loss, the reconnect time.
func (r *recorder) connected(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if node != "" {
		r.nodes = append(r.nodes, node)
	}
	if !r.lostAt.IsZero() {
		r.reconnects = append(r.reconnects, time.Since(r.lostAt))
		r.lostAt = time.Time{}
	}
}

// has reports whether every position of want was delivered.
func (r *recorder) has(want []position) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range want {
		if r.seen[p] == 0 {
			return false
		}
	}
	return true
}

// lastNode is the node of the newest connection.
func (r *recorder) lastNode() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.nodes) == 0 {
		return ""
	}
	return r.nodes[len(r.nodes)-1]
}

// delivery compares what was delivered with want (every position
// published): lost are positions of want never delivered, extra are
// delivered positions that are not in want.
type delivery struct {
	want, delivered, lost, duplicated, extra int
	lostSample                               []position
}

func (r *recorder) compare(want []position) delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := delivery{want: len(want), duplicated: r.duplicates}
	in := make(map[position]bool, len(want))
	for _, p := range want {
		in[p] = true
		if r.seen[p] == 0 {
			d.lost++
			if len(d.lostSample) < 10 {
				d.lostSample = append(d.lostSample, p)
			}
		}
	}
	for p := range r.seen {
		d.delivered++
		if !in[p] {
			d.extra++
		}
	}
	return d
}

func short(epoch string) string {
	if len(epoch) > 6 {
		return epoch[:6]
	}
	if epoch == "" {
		return `""`
	}
	return epoch
}

// subscriber is a client that keeps one subscription through reconnects
// and records what it gets.
type subscriber interface {
	record() *recorder
	close()
}

// rawSub is a subscriber written against the protocol alone: on every
// connection it subscribes with since = the last position it got (no
// session resumption), reconnecting with jittered backoff. It checks the
// server's promise that recovery with since has no gap and no duplicate.
type rawSub struct {
	rec    *recorder
	url    string
	header http.Header
	token  string
	ch     string

	ready  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startRawSub(t testing.TB, name, url string, header http.Header, token, ch string) *rawSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &rawSub{rec: newRecorder(name), url: url, header: header, token: token, ch: ch,
		ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	t.Cleanup(s.close)
	select {
	case <-s.ready:
	case <-time.After(hangGuard):
		t.Fatalf("%s: not subscribed within %v", name, hangGuard)
	}
	return s
}

func (s *rawSub) record() *recorder { return s.rec }

func (s *rawSub) close() {
	s.cancel()
	<-s.done
}

func (s *rawSub) run(ctx context.Context) {
	defer close(s.done)
	const initial, ceiling = 200 * time.Millisecond, 2 * time.Second
	backoff := initial
	var pos *position
	readyOnce := sync.Once{}
	for ctx.Err() == nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		w, conn, err := connectWS(actx, s.url, s.header, s.token, nil)
		var sub frame
		if err == nil {
			sub, err = subscribe(actx, w, 2, s.ch, pos)
			if err != nil {
				w.close()
			}
		}
		cancel()
		if err != nil {
			s.rec.attemptFailed(err)
			// Full jitter over [backoff/2, backoff*3/2).
			sleepCtx(ctx, backoff/2+rand.N(backoff))
			backoff = min(2*backoff, ceiling)
			continue
		}
		backoff = initial
		if pos != nil && !sub.Recovered {
			s.rec.notRecovered(sub.Epoch, sub.Missed)
		}
		if pos == nil {
			pos = &position{Offset: sub.Offset, Epoch: sub.Epoch}
		}
		s.rec.connected(conn.Node)
		readyOnce.Do(func() { close(s.ready) })
		retryAfter := time.Duration(0)
		for {
			f, err := w.next(ctx)
			if err != nil {
				break
			}
			switch f.Type {
			case "message":
				if f.Channel != s.ch {
					continue
				}
				s.rec.message(f.Epoch, f.Offset)
				if f.Epoch != pos.Epoch || f.Offset > pos.Offset {
					pos = &position{Offset: f.Offset, Epoch: f.Epoch}
				}
			case "disconnect":
				retryAfter = time.Duration(f.RetryAfterMS) * time.Millisecond
			}
		}
		w.close()
		if ctx.Err() != nil {
			return
		}
		s.rec.lost(w.closeCode())
		sleepCtx(ctx, max(retryAfter, backoff/2+rand.N(backoff)))
	}
}

// sdkSub is a subscriber on the Go SDK (reconnect with backoff and jitter,
// session resumption, deduplication by offset).
type sdkSub struct {
	rec *recorder
	c   *client.Client
	sub *client.Subscription
}

// sdkBackoff is the SDK's backoff in these tests: its defaults but a
// shorter first delay, so that the tests spend less time waiting. With
// FERRY_CLUSTER_SDK_DEFAULTS=1 it is the SDK's defaults (Initial 1 s), for
// the reconnect figures of docs/operations.md
// (scripts/reconnect-figures.sh).
var sdkBackoff = func() client.Backoff {
	if os.Getenv("FERRY_CLUSTER_SDK_DEFAULTS") == "1" {
		return client.Backoff{}
	}
	return client.Backoff{Initial: 250 * time.Millisecond, Max: 2 * time.Second}
}()

func startSDKSub(t testing.TB, name, url string, header http.Header, token, ch string, opts ...client.SubscribeOption) *sdkSub {
	t.Helper()
	rec := newRecorder(name)
	s := &sdkSub{rec: rec}
	var err error
	s.c, err = client.New(url, client.Config{
		Token:   token,
		Header:  header,
		Backoff: sdkBackoff,
		Logger:  slog.New(&connectedLog{rec: rec}),
		OnState: func(sc client.StateChange) {
			switch sc.State {
			case client.StateDisconnected:
				if sc.Prev == client.StateConnecting && sc.Err != nil {
					rec.attemptFailed(sc.Err)
				}
				if sc.Prev == client.StateConnected {
					code := sc.Code
					if code == 0 {
						code = -1
					}
					rec.lost(code)
				}
			case client.StateConnected:
				rec.connected("") // the node comes from the log line
			}
		},
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { _ = s.c.Close() })
	ctx, cancel := withTimeout()
	defer cancel()
	if err := s.c.Connect(ctx); err != nil {
		t.Fatalf("%s: connect: %v", name, err)
	}
	opts = append(opts,
		client.WithHandler(func(m client.Message) { rec.message(m.Epoch, m.Offset) }),
		client.WithGapHandler(func(g client.Gap) {
			rec.notRecovered(g.Epoch, g.Missed)
			rec.mu.Lock()
			rec.gaps = append(rec.gaps, g)
			rec.mu.Unlock()
		}))
	s.sub, err = s.c.Subscribe(ctx, ch, opts...)
	if err != nil {
		t.Fatalf("%s: subscribe %s: %v", name, ch, err)
	}
	return s
}

func (s *sdkSub) record() *recorder { return s.rec }
func (s *sdkSub) close()            { _ = s.c.Close() }

// connectedLog is a slog handler that picks the node id out of the SDK's
// "ferry connected" log line (the SDK does not expose it otherwise).
type connectedLog struct{ rec *recorder }

func (h *connectedLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *connectedLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *connectedLog) WithGroup(string) slog.Handler            { return h }
func (h *connectedLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "ferry connected" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "node" {
			h.rec.mu.Lock()
			h.rec.nodes = append(h.rec.nodes, a.Value.String())
			h.rec.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

// publisher publishes numbered messages through the server API at a fixed
// rate, each with an idempotency key, retrying a failed publish with the
// same key until it succeeds (a node may die mid-request).
type publisher struct {
	c    *cluster
	base string
	ch   string

	mu       sync.Mutex
	results  []publishResult
	attempts int
	failures map[string]int // failed attempts by kind
	retried  int            // messages that needed more than one attempt
}

func newPublisher(c *cluster, base, ch string) *publisher {
	return &publisher{c: c, base: base, ch: ch, failures: map[string]int{}}
}

// run publishes up to n messages, one every interval, and returns when
// they are all accepted, stop is closed (checked between messages, so that
// no publish is left half-done), or ctx ends (an error).
func (p *publisher) run(ctx context.Context, n int, interval time.Duration, stop <-chan struct{}) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range n {
		if err := p.one(ctx, i); err != nil {
			return err
		}
		select {
		case <-tick.C:
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// start runs run on a goroutine; the returned function stops it and
// returns run's error.
func (p *publisher) start(n int, interval time.Duration) (stop func() error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	stopCh := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- p.run(ctx, n, interval, stopCh) }()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			close(stopCh)
			err = <-errc
			cancel()
		})
		return err
	}
}

// wait waits until the publisher has accepted n messages.
func (p *publisher) wait(t testing.TB, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d messages published (%s)", n, p.summary()), func() bool { return p.count() >= n })
}

func (p *publisher) one(ctx context.Context, i int) error {
	key := fmt.Sprintf("%s-%d", p.ch, i)
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := p.c.publish(actx, p.base, p.ch, map[string]int{"n": i}, key)
		cancel()
		p.mu.Lock()
		p.attempts++
		if err == nil {
			p.results = append(p.results, res)
			if attempt > 0 {
				p.retried++
			}
			p.mu.Unlock()
			return nil
		}
		p.failures[failureKind(err)]++
		p.mu.Unlock()
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return fmt.Errorf("publish %s: %w (last error: %v)", key, ctx.Err(), err)
		}
	}
}

func failureKind(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return fmt.Sprintf("HTTP %d", ae.status)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "refused"
	case strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "reset"):
		return "connection lost"
	}
	return "other"
}

// count is how many messages were accepted so far.
func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.results)
}

// positions returns where each accepted message landed.
func (p *publisher) positions() []position {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]position, len(p.results))
	for i, r := range p.results {
		out[i] = position{Offset: r.Offset, Epoch: r.Epoch}
	}
	return out
}

// summary describes the publisher's work for the log.
func (p *publisher) summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	kinds := make([]string, 0, len(p.failures))
	for k, n := range p.failures {
		kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("published %d messages in %d attempts (%d needed a retry; failed attempts: %s)",
		len(p.results), p.attempts, p.retried, strings.Join(kinds, ", "))
}

// checkContiguous fails t unless the publisher's positions are offsets
// 1..n of one epoch, each once: the idempotency keys made every retry land
// on the original offset.
func checkContiguous(t testing.TB, pos []position) {
	t.Helper()
	if len(pos) == 0 {
		t.Fatal("nothing was published")
	}
	epoch := pos[0].Epoch
	seen := map[uint64]bool{}
	for _, p := range pos {
		if p.Epoch != epoch {
			t.Fatalf("publishes landed in two epochs (%s, %s) without Redis losing data", epoch, p.Epoch)
		}
		if seen[p.Offset] {
			t.Fatalf("two publishes got offset %d", p.Offset)
		}
		seen[p.Offset] = true
	}
	for off := uint64(1); off <= uint64(len(pos)); off++ {
		if !seen[off] {
			t.Fatalf("offsets of %d publishes are not 1..%d: %d is missing (a retried publish was applied twice?)", len(pos), len(pos), off)
		}
	}
}

// report checks every subscriber against want (zero lost, zero duplicated,
// nothing unexpected), logs the figures and returns every reconnect time.
func report(t testing.TB, subs []subscriber, want []position) []time.Duration {
	t.Helper()
	var all []time.Duration
	var lost, dup, delivered int
	for _, s := range subs {
		r := s.record()
		d := r.compare(want)
		r.mu.Lock()
		t.Logf("%-10s delivered %d/%d, lost %d, duplicated %d, unexpected %d; reconnects %d %v; close codes %v; nodes %v; skips %v; not recovered %v; failed attempts %v",
			r.name, d.delivered, d.want, d.lost, d.duplicated, d.extra, len(r.reconnects), roundAll(r.reconnects), r.codes, r.nodes, r.skips, r.notRecov, r.failed)
		all = append(all, r.reconnects...)
		stale, back := r.stale, r.backwards
		r.mu.Unlock()
		lost += d.lost
		dup += d.duplicated
		delivered += d.delivered
		if d.lost > 0 {
			t.Errorf("%s lost %d messages, e.g. %v", r.name, d.lost, d.lostSample)
		}
		if d.duplicated > 0 {
			t.Errorf("%s got %d duplicates", r.name, d.duplicated)
		}
		if d.extra > 0 {
			t.Errorf("%s got %d messages nobody published", r.name, d.extra)
		}
		if stale > 0 || back > 0 {
			t.Errorf("%s got %d messages of an old epoch and %d out of order", r.name, stale, back)
		}
	}
	t.Logf("TOTAL: %d subscribers, %d messages published, %d delivered, %d lost, %d duplicated; %d reconnects, p50 %v, max %v",
		len(subs), len(want), delivered, lost, dup, len(all), percentile(all, 50).Round(time.Millisecond), percentile(all, 100).Round(time.Millisecond))
	return all
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// logConnections logs how each subscriber's connections went.
func logConnections(t testing.TB, subs []subscriber) {
	t.Helper()
	for _, s := range subs {
		r := s.record()
		r.mu.Lock()
		t.Logf("%-10s reconnects %d %v; close codes %v; nodes %v; not recovered %v; failed attempts %v",
			r.name, len(r.reconnects), roundAll(r.reconnects), r.codes, r.nodes, r.notRecov, r.failed)
		r.mu.Unlock()
	}
}
