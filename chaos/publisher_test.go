package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/history"
)

// payload is what the publishers send: the publish's key, so a delivery
// names the publish it came from.
type payload struct {
	K string `json:"k"`
}

// retryFor is how long a publisher retries one publish (with the same
// key) before it records the outcome as unknown.
const retryFor = 30 * time.Second

// publisher publishes through the server API of the running nodes, in
// turn, with an idempotency key per publish; a failed call is repeated
// with the same key on the next node.
type publisher struct {
	s   *system
	rec *history.Recorder

	next     atomic.Uint64 // round robin over the nodes
	ok       atomic.Int64
	retries  atomic.Int64
	unknown  atomic.Int64
	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

func newPublisher(s *system, rec *history.Recorder) *publisher {
	return &publisher{s: s, rec: rec, stop: make(chan struct{})}
}

// start publishes on each channel at rate per second, with lanes
// publishes in flight per channel, until halt.
func (p *publisher) start(channels []string, rate, lanes int) {
	interval := time.Duration(lanes) * time.Second / time.Duration(rate)
	for _, ch := range channels {
		for lane := range lanes {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				tick := time.NewTicker(interval)
				defer tick.Stop()
				for seq := 0; ; seq++ {
					select {
					case <-p.stop:
						return
					case <-tick.C:
					}
					p.publishOne(ch, fmt.Sprintf("%s/%d/%d", ch, lane, seq))
				}
			}()
		}
	}
}

// halt stops publishing and waits for the publishes in flight.
func (p *publisher) halt() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// publishOne publishes one message, retrying across nodes, and records
// the outcome.
func (p *publisher) publishOne(ch, key string) {
	data, _ := json.Marshal(payload{K: key})
	deadline := time.Now().Add(retryFor)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			p.retries.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
		running := p.s.runningNodes()
		if len(running) == 0 {
			continue
		}
		n := p.s.nodes[running[int(p.next.Add(1))%len(running)]]
		res, err := p.call(n, ch, key, data)
		if err != nil {
			continue
		}
		p.ok.Add(1)
		p.rec.Published(history.Publish{Channel: ch, Key: key, Position: history.Position{Epoch: res.Epoch, Offset: res.Offset}, Hash: history.Hash(data)})
		return
	}
	p.unknown.Add(1)
	p.rec.Attempted(ch, key)
}

// publishReply is the answer to POST /v1/api/publish.
type publishReply struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

func (p *publisher) call(n *ferrytest.Node, ch, key string, data []byte) (publishReply, error) {
	body, _ := json.Marshal(map[string]any{"channel": ch, "key": key, "data": json.RawMessage(data)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.BaseURL()+"/v1/api/publish", bytes.NewReader(body))
	if err != nil {
		return publishReply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+ferrytest.DefaultAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.s.http.Do(req)
	if err != nil {
		return publishReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return publishReply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return publishReply{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var r publishReply
	if err := json.Unmarshal(b, &r); err != nil || r.Offset == 0 {
		return publishReply{}, fmt.Errorf("publish reply %q: %v", b, err)
	}
	return r, nil
}
