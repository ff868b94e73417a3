package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport is how the bench's connections reach the server.
type Transport string

const (
	// TransportWS is a WebSocket per connection (every client kind).
	TransportWS Transport = "ws"
	// TransportSSE is an HTTP-fallback session per connection with its
	// Server-Sent Events stream open: POST /v1/sessions?transport=sse
	// with [connect, subscribe], then GET /v1/sse?ticket=... read by a
	// goroutine, as a browser's EventSource does.
	TransportSSE Transport = "sse"
	// TransportPoll is a long-poll session per connection: POST
	// /v1/sessions?transport=poll, then one POST /v1/poll held at a time
	// by a goroutine (each answered after 25 s when nothing happens).
	TransportPoll Transport = "poll"
)

// The HTTP fallbacks (docs/protocol.md section 17) are measured with one
// goroutine per session, JSON only, in the modes that hold or open
// connections (idle, connect, cluster without a rate); fanout over them
// is not measured yet. A session counts as open once its stream is open
// (SSE: the stream's first event after subscribing; poll: the session
// created and, when subscribing, the first poll's "subscribed").

// httpConn is one SSE or long-poll session.
type httpConn struct {
	node   int16
	ch     int32
	token  string          // session_token (poll)
	body   io.ReadCloser   // the SSE stream, read by its goroutine
	rd     *bufio.Reader   // over body
	ctx    context.Context // the session's life: canceled by closeFallback
	cancel context.CancelFunc
	seq    uint64 // poll: the seq of the last message, for Last-Event-ID
}

// fallbackFrame is the part of a server frame the fallback client reads.
type fallbackFrame struct {
	Type         string `json:"type"`
	ID           uint32 `json:"id"`
	Code         int    `json:"code"`
	Reason       string `json:"reason"`
	Seq          uint64 `json:"seq"`
	SessionToken string `json:"session_token"`
	StreamTicket string `json:"stream_ticket"`
}

// httpClients returns one HTTP client per source address, for the
// fallback sessions and the library client's upgrades: no overall timeout
// (streams and polls are long), and enough idle connections kept that a
// poll goroutine reuses its own (an upgraded connection never goes idle).
func (g *group) httpClients() []*http.Client {
	out := make([]*http.Client, len(g.dialers))
	per := g.spec.Count/max(len(g.dialers), 1) + 1
	for k, d := range g.dialers {
		out[k] = &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: per,
			MaxIdleConns:        per * len(g.targets),
		}}
	}
	return out
}

// dialFallback opens session i over SSE or long-poll, subscribed to its
// channel when the run subscribes.
func (g *group) dialFallback(ctx context.Context, i int) (*httpConn, error) {
	c := &httpConn{}
	c.node, c.ch = g.place(i)
	t := g.targets[c.node]
	hc := g.lib[i%len(g.lib)]
	// The stream or the poll outlives the handshake: its own context,
	// canceled by closeFallback (or below, when the handshake fails or
	// takes longer than ConnectTimeout).
	life, cancel := context.WithCancel(context.Background())
	c.ctx, c.cancel = life, cancel
	stop := context.AfterFunc(ctx, cancel)
	timer := time.AfterFunc(g.spec.ConnectTimeout, cancel)
	fail := func(kind string, err error) (*httpConn, error) {
		cancel()
		if c.body != nil {
			_ = c.body.Close()
		}
		return nil, failure(kind, err)
	}
	defer func() {
		stop()
		timer.Stop()
	}()

	hello := []map[string]any{{"type": "connect", "id": 1, "client": "ferry-bench-" + string(g.spec.Transport) + "/1"}}
	if g.spec.Subscribe {
		hello = append(hello, map[string]any{"type": "subscribe", "id": 2, "channel": g.spec.Channels[c.ch]})
	}
	body, err := json.Marshal(hello)
	if err != nil {
		return fail("encode", err)
	}
	req, err := http.NewRequestWithContext(life, http.MethodPost, t.Base+"/v1/sessions?transport="+string(g.spec.Transport), bytes.NewReader(body))
	if err != nil {
		return fail("handshake", err)
	}
	req.Header.Set("Authorization", "Bearer "+g.tokens[i])
	req.Header.Set("Content-Type", "application/json")
	var connected fallbackFrame
	if err := doJSON(hc, req, &connected); err != nil {
		return fail("handshake", err)
	}
	if connected.Type != "connected" || connected.SessionToken == "" {
		return fail("refused", fmt.Errorf("%w: %s %d %s", ErrRefused, connected.Type, connected.Code, connected.Reason))
	}
	c.token = connected.SessionToken

	if g.spec.Transport == TransportPoll {
		if !g.spec.Subscribe {
			return c, nil
		}
		// The subscribe's reply comes in the first poll's answer.
		for {
			frames, err := g.poll(life, hc, t, c)
			if err != nil {
				return fail("poll", err)
			}
			for _, f := range frames {
				switch {
				case f.Type == "error" || f.Type == "disconnect":
					return fail("refused", fmt.Errorf("%w: %s %d %s", ErrRefused, f.Type, f.Code, f.Reason))
				case f.Type == "subscribed" && f.ID == 2:
					return c, nil
				}
			}
		}
	}

	req, err = http.NewRequestWithContext(life, http.MethodGet, t.Base+"/v1/sse?ticket="+connected.StreamTicket, nil)
	if err != nil {
		return fail("handshake", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return fail("handshake", err)
	}
	c.body = resp.Body
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fail("handshake", fmt.Errorf("%w: GET /v1/sse: %s: %s", ErrHandshake, resp.Status, bytes.TrimSpace(b)))
	}
	c.rd = bufio.NewReaderSize(resp.Body, 1024)
	for {
		ev, data, err := readEvent(c.rd)
		if err != nil {
			return fail("read", err)
		}
		switch ev {
		case "":
			// A comment (": ferry" opens the stream): ready when not
			// subscribing.
			if !g.spec.Subscribe {
				return c, nil
			}
		case "error", "disconnect":
			var f fallbackFrame
			_ = json.Unmarshal(data, &f)
			return fail("refused", fmt.Errorf("%w: %s %d %s", ErrRefused, ev, f.Code, f.Reason))
		case "subscribed":
			var f fallbackFrame
			if err := json.Unmarshal(data, &f); err != nil {
				return fail("protocol", err)
			}
			if f.ID == 2 {
				return c, nil
			}
		}
	}
}

// doJSON sends req and decodes a 200 answer into out; any other status
// is an error that quotes the body.
func doJSON(hc *http.Client, req *http.Request, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s %s: %s: %s", ErrHandshake, req.Method, req.URL.Path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// poll makes one long-poll request for c and returns the frames it got.
func (g *group) poll(ctx context.Context, hc *http.Client, t Target, c *httpConn) ([]fallbackFrame, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Base+"/v1/poll", strings.NewReader("[]"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Ferry-Session", c.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Last-Event-ID", strconv.FormatUint(c.seq, 10))
	var frames []fallbackFrame
	if err := doJSON(hc, req, &frames); err != nil {
		return nil, err
	}
	for _, f := range frames {
		c.seq = max(c.seq, f.Seq)
	}
	return frames, nil
}

// readEvent reads one Server-Sent Event: its type ("" for a comment) and
// its data.
func readEvent(rd *bufio.Reader) (event string, data []byte, err error) {
	comment := false
	for {
		line, err := rd.ReadSlice('\n')
		if err != nil {
			return "", nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if event != "" || data != nil || comment {
				return event, data, nil
			}
		case line[0] == ':':
			comment = true
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[len("data:"):])...)
		}
	}
}

// attachFallback keeps c open with its own goroutine: the SSE stream
// read to its end, or polls one after the other. Heartbeat comments on
// the stream count as pings.
func (g *group) attachFallback(i int, c *httpConn) {
	g.open.Add(1)
	g.httpConns[i].Store(c)
	g.readers.Add(1)
	go func() {
		defer g.readers.Done()
		why := g.holdFallback(i, c)
		if !g.stopping.Load() {
			g.open.Add(-1)
			g.lostMu.Lock()
			g.lost[why]++
			g.lostMu.Unlock()
		}
	}()
}

// holdFallback runs c's stream or polls until the run closes it or the
// server ends the session, and says why it ended (a close code, or
// "eof" / "http" when the server broke the stream or refused a poll).
func (g *group) holdFallback(i int, c *httpConn) string {
	if g.spec.Transport == TransportPoll {
		hc, t := g.lib[i%len(g.lib)], g.targets[c.node]
		for {
			frames, err := g.poll(c.ctx, hc, t, c)
			if err != nil {
				return "http"
			}
			for _, f := range frames {
				if f.Type == "disconnect" {
					return strconv.Itoa(f.Code)
				}
			}
		}
	}
	for {
		ev, data, err := readEvent(c.rd)
		if err != nil {
			return "eof"
		}
		switch ev {
		case "":
			g.pings.Add(1)
		case "disconnect":
			var f fallbackFrame
			_ = json.Unmarshal(data, &f)
			return strconv.Itoa(f.Code)
		}
	}
}

// closeFallback ends every session's stream or poll at once, which ends
// their goroutines (the server reaps the sessions after its liveness
// timeout).
func (g *group) closeFallback() {
	for i := range g.httpConns {
		if c := g.httpConns[i].Load(); c != nil {
			c.cancel()
		}
	}
}
