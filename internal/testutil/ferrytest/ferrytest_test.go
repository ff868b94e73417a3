package ferrytest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

var bin Binary

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { bin.Remove() }))
}

// stats asks a node for GET /v1/api/stats.
func stats(t *testing.T, n *Node) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.BaseURL()+"/v1/api/stats", nil)
	req.Header.Set("Authorization", "Bearer "+DefaultAPIKey)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: HTTP %d %s", resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNodeLifecycle starts a node, stops it gracefully, restarts it on the
// same address, kills it, and restarts it again.
func TestNodeLifecycle(t *testing.T) {
	n := Start(t, "solo", Options{Binary: bin.Path(t), Env: []string{"FERRY_MAX_CONNECTIONS_PER_USER=3"}})
	addr := n.Addr
	if st := stats(t, n); st["node"] != "solo" || st["broker"] != "memory" {
		t.Fatalf("stats = %v, want node solo on the memory broker", st)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if n.Running() || n.Ready() {
		t.Fatal("node runs after Stop")
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	n.Restart()
	if n.Addr != addr || !n.Ready() {
		t.Fatalf("after Restart: addr %s (was %s), ready %v", n.Addr, addr, n.Ready())
	}
	n.Kill()
	if n.Running() {
		t.Fatal("node runs after Kill")
	}
	n.Restart()
	if !n.Ready() {
		t.Fatal("not ready after a restart that followed a kill")
	}
	log := n.Log()
	if strings.Count(log, "--- start ") != 3 || !strings.Contains(log, `"listening"`) {
		t.Fatalf("log of three starts expected, got:\n%s", n.LogTail(2000))
	}
}

// TestCluster starts two nodes and checks their ids and the environment
// they got.
func TestCluster(t *testing.T) {
	c := StartCluster(t, 2, Options{Binary: bin.Path(t), IDPrefix: "n"})
	if len(c.Nodes) != 2 || c.Nodes[0].ID != "n1" || c.Node("n2") != c.Nodes[1] || c.Node("x") != nil {
		t.Fatalf("nodes %v", c.Addrs())
	}
	if c.Nodes[0].Addr == c.Nodes[1].Addr {
		t.Fatal("two nodes on one address")
	}
	for _, n := range c.Nodes {
		if st := stats(t, n); st["node"] != n.ID {
			t.Fatalf("node at %s says it is %v, want %s", n.Addr, st["node"], n.ID)
		}
	}
	if c.Secret() != DefaultSecret || c.APIKey() != DefaultAPIKey {
		t.Fatal("defaults not applied")
	}
}
