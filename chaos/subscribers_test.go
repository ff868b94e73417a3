package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil/history"
)

// subscriber is one client of the workload, on one transport, subscribed
// to every channel of the run.
type subscriber interface {
	// Name is the client's name in the history ("ws1", "poll2"...).
	Name() string
	// Close ends the client and waits for its goroutines.
	Close()
}

// deliver records a message handed to the application.
func deliver(rec *history.Recorder, name, ch, epoch string, offset uint64, data []byte) {
	var p payload
	_ = json.Unmarshal(data, &p)
	rec.Delivered(history.Delivery{Client: name, Channel: ch, Position: history.Position{Epoch: epoch, Offset: offset}, Key: p.K, Hash: history.Hash(data)})
}

// wsSub is a WebSocket client: the Go SDK, which reconnects, resumes and
// deduplicates by itself.
type wsSub struct {
	name string
	c    *client.Client
}

func (w *wsSub) Name() string { return w.name }
func (w *wsSub) Close()       { _ = w.c.Close() }

// startWS connects an SDK client to base and subscribes it to channels.
func startWS(t testing.TB, s *system, rec *history.Recorder, name, base string, channels []string) *wsSub {
	t.Helper()
	cfg := client.Config{
		Token:   s.token(name),
		Backoff: client.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		OnGap: func(g client.Gap) {
			rec.Recovered(history.Gap{Client: name, Channel: g.Channel, After: history.Position{Epoch: g.After.Epoch, Offset: g.After.Offset}, Epoch: g.Epoch, Missed: g.Missed})
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	c, err := client.Dial(ctx, base, cfg)
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, base, err)
	}
	w := &wsSub{name: name, c: c}
	t.Cleanup(w.Close)
	for _, ch := range channels {
		sub, err := c.Subscribe(ctx, ch, client.WithHandler(func(m client.Message) {
			deliver(rec, name, m.Channel, m.Epoch, m.Offset, m.Data)
		}))
		if err != nil {
			t.Fatalf("%s: subscribe %s: %v", name, ch, err)
		}
		p := sub.Position()
		rec.Subscribed(name, ch, history.Position{Epoch: p.Epoch, Offset: p.Offset})
	}
	return w
}

// frame is a server frame as the fallback clients read it, decoded
// independently of Ferry's protocol package.
type frame struct {
	Type         string          `json:"type"`
	Channel      string          `json:"channel"`
	Offset       uint64          `json:"offset"`
	Epoch        string          `json:"epoch"`
	Seq          uint64          `json:"seq"`
	Recovered    bool            `json:"recovered"`
	Missed       uint64          `json:"missed"`
	Data         json.RawMessage `json:"data"`
	Code         int             `json:"code"`
	Reason       string          `json:"reason"`
	SessionToken string          `json:"session_token"`
	StreamTicket string          `json:"stream_ticket"`
}

// fallback is the state both HTTP fallback clients share: the session,
// the position per channel (the application's deduplication, as
// docs/protocol.md section 17 asks of a client), and the node it talks to
// (it moves to the next one when a request fails).
type fallback struct {
	name     string
	s        *system
	rec      *history.Recorder
	channels []string
	http     *http.Client

	mu      sync.Mutex
	node    int
	session string
	lastSeq uint64
	pos     map[string]history.Position
	// gapEpoch is, per channel, the epoch whose gap was reported (by a
	// subscribed frame or a live message), so that it is reported once.
	gapEpoch map[string]string
	errs     int
}

func newFallback(s *system, rec *history.Recorder, name string, node int, channels []string) *fallback {
	return &fallback{
		name: name, s: s, rec: rec, channels: channels, node: node,
		http:     &http.Client{Timeout: 30 * time.Second},
		pos:      map[string]history.Position{},
		gapEpoch: map[string]string{},
	}
}

// base is the node the client talks to now.
func (f *fallback) base() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s.clientURL(f.node)
}

// failed moves the client to the next node after a failed request.
func (f *fallback) failed() {
	f.mu.Lock()
	f.node++
	f.errs++
	f.mu.Unlock()
}

// post sends body to path of the current node with the session header.
func (f *fallback) post(ctx context.Context, path string, header http.Header, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// open opens a new session subscribed to every channel, each from the
// position the application had (so a replaced session recovers), and
// returns the connected frame.
func (f *fallback) open(ctx context.Context, transport string) (frame, error) {
	frames := []map[string]any{{"type": "connect", "id": 1, "token": f.s.token(f.name)}}
	f.mu.Lock()
	for i, ch := range f.channels {
		sub := map[string]any{"type": "subscribe", "id": i + 2, "channel": ch}
		if p, ok := f.pos[ch]; ok {
			sub["since"] = map[string]any{"offset": p.Offset, "epoch": p.Epoch}
		}
		frames = append(frames, sub)
	}
	f.mu.Unlock()
	body, _ := json.Marshal(frames)
	status, b, err := f.post(ctx, "/v1/sessions?transport="+transport, nil, body)
	if err != nil {
		return frame{}, err
	}
	if status != http.StatusOK {
		return frame{}, fmt.Errorf("open session: HTTP %d: %s", status, b)
	}
	var c frame
	if err := json.Unmarshal(b, &c); err != nil || c.SessionToken == "" {
		return frame{}, fmt.Errorf("open session: no session_token in %s (%v)", b, err)
	}
	f.mu.Lock()
	f.session, f.lastSeq = c.SessionToken, 0
	f.mu.Unlock()
	return c, nil
}

// handle processes one server frame: messages go to the application
// unless it has them already; subscribed frames that did not recover
// report a gap; a disconnect is reported so that the caller reconnects.
func (f *fallback) handle(fr frame) (disconnected bool) {
	switch fr.Type {
	case "message":
		f.mu.Lock()
		if fr.Seq > 0 {
			f.lastSeq = fr.Seq
		}
		p, had := f.pos[fr.Channel]
		dup := had && p.Epoch == fr.Epoch && fr.Offset <= p.Offset
		// A live message of another epoch: the stream was reset under
		// the open subscription (a failover lost acknowledged writes).
		// Reported as the SDKs report it: a gap after what the client
		// had, the new stream's earlier offsets missed.
		reset := had && p.Epoch != "" && p.Epoch != fr.Epoch && f.gapEpoch[fr.Channel] != fr.Epoch
		if reset {
			f.gapEpoch[fr.Channel] = fr.Epoch
		}
		if !dup {
			f.pos[fr.Channel] = history.Position{Epoch: fr.Epoch, Offset: fr.Offset}
		}
		f.mu.Unlock()
		if reset {
			f.rec.Recovered(history.Gap{Client: f.name, Channel: fr.Channel, After: p, Epoch: fr.Epoch, Missed: fr.Offset - 1})
		}
		if !dup {
			deliver(f.rec, f.name, fr.Channel, fr.Epoch, fr.Offset, fr.Data)
		}
	case "subscribed":
		f.mu.Lock()
		p, had := f.pos[fr.Channel]
		if !had {
			// The first subscription: it starts where the channel is.
			f.pos[fr.Channel] = history.Position{Epoch: fr.Epoch, Offset: fr.Offset}
		} else if !fr.Recovered {
			f.gapEpoch[fr.Channel] = fr.Epoch
		}
		f.mu.Unlock()
		if !had {
			f.rec.Subscribed(f.name, fr.Channel, history.Position{Epoch: fr.Epoch, Offset: fr.Offset})
		} else if !fr.Recovered {
			f.rec.Recovered(history.Gap{Client: f.name, Channel: fr.Channel, After: p, Epoch: fr.Epoch, Missed: fr.Missed})
		}
	case "disconnect":
		return true
	}
	return false
}

// pollSub is a long-poll client (docs/protocol.md section 17).
type pollSub struct {
	*fallback
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *pollSub) Name() string { return p.name }
func (p *pollSub) Close()       { p.cancel(); <-p.done }

// startPoll opens a long-poll session on node and polls until closed.
func startPoll(t testing.TB, s *system, rec *history.Recorder, name string, node int, channels []string) *pollSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pollSub{fallback: newFallback(s, rec, name, node, channels), cancel: cancel, done: make(chan struct{})}
	octx, ocancel := context.WithTimeout(ctx, hangGuard)
	defer ocancel()
	if _, err := p.open(octx, "poll"); err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	// The subscribed replies come with the first poll; wait for them so
	// that the subscriptions are in place before publishing starts.
	for !p.subscribedAll() {
		if octx.Err() != nil {
			cancel()
			t.Fatalf("%s: no subscribed replies within %v", name, hangGuard)
		}
		p.pollOnce(octx)
	}
	go p.run(ctx)
	t.Cleanup(p.Close)
	return p
}

func (f *fallback) subscribedAll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pos) == len(f.channels)
}

func (p *pollSub) run(ctx context.Context) {
	defer close(p.done)
	for ctx.Err() == nil {
		p.pollOnce(ctx)
	}
}

// pollOnce sends one poll; on a failure it moves to the next node (the
// session follows: any node adopts it), and when the session is gone it
// opens a new one that recovers from the application's positions.
func (p *pollSub) pollOnce(ctx context.Context) {
	p.mu.Lock()
	h := http.Header{}
	h.Set("Ferry-Session", p.session)
	h.Set("Last-Event-ID", strconv.FormatUint(p.lastSeq, 10))
	p.mu.Unlock()
	status, body, err := p.post(ctx, "/v1/poll?wait=1000", h, nil)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil || status >= 500 || status == http.StatusTooManyRequests:
		p.failed()
		sleepCtx(ctx, 100*time.Millisecond)
		return
	case status == http.StatusNotFound || status == http.StatusUnauthorized:
		p.reopen(ctx)
		return
	case status != http.StatusOK:
		p.failed()
		sleepCtx(ctx, 100*time.Millisecond)
		return
	}
	var frames []frame
	if err := json.Unmarshal(body, &frames); err != nil {
		p.failed()
		return
	}
	for _, fr := range frames {
		if p.handle(fr) {
			// Drained or moved: the next poll (on the next node if
			// this one goes away) resumes the session.
			p.failed()
		}
	}
}

// reopen opens a new session, retrying across nodes until ctx ends.
func (p *pollSub) reopen(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := p.open(ctx, "poll"); err == nil {
			return
		}
		p.failed()
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
