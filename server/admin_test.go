package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/admin"
	"github.com/ferry-io/ferry/protocol"
	"github.com/ferry-io/ferry/server"
)

const testAdminSecret = "admin-secret-for-tests-0123456789"

func TestAdminPageIsOffWithoutASecret(t *testing.T) {
	n := startNode(t, nil)
	for _, p := range []string{"/admin", "/admin/", "/admin/stream", "/admin/api/stats"} {
		resp, err := http.Get(n.base + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "FERRY_ADMIN_SECRET") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
}

func TestAdminConfigIsChecked(t *testing.T) {
	for name, mutate := range map[string]func(*server.Config){
		"admin.secret":           func(c *server.Config) { c.Admin.Secret = "short" },
		"admin.session_ttl":      func(c *server.Config) { c.Admin.SessionTTL = -time.Second },
		"namespaces.ferry-admin": func(c *server.Config) { c.Namespaces["ferry-admin"] = server.Namespace{Subscribe: true} },
	} {
		cfg := testConfig()
		mutate(&cfg)
		err := cfg.Validate()
		var fe *server.FieldError
		if !errors.As(err, &fe) || fe.Path != name {
			t.Errorf("%s: Validate gave %v", name, err)
		}
	}
}

// The nodes' own channel is closed to clients and to the API, in
// development mode too (where every other namespace is open).
func TestAdminNodesChannelIsClosedToClients(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.Dev = true; c.Admin.Secret = testAdminSecret })
	cl := connectClient(t, n, "mallory")
	for i, typ := range []string{"subscribe", "publish", "history"} {
		f := map[string]any{"type": typ, "id": i + 2, "channel": admin.NodesChannel}
		if typ == "publish" {
			f["data"] = map[string]any{"id": "fake-node"}
		}
		if r := cl.request(f); r["type"] != "error" {
			t.Errorf("%s %s: %v", typ, admin.NodesChannel, r)
		}
	}
	code, out := apiCall(t, n, "POST", "/v1/api/publish", testAPIKey, `{"channel":"`+admin.NodesChannel+`","data":{"id":"fake-node"}}`)
	if code != http.StatusNotFound {
		t.Fatalf("API publish to %s: %d %v", admin.NodesChannel, code, out)
	}
}

// adminBrowser is an HTTP client with a cookie jar, logged in to a node's
// admin page.
type adminBrowser struct {
	t    *testing.T
	n    *node
	c    *http.Client
	csrf string
}

func adminLogin(t *testing.T, n *node) *adminBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &adminBrowser{t: t, n: n, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
	resp, err := b.c.PostForm(n.base+"/admin/login", url.Values{"secret": {testAdminSecret}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="ferry-csrf" content="([0-9a-f]+)"`).FindSubmatch(page)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("login: %d\n%s", resp.StatusCode, page)
	}
	b.csrf = string(m[1])
	return b
}

func (b *adminBrowser) call(method, call, body string) (int, map[string]any) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.n.base+"/admin/api/"+call, strings.NewReader(body))
	if method == "POST" {
		req.Header.Set("X-CSRF-Token", b.csrf)
		req.Header.Set("Origin", b.n.base)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// reports opens the admin stream and returns a function that reads its
// next report.
func (b *adminBrowser) reports(ctx context.Context) func() admin.Snapshot {
	b.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.n.base+"/admin/stream", nil)
	c := *b.c
	c.Timeout = 0 // a stream: bounded by ctx
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b.t.Fatalf("stream: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return func() admin.Snapshot {
		b.t.Helper()
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s admin.Snapshot
				if err := json.Unmarshal([]byte(data), &s); err != nil {
					b.t.Fatalf("bad report %s: %v", data, err)
				}
				return s
			}
		}
		b.t.Fatalf("the admin stream ended: %v", sc.Err())
		return admin.Snapshot{}
	}
}

// The page's whole path on a real node: a connected, subscribed,
// publishing client shows up in the live reports; the channel's history is
// read and the user disconnected through the API's calls; the disconnect
// shows up in the reports.
func TestAdminPageFollowsAndDisconnects(t *testing.T) {
	n := startNode(t, func(c *server.Config) { c.Admin.Secret = testAdminSecret })
	alice := connectClient(t, n, "alice")
	if r := alice.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:room"}); r["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", r)
	}
	for i := range 3 {
		if r := alice.request(map[string]any{"type": "publish", "id": 10 + i, "channel": "chat:room", "data": map[string]any{"n": i}}); r["type"] != "published" {
			t.Fatalf("publish: %v", r)
		}
	}
	b := adminLogin(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := b.reports(ctx)

	var s admin.Snapshot
	for s = next(); len(s.Conns) == 0; s = next() {
	}
	if s.Node != "n1" || s.Connections != 1 || s.Conns[0].User != "alice" || s.Conns[0].Subscriptions != 1 || s.Conns[0].Transport != "ws" {
		t.Fatalf("connections: %+v", s)
	}
	if len(s.TopChannels) != 1 || s.TopChannels[0] != (admin.Channel{Name: "chat:room", Subscribers: 1}) || s.Channels != 1 {
		t.Fatalf("channels: %+v (the nodes' own channel must not be listed)", s.TopChannels)
	}
	if len(s.TopPublishers) != 1 || s.TopPublishers[0] != (admin.Publisher{User: "alice", Published: 3, Conns: 1}) {
		t.Fatalf("top publishers: %+v", s.TopPublishers)
	}
	if len(s.Nodes) != 1 || s.Nodes[0].ID != "n1" || s.Nodes[0].Connections != 1 || s.Nodes[0].Channels != 1 {
		t.Fatalf("nodes: %+v", s.Nodes)
	}
	// The API's stats agree: the nodes' own channel is not counted.
	if code, st := apiCall(t, n, "GET", "/v1/api/stats", testAPIKey, ""); code != 200 || num(st["channels"]) != 1 {
		t.Fatalf("stats: %d %v", code, st)
	}

	code, hist := b.call("GET", "history?channel=chat:room", "")
	if msgs, _ := hist["messages"].([]any); code != 200 || len(msgs) != 3 {
		t.Fatalf("history: %d %v", code, hist)
	}
	// Without the CSRF token the disconnect is refused, and alice stays.
	req, _ := http.NewRequest("POST", n.base+"/admin/api/disconnect", strings.NewReader(`{"user":"alice"}`))
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disconnect without the CSRF token: %d", resp.StatusCode)
	}
	code, out := b.call("POST", "disconnect", `{"user":"alice","reason":"by the admin test"}`)
	if code != 200 || num(out["disconnected"]) != 1 {
		t.Fatalf("disconnect: %d %v", code, out)
	}
	if code, reason := alice.closed(); int(code) != protocol.CloseForbidden || reason != "by the admin test" {
		t.Fatalf("alice closed with %d %q", code, reason)
	}
	for s = next(); len(s.Disconnects) == 0; s = next() {
	}
	d := s.Disconnects[0]
	if d.User != "alice" || d.Code != protocol.CloseForbidden || d.Reason != "by the admin test" || d.Transport != "ws" || s.Connections != 0 {
		t.Fatalf("disconnects: %+v, connections %d", s.Disconnects, s.Connections)
	}
}
