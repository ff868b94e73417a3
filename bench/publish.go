package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// pubReport is what the publisher did.
type pubReport struct {
	Attempts int64 `json:"attempts"`
	// OK counts accepted publishes by [node][channel]. With PublishFirst
	// only node 0 is published to.
	OK     [][]int64      `json:"ok"`
	Errors map[string]int `json:"errors,omitempty"`
	// Late counts publishes that started more than 10 ms after their
	// scheduled time (the publisher could not keep the rate).
	Late int64 `json:"late"`
	// Unsent counts scheduled publishes dropped because the publishers
	// were still behind when the duration (and its grace) was over.
	Unsent int64     `json:"unsent"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

func (r *pubReport) total() int64 {
	var n int64
	for _, row := range r.OK {
		for _, v := range row {
			n += v
		}
	}
	return n
}

// publisher publishes timestamped payloads at a fixed rate, round-robin
// over the channels, through the server API or over WebSocket.
type publisher struct {
	cfg      Config
	targets  []Target // the nodes published to
	channels []string
	hc       *http.Client
	ws       *group // PublishWS: the publishing connections

	mu     sync.Mutex
	rep    pubReport
	sent   atomic.Int64 // accepted so far (API), for progress lines
	failed atomic.Int64
}

func newPublisher(cfg Config, targets []Target, channels []string, hc *http.Client) *publisher {
	if cfg.PublishTo == PublishFirst {
		targets = targets[:1]
	}
	p := &publisher{cfg: cfg, targets: targets, channels: channels, hc: hc}
	p.rep.OK = make([][]int64, len(targets))
	for i := range p.rep.OK {
		p.rep.OK[i] = make([]int64, len(channels))
	}
	p.rep.Errors = map[string]int{}
	return p
}

// openWS opens the publishing connections (PublishWS).
func (p *publisher) openWS(ctx context.Context, runID string) error {
	spec := groupSpec{
		Targets:        p.targets,
		Channels:       p.channels,
		Count:          p.cfg.Publishers * len(p.targets),
		Secret:         p.cfg.Secret,
		RunID:          runID + "-pub", // user ids apart from the subscribers'
		Concurrency:    16,
		Client:         ClientGoroutine,
		ConnectTimeout: p.cfg.ConnectTimeout,
		Codec:          p.cfg.Codec,
		publisher:      true,
	}
	g, err := newGroup(spec)
	if err != nil {
		return err
	}
	if err := g.prepare(); err != nil {
		return err
	}
	rep, err := g.openAll(ctx)
	if err != nil {
		_, _ = g.closeAll()
		return err
	}
	if rep.Failed > 0 {
		_, _ = g.closeAll()
		return fmt.Errorf("publishing connections: %d of %d failed: %v", rep.Failed, spec.Count, rep.Errors)
	}
	p.ws = g
	return nil
}

type pubJob struct {
	seq int64
	at  time.Time
}

// publishGrace is how long after the duration publishers that fell
// behind the schedule may go on before the rest is dropped (Unsent).
const publishGrace = 5 * time.Second

// run publishes rate*duration messages on schedule and returns when the
// last request has been answered (API) or written (WS). Publishers that
// cannot keep the rate do not run past the duration by more than
// publishGrace: what is left then is counted as Unsent, not sent.
func (p *publisher) run(ctx context.Context) {
	total := int64(p.cfg.Rate * p.cfg.Duration.Seconds())
	jobs := make(chan pubJob, 4096)
	start := time.Now()
	stop := start.Add(p.cfg.Duration + publishGrace)
	var wg sync.WaitGroup
	for k := range p.cfg.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.sender(ctx, k, jobs, stop)
		}()
	}
	p.mu.Lock()
	p.rep.Start = start
	p.mu.Unlock()
	interval := float64(time.Second) / p.cfg.Rate
schedule:
	for seq := int64(0); seq < total; seq++ {
		at := start.Add(time.Duration(float64(seq) * interval))
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				break schedule
			case <-t.C:
			}
		}
		select {
		case jobs <- pubJob{seq: seq, at: at}:
		case <-ctx.Done():
			break schedule
		}
	}
	close(jobs)
	wg.Wait()
	p.mu.Lock()
	p.rep.End = time.Now()
	p.mu.Unlock()
}

func (p *publisher) sender(ctx context.Context, k int, jobs <-chan pubJob, stop time.Time) {
	body := make([]byte, 0, 128+p.cfg.Payload)
	for j := range jobs {
		if ctx.Err() != nil {
			continue // drain the channel
		}
		if time.Now().After(stop) {
			p.mu.Lock()
			p.rep.Unsent += int64(len(p.targets))
			p.mu.Unlock()
			continue
		}
		ch := int(j.seq % int64(len(p.channels)))
		for n := range p.targets {
			now := time.Now()
			late := now.Sub(j.at) > 10*time.Millisecond
			var err error
			if p.ws != nil {
				err = p.publishWS(k*len(p.targets)+n, j.seq, ch, now, body[:0])
			} else {
				err = p.publishAPI(ctx, n, ch, now, body[:0])
			}
			p.mu.Lock()
			p.rep.Attempts++
			if late {
				p.rep.Late++
			}
			switch {
			case err != nil:
				p.rep.Errors[err.Error()]++
				p.failed.Add(1)
			case p.ws == nil:
				p.rep.OK[n][ch]++
				p.sent.Add(1)
			}
			p.mu.Unlock()
		}
	}
}

func (p *publisher) publishAPI(ctx context.Context, node, ch int, now time.Time, body []byte) error {
	body = append(body, `{"channel":`...)
	body = strconv.AppendQuote(body, p.channels[ch])
	body = append(body, `,"data":`...)
	body = appendPayload(body, now.UnixNano(), p.cfg.Payload)
	body = append(body, '}')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.targets[node].Base+"/v1/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("api: %w", unwrapURLError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("api: HTTP %d", resp.StatusCode)
	}
	return nil
}

// publishWS writes a publish frame on publishing connection i; its reply
// is counted by the connection's reader.
func (p *publisher) publishWS(i int, seq int64, ch int, now time.Time, body []byte) error {
	c := p.ws.conns[i].Load()
	if c == nil || c.nc == nil {
		return fmt.Errorf("ws: publishing connection %d is down", i)
	}
	id := seq%(1<<31) + 1
	if p.ws.wire.op != opText {
		// A binary codec: the payload is the same JSON, in the codec's
		// frame.
		data := appendPayload(body, now.UnixNano(), p.cfg.Payload)
		var err error
		body, err = p.ws.wire.encode(&protocol.ClientFrame{
			Type: protocol.TypePublish, ID: uint32(id), Channel: p.channels[ch], Data: data,
		})
		if err != nil {
			return fmt.Errorf("ws: %w", err)
		}
	} else {
		body = append(body, `{"type":"publish","id":`...)
		body = strconv.AppendInt(body, id, 10)
		body = append(body, `,"channel":`...)
		body = strconv.AppendQuote(body, p.channels[ch])
		body = append(body, `,"data":`...)
		body = appendPayload(body, now.UnixNano(), p.cfg.Payload)
		body = append(body, '}')
	}
	frame := appendClientFrame(make([]byte, 0, len(body)+14), p.ws.wire.op, body, rand.Uint32())
	if _, err := c.nc.Write(frame); err != nil {
		return fmt.Errorf("ws: %w", err)
	}
	return nil
}

// report returns what was published. With PublishWS, the accepted counts
// are the replies received so far.
func (p *publisher) report() pubReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rep
	r.Errors = make(map[string]int, len(p.rep.Errors))
	for k, v := range p.rep.Errors {
		r.Errors[k] = v
	}
	r.OK = make([][]int64, len(p.rep.OK))
	for i := range p.rep.OK {
		r.OK[i] = append([]int64(nil), p.rep.OK[i]...)
	}
	if p.ws != nil {
		for i := range r.OK {
			for ch := range r.OK[i] {
				r.OK[i][ch] = p.ws.pubOK[i][ch].Load()
			}
		}
		if n := p.ws.pubErr.Load(); n > 0 {
			r.Errors["ws: error reply"] += int(n)
		}
	}
	return r
}

// accepted is the number of publishes accepted so far.
func (p *publisher) accepted() int64 {
	if p.ws != nil {
		var n int64
		for i := range p.ws.pubOK {
			for ch := range p.ws.pubOK[i] {
				n += p.ws.pubOK[i][ch].Load()
			}
		}
		return n
	}
	return p.sent.Load()
}

// close closes the publishing connections.
func (p *publisher) close() {
	if p.ws != nil {
		_, _ = p.ws.closeAll()
	}
}

// unwrapURLError drops net/http's "Post URL:" wrapping, so that error
// counts group by cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
