package cluster_test

import (
	"strings"
	"testing"
)

// TestDevNodesShareSecrets is the README's several-nodes command: --dev
// nodes on one Redis, started with the same FERRY_TOKEN_HMAC_SECRET and
// FERRY_API_KEY, keep those (they generate none), accept each other's
// tokens and share channels. A token and key that work on one node work on
// the other.
func TestDevNodesShareSecrets(t *testing.T) {
	c := startCluster(t, 2, "FERRY_DEV=true")
	ctx, cancel := withTimeout()
	defer cancel()
	first, second := c.nodes.Nodes[0], c.nodes.Nodes[1]
	for _, n := range c.nodes.Nodes {
		if log := n.Log(); !strings.Contains(log, "development mode") || strings.Contains(log, "Generated for this run") {
			t.Fatalf("node %s: want a dev banner without generated secrets:\n%s", n.ID, n.LogTail(3000))
		}
	}
	sub, _ := mustConnect(t, second.WebSocketURL(), nil, c.token("alice"))
	if _, err := subscribe(ctx, sub, 2, "chat:dev", nil); err != nil {
		t.Fatal(err)
	}
	res, err := c.publish(ctx, first.BaseURL(), "chat:dev", map[string]any{"text": "across dev nodes"}, "")
	if err != nil {
		t.Fatalf("publish on %s with the shared API key: %v", first.ID, err)
	}
	expectMessage(ctx, t, map[string]*wsConn{second.ID: sub}, "chat:dev", res.Offset, `{"text": "across dev nodes"}`)
}
