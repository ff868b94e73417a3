package cluster_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/internal/admin"
	"github.com/ferry-io/ferry/protocol"
)

const clusterAdminSecret = "cluster-admin-secret-0123456789"

// TestAdminPageSeesTheCluster: with the admin page on, each node's page
// lists every node of the cluster (their reports cross the broker), and a
// disconnect made on one node's page closes the user's connection on
// another node.
func TestAdminPageSeesTheCluster(t *testing.T) {
	onEngines(t, func(t *testing.T, e engine) {
		c := startClusterOn(t, e, 2, "FERRY_ADMIN_SECRET="+clusterAdminSecret)
		first, second := c.nodes.Nodes[0], c.nodes.Nodes[1]
		ctx, cancel := withTimeout()
		defer cancel()
		carol, _ := mustConnect(t, second.WebSocketURL(), nil, c.token("carol"))
		defer carol.close()

		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar, Timeout: hangGuard}
		resp, err := browser.PostForm(first.BaseURL()+"/admin/login", url.Values{"secret": {clusterAdminSecret}})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="ferry-csrf" content="([0-9a-f]+)"`).FindSubmatch(page)
		if resp.StatusCode != 200 || m == nil {
			t.Fatalf("login on %s: %d\n%s", first.ID, resp.StatusCode, page)
		}

		// The stream of the first node lists both nodes, the second with
		// carol's connection.
		req, _ := http.NewRequestWithContext(ctx, "GET", first.BaseURL()+"/admin/stream", nil)
		streamClient := *browser
		streamClient.Timeout = 0 // bounded by ctx
		stream, err := streamClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Body.Close()
		sc := bufio.NewScanner(stream.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var last []admin.NodeReport
		seen := func() bool {
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				var s admin.Snapshot
				if err := json.Unmarshal([]byte(data), &s); err != nil {
					t.Fatalf("bad report: %v", err)
				}
				last = s.Nodes
				i := slices.IndexFunc(s.Nodes, func(n admin.NodeReport) bool { return n.ID == second.ID })
				return len(s.Nodes) == 2 && s.Nodes[0].ID != s.Nodes[1].ID && i >= 0 && s.Nodes[i].Connections == 1
			}
			t.Fatalf("the admin stream ended: %v (last nodes %+v)", sc.Err(), last)
			return false
		}
		for !seen() {
		}

		// Disconnect carol from the first node's page.
		req, _ = http.NewRequestWithContext(ctx, "POST", first.BaseURL()+"/admin/api/disconnect", strings.NewReader(`{"user":"carol"}`))
		req.Header.Set("X-CSRF-Token", string(m[1]))
		resp, err = browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("disconnect: %d %s", resp.StatusCode, body)
		}
		code, err := carol.waitClosed(ctx)
		if err != nil || code != protocol.CloseForbidden {
			t.Fatalf("carol on %s: closed with %d (%v), want %d", second.ID, code, err, protocol.CloseForbidden)
		}
	})
}
