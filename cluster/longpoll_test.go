package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/ferry-io/ferry/internal/testutil/proxytest"
)

// postJSON posts body to url with headers and returns the status and the
// body of the answer.
func (c *cluster) postJSON(ctx context.Context, url string, header http.Header, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// sessionHolder returns the node that holds the cluster's only client
// connection (a fallback session counts as one), "" when none or several
// do.
func (c *cluster) sessionHolder() string {
	holder := ""
	for id, n := range c.connections() {
		switch {
		case n == 1 && holder == "":
			holder = id
		case n > 0:
			return ""
		}
	}
	return holder
}

// poller is a long-poll client (docs/protocol.md section 17): it opens a
// session subscribed to one channel, then polls with Last-Event-ID set to
// the seq of the last message it got.
type poller struct {
	c       *cluster
	token   string // the session token
	lastSeq uint64
	seen    map[uint64]int // deliveries per offset
	polls   int
	trace   []string // what each poll returned, for failure messages
}

// openPoller opens a poll session at base, subscribed to ch.
func openPoller(ctx context.Context, t *testing.T, c *cluster, base, ch string) *poller {
	t.Helper()
	open := fmt.Sprintf(`[{"type":"connect","id":1,"token":%q},{"type":"subscribe","id":2,"channel":%q}]`, c.token("poller"), ch)
	status, body, err := c.postJSON(ctx, base+"/v1/sessions?transport=poll", nil, open)
	if err != nil || status != http.StatusOK {
		t.Fatalf("open session at %s: HTTP %d %s %v", base, status, body, err)
	}
	var connected frame
	if err := json.Unmarshal(body, &connected); err != nil || connected.SessionToken == "" {
		t.Fatalf("open session: no session_token in %s (%v)", body, err)
	}
	return &poller{c: c, token: connected.SessionToken, seen: map[uint64]int{}}
}

// poll sends one poll to base and records the messages of the answer.
func (p *poller) poll(ctx context.Context, t *testing.T, base string) {
	t.Helper()
	h := http.Header{}
	h.Set("Ferry-Session", p.token)
	h.Set("Last-Event-ID", strconv.FormatUint(p.lastSeq, 10))
	status, body, err := p.c.postJSON(ctx, base+"/v1/poll?wait=200", h, "")
	p.polls++
	if err != nil || status != http.StatusOK {
		t.Fatalf("poll %d at %s: HTTP %d %s %v", p.polls, base, status, body, err)
	}
	var frames []frame
	if err := json.Unmarshal(body, &frames); err != nil {
		t.Fatalf("poll %d: %v: %s", p.polls, err, body)
	}
	var got []string
	for _, f := range frames {
		switch f.Type {
		case "disconnect":
			t.Fatalf("poll %d: disconnected %d %q", p.polls, f.Code, f.Reason)
		case "message":
			p.seen[f.Offset]++
			p.lastSeq = f.Seq
			got = append(got, strconv.FormatUint(f.Offset, 10))
		case "subscribed":
			got = append(got, fmt.Sprintf("subscribed(offset %d, recovered %v)", f.Offset, f.Recovered))
		default:
			got = append(got, f.Type)
		}
	}
	p.trace = append(p.trace, fmt.Sprintf("poll %d (Last-Event-ID sent %s): %v", p.polls, h.Get("Last-Event-ID"), got))
}

// check fails t unless offsets 1..total each arrived, none more than
// twice (section 17: a message sent just before a move may come again).
func (p *poller) check(t *testing.T, total int) (dups int) {
	t.Helper()
	var missing, many []uint64
	for off := uint64(1); off <= uint64(total); off++ {
		switch n := p.seen[off]; {
		case n == 0:
			missing = append(missing, off)
		case n > 2:
			many = append(many, off)
			dups += n - 1
		case n == 2:
			dups++
		}
	}
	if len(missing) > 0 || len(many) > 0 {
		trace := p.trace
		if len(trace) > 8 {
			trace = trace[:8]
		}
		t.Errorf("long-poll across nodes: offsets never delivered %v; offsets delivered more than twice %v (%d polls); first polls:\n%s",
			missing, many, p.polls, joinLines(trace))
	}
	return dups
}

func joinLines(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// TestLongPollSessionFollowsAcrossNodes: a long-poll client (HTTP
// fallback, docs/protocol.md section 17) whose requests land on different
// nodes. Fallback sessions used to be node-local: a poll on another node got
// 404 and the client had to open a new session. Since commit ff8e6ff they
// live in the broker, and section 17 promises that the node a poll lands on
// adopts the session and replays what the client has not confirmed with
// Last-Event-ID, so that nothing is lost. This test holds the server to
// that: every poll answered 200, every message delivered, none more than
// twice. A token no node knows still gets 404.
func TestLongPollSessionFollowsAcrossNodes(t *testing.T) {
	const total = 60

	// The smallest case, on the nodes directly: the session is opened on
	// one node, three messages are published, and the first poll goes to
	// another node.
	t.Run("first-poll-elsewhere", func(t *testing.T) {
		c := startCluster(t, 2)
		ctx, cancel := withTimeout()
		defer cancel()
		n1, n2 := c.nodes.Nodes[0], c.nodes.Nodes[1]
		const ch = "chat:poll-direct"
		p := openPoller(ctx, t, c, n1.BaseURL(), ch)
		for i := 1; i <= 3; i++ {
			c.mustPublish(n1.BaseURL(), ch, i)
		}
		for _, n := range []string{n2.BaseURL(), n2.BaseURL(), n1.BaseURL()} {
			p.poll(ctx, t, n)
		}
		p.check(t, 3)
	})

	// Through nginx round-robin: consecutive polls land on different nodes.
	t.Run("nginx-round-robin", func(t *testing.T) {
		c := startCluster(t, 3)
		ngx := proxytest.StartNginx(t, c.backends()...)
		ctx, cancel := withTimeout()
		defer cancel()
		const ch = "chat:poll-nginx"
		p := openPoller(ctx, t, c, ngx.URL(), ch)
		holders := []string{c.sessionHolder()}
		published, stalled := 0, 0
		for stalled < 10 && len(p.seen) < total {
			for i := 0; i < 3 && published < total; i++ {
				published++
				c.mustPublish(ngx.URL(), ch, published)
			}
			before := len(p.seen)
			p.poll(ctx, t, ngx.URL())
			if published == total && len(p.seen) == before {
				stalled++
			}
			var holder string
			eventually(t, "one node holds the session", func() bool {
				holder = c.sessionHolder()
				return holder != ""
			})
			if holder != holders[len(holders)-1] {
				holders = append(holders, holder)
			}
		}
		if len(holders) < 3 {
			t.Fatalf("the session moved %d times in %d polls (nodes %v): nginx did not spread the polls, so the test proved nothing",
				len(holders)-1, p.polls, holders)
		}
		dups := p.check(t, total)
		t.Logf("long-poll through nginx: %d messages published, %d distinct delivered, %d extra deliveries; %d polls; the session moved %d times",
			total, len(p.seen), dups, p.polls, len(holders)-1)
	})

	// A token that no node knows: 404, whichever node answers.
	t.Run("unknown-session", func(t *testing.T) {
		c := startCluster(t, 2)
		ctx, cancel := withTimeout()
		defer cancel()
		h := http.Header{}
		h.Set("Ferry-Session", "no-such-session-token")
		for _, n := range c.nodes.Nodes {
			status, body, err := c.postJSON(ctx, n.BaseURL()+"/v1/poll?wait=0", h, "")
			if err != nil || status != http.StatusNotFound {
				t.Fatalf("poll with an unknown session token on %s: HTTP %d %s %v, want 404", n.ID, status, body, err)
			}
		}
	})
}
