package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/natstest"
	"github.com/ferry-io/ferry/internal/testutil/proxytest"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// ferryBin is the ferry command, built once for all the tests.
var ferryBin ferrytest.Binary

func TestMain(m *testing.M) {
	ferryBin.Race = os.Getenv("FERRY_CLUSTER_RACE") == "1"
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { ferryBin.Remove() }))
}

// hangGuard bounds every wait of these tests. It is a guard against hangs,
// not an expectation about speed.
const hangGuard = 30 * time.Second

// cluster is the system under test: the broker's engine (one Redis, or
// three NATS servers), n nodes sharing it, and the HTTP client the test
// talks to them with.
type cluster struct {
	t     testing.TB
	redis *redistest.Server // with onRedis
	nats  *natstest.Cluster // with onNATS
	nodes *ferrytest.Cluster
	http  *http.Client
}

// engine is a broker engine the nodes of a cluster test share.
type engine string

const (
	// onRedis: one redis-server.
	onRedis engine = "redis"
	// onNATS: three nats-servers in one JetStream cluster, the streams
	// and buckets replicated on all three.
	onNATS engine = "nats"
)

// onEngines runs test once per engine, as subtests named after them.
func onEngines(t *testing.T, test func(t *testing.T, e engine)) {
	for _, e := range []engine{onRedis, onNATS} {
		t.Run(string(e), func(t *testing.T) { test(t, e) })
	}
}

// startCluster starts Redis and n nodes on it. env holds extra FERRY_*
// settings.
func startCluster(t testing.TB, n int, env ...string) *cluster {
	t.Helper()
	return startClusterOn(t, onRedis, n, env...)
}

// startClusterOn starts the engine e and n nodes on it.
func startClusterOn(t testing.TB, e engine, n int, env ...string) *cluster {
	t.Helper()
	bin := ferryBin.Path(t)
	c := &cluster{t: t}
	var url string
	switch e {
	case onNATS:
		c.nats = natstest.StartCluster(t)
		url = c.nats.URL() + "?replicas=3"
	default:
		c.redis = redistest.Start(t)
		url = c.redis.URL()
	}
	c.nodes = ferrytest.StartCluster(t, n, ferrytest.Options{
		Binary: bin,
		Broker: url,
		Env:    env,
	})
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c.http = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// backends lists the nodes for a proxy, named by their ids.
func (c *cluster) backends() []proxytest.Backend {
	out := make([]proxytest.Backend, len(c.nodes.Nodes))
	for i, n := range c.nodes.Nodes {
		out[i] = proxytest.Backend{Name: n.ID, Addr: n.Addr}
	}
	return out
}

// token mints a connection token for user, valid for an hour.
func (c *cluster) token(user string) string {
	c.t.Helper()
	tok, err := auth.Mint([]byte(c.nodes.Secret()), user, time.Hour, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// apiError is a non-200 answer of the server API (or of a proxy in front).
type apiError struct {
	status int
	body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

// api calls the server API at base (a node or a proxy) and decodes the
// JSON answer into out.
func (c *cluster) api(ctx context.Context, base, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.nodes.APIKey())
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &apiError{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// publishResult is the answer to POST /v1/api/publish.
type publishResult struct {
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Duplicate bool   `json:"duplicate"`
}

// publish publishes data on ch through base with an idempotency key.
func (c *cluster) publish(ctx context.Context, base, ch string, data any, key string) (publishResult, error) {
	var res publishResult
	body := map[string]any{"channel": ch, "data": data}
	if key != "" {
		body["key"] = key
	}
	err := c.api(ctx, base, http.MethodPost, "/v1/api/publish", body, &res)
	return res, err
}

// mustPublish publishes through base and fails the test on error.
func (c *cluster) mustPublish(base, ch string, data any) publishResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	res, err := c.publish(ctx, base, ch, data, "")
	if err != nil {
		c.t.Fatalf("publish %s through %s: %v", ch, base, err)
	}
	return res
}

// nodeStats is the part of GET /v1/api/stats the tests read.
type nodeStats struct {
	Node        string `json:"node"`
	Broker      string `json:"broker"`
	Connections int    `json:"connections"`
	Draining    bool   `json:"draining"`
}

// stats asks node n for its stats (directly, not through a proxy).
func (c *cluster) stats(n *ferrytest.Node) (nodeStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var st nodeStats
	err := c.api(ctx, n.BaseURL(), http.MethodGet, "/v1/api/stats", nil, &st)
	return st, err
}

// connections returns each running node's connection count, by node id.
func (c *cluster) connections() map[string]int {
	out := map[string]int{}
	for _, n := range c.nodes.Nodes {
		if !n.Running() {
			continue
		}
		if st, err := c.stats(n); err == nil {
			out[n.ID] = st.Connections
		}
	}
	return out
}

// eventually polls cond until it holds, failing the test after hangGuard
// (a hang guard, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, hangGuard, what, cond)
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
