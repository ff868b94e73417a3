package redis

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/internal/testutil/wait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newBroker makes a broker for cfg that is closed when tb ends (Close twice
// is harmless, so tests may close it earlier).
func newBroker(tb testing.TB, cfg Config) *Broker {
	tb.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return b
}

// startBroker makes and starts a broker delivering to a new recorder.
func startBroker(tb testing.TB, cfg Config) (*Broker, *recorder) {
	tb.Helper()
	b := newBroker(tb, cfg)
	rec := &recorder{}
	if err := b.Start(context.Background(), rec); err != nil {
		tb.Fatalf("Start: %v", err)
	}
	return b, rec
}

// recorder is a broker.Handler that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	pubs     []broker.Publication
	controls []broker.Control
}

func (r *recorder) HandlePublication(p *broker.Publication) {
	r.mu.Lock()
	r.pubs = append(r.pubs, *p)
	r.mu.Unlock()
}

func (r *recorder) HandleControl(c broker.Control) {
	r.mu.Lock()
	r.controls = append(r.controls, c)
	r.mu.Unlock()
}

// received returns the publications of ch delivered so far.
func (r *recorder) received(ch string) []broker.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []broker.Publication
	for _, p := range r.pubs {
		if p.Channel == ch {
			out = append(out, p)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing tb after a generous safety
// net (not a timing assertion).
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	wait.Within(tb, 15*time.Second, what, cond)
}

// numSub returns how many connections of srv subscribe to the pub/sub
// channel name.
func numSub(tb testing.TB, srv *redistest.Server, name string) int64 {
	tb.Helper()
	v, err := srv.Do("PUBSUB", "NUMSUB", name)
	if err != nil {
		tb.Fatalf("PUBSUB NUMSUB: %v", err)
	}
	parts, ok := v.([]any)
	if !ok || len(parts) != 2 {
		tb.Fatalf("PUBSUB NUMSUB replied %v", v)
	}
	return parts[1].(int64)
}

func publish(tb testing.TB, b *Broker, ch, data string, opts broker.PublishOptions) broker.PublishResult {
	tb.Helper()
	res, err := b.Publish(context.Background(), ch, broker.Publication{Data: []byte(data)}, opts)
	if err != nil {
		tb.Fatalf("Publish(%s): %v", ch, err)
	}
	return res
}

var keep = broker.PublishOptions{HistorySize: 100, HistoryTTL: time.Hour}
