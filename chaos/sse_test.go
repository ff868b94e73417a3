package chaos_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/history"
)

// sseSub is an SSE client (docs/protocol.md section 17): one event stream
// per session at a time; after a stream ends it gets a new ticket for the
// session (on the next node when one fails) and reopens the stream with
// Last-Event-ID, and when the session is gone it opens a new one that
// recovers from the application's positions.
type sseSub struct {
	*fallback
	cancel context.CancelFunc
	done   chan struct{}
	ticket string // for the next stream; "" means ask for one
}

func (s *sseSub) Name() string { return s.name }
func (s *sseSub) Close()       { s.cancel(); <-s.done }

// startSSE opens an SSE session on node and reads its streams until
// closed. It returns once the subscriptions are confirmed.
func startSSE(t testing.TB, s *system, rec *history.Recorder, name string, node int, channels []string) *sseSub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &sseSub{fallback: newFallback(s, rec, name, node, channels), cancel: cancel, done: make(chan struct{})}
	// Streams last; only the requests that are not streams time out.
	c.http = &http.Client{}
	octx, ocancel := context.WithTimeout(ctx, hangGuard)
	defer ocancel()
	connected, err := c.open(octx, "sse")
	if err != nil {
		cancel()
		t.Fatalf("%s: %v", name, err)
	}
	c.ticket = connected.StreamTicket
	go c.run(ctx)
	t.Cleanup(c.Close)
	for !c.subscribedAll() {
		if octx.Err() != nil {
			t.Fatalf("%s: no subscribed events within %v", name, hangGuard)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

func (s *sseSub) run(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		if s.ticket == "" && !s.newTicket(ctx) {
			continue
		}
		tk := s.ticket
		s.ticket = ""
		s.stream(ctx, tk)
	}
}

// newTicket asks the current node for a ticket for the session; on a
// failure it moves on (to the next node, or to a new session).
func (s *sseSub) newTicket(ctx context.Context) bool {
	s.mu.Lock()
	h := http.Header{}
	h.Set("Ferry-Session", s.session)
	s.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	status, body, err := s.post(rctx, "/v1/tickets", h, nil)
	switch {
	case ctx.Err() != nil:
		return false
	case err == nil && status == http.StatusOK:
		var r struct {
			Ticket string `json:"ticket"`
		}
		if json.Unmarshal(body, &r) == nil && r.Ticket != "" {
			s.ticket = r.Ticket
			return true
		}
	case err == nil && (status == http.StatusNotFound || status == http.StatusUnauthorized):
		for ctx.Err() == nil {
			c, err := s.open(ctx, "sse")
			if err == nil {
				s.ticket = c.StreamTicket
				return true
			}
			s.failed()
			sleepCtx(ctx, 100*time.Millisecond)
		}
		return false
	}
	s.failed()
	sleepCtx(ctx, 100*time.Millisecond)
	return false
}

// stream reads one event stream until it ends.
func (s *sseSub) stream(ctx context.Context, ticket string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base()+"/v1/sse?ticket="+ticket, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.lastSeq > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.lastSeq, 10))
	}
	s.mu.Unlock()
	resp, err := s.http.Do(req)
	if err != nil {
		s.failed()
		sleepCtx(ctx, 100*time.Millisecond)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.failed()
		sleepCtx(ctx, 100*time.Millisecond)
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data.Len() > 0 {
				var fr frame
				if json.Unmarshal([]byte(data.String()), &fr) == nil && s.handle(fr) {
					// Drained or taken over: reconnect, perhaps elsewhere.
					s.failed()
					return
				}
				data.Reset()
			}
		case strings.HasPrefix(line, "data:"):
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	// The stream ended (the node went away, or cut it).
	s.failed()
}
