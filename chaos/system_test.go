package chaos_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/redistest"
)

// nodeCount is how many ferry nodes a system runs.
const nodeCount = 3

// system is the cluster under test: Redis, the nodes, and the toxiproxy
// links between them (toRedis[i] carries node i's Redis traffic,
// toNode[i] the clients' traffic to node i).
type system struct {
	t       testing.TB
	redis   *redistest.Server
	toxi    *toxiproxy.ApiServer
	nodes   []*ferrytest.Node
	toRedis []*toxiproxy.Proxy
	toNode  []*toxiproxy.Proxy
	// nodeURLs[i] is the base URL of toNode[i], read once when it was
	// added: a proxy restarted by resetLinks writes its Listen again
	// (same address) while clients read it, a data race.
	nodeURLs []string
	http     *http.Client
	// sentinels is set for a system on Redis Sentinel (redis is then the
	// primary, and toRedis is empty).
	sentinels *sentinels
}

// newToxiServer is a toxiproxy server used as a library (no HTTP API):
// proxies are added to its collection and toxics set on them directly.
func newToxiServer() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
}

// addProxy starts a proxy on a random port of 127.0.0.1 in front of
// upstream; it is stopped when the test ends.
func addProxy(t testing.TB, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := srv.Collection.Add(p, true); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(func() { _ = srv.Collection.Remove(name) })
	return p
}

// startSystem starts Redis and the nodes, each node reaching Redis
// through its own proxy. brokerURL, when not empty, replaces the proxied
// Redis (the Sentinel test); env holds extra FERRY_* settings.
func startSystem(t testing.TB, brokerURL string, env ...string) *system {
	t.Helper()
	bin := ferryBin.Path(t)
	s := &system{t: t, toxi: newToxiServer(), http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(s.http.CloseIdleConnections)
	if brokerURL == "" {
		s.redis = redistest.Start(t)
	}
	for i := range nodeCount {
		url := brokerURL
		if url == "" {
			p := addProxy(t, s.toxi, fmt.Sprintf("redis%d", i+1), s.redis.Addr)
			s.toRedis = append(s.toRedis, p)
			url = "redis://" + p.Listen + "/0"
		}
		n := ferrytest.Start(t, fmt.Sprintf("node%d", i+1), ferrytest.Options{
			Binary: bin,
			Broker: url,
			Env:    append([]string{"FERRY_SHUTDOWN_TIMEOUT=5s"}, env...),
		})
		s.nodes = append(s.nodes, n)
		p := addProxy(t, s.toxi, fmt.Sprintf("node%d", i+1), n.Addr)
		s.toNode = append(s.toNode, p)
		s.nodeURLs = append(s.nodeURLs, "http://"+p.Listen)
	}
	return s
}

// clientURL is the base URL clients reach node i at (through its proxy).
func (s *system) clientURL(i int) string { return s.nodeURLs[i%len(s.nodeURLs)] }

// token mints a connection token for user, valid for an hour.
func (s *system) token(user string) string {
	s.t.Helper()
	tok, err := mintFor(user)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// mintFor mints a connection token for user, valid for an hour, signed
// with the nodes' secret.
func mintFor(user string) (string, error) {
	return auth.Mint([]byte(ferrytest.DefaultSecret), user, time.Hour, nil)
}

// toxic adds a toxic to every proxy of links, in both directions, and
// returns a function that removes them. attrs is the toxic's attributes
// as JSON.
func toxic(t testing.TB, links []*toxiproxy.Proxy, kind, attrs string) (remove func()) {
	t.Helper()
	type added struct {
		p    *toxiproxy.Proxy
		name string
	}
	var all []added
	for _, p := range links {
		for _, dir := range []string{"upstream", "downstream"} {
			name := kind + "_" + dir
			body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, kind, dir, attrs)
			if _, err := p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
				t.Fatalf("toxic %s on %s: %v", name, p.Name, err)
			}
			all = append(all, added{p, name})
		}
	}
	return func() {
		for _, a := range all {
			_ = a.p.Toxics.RemoveToxic(context.Background(), a.name)
		}
	}
}

// resetLinks cuts every open connection of the proxies (the peers see
// their connections end) and lets new ones through again.
func resetLinks(t testing.TB, links []*toxiproxy.Proxy) {
	t.Helper()
	for _, p := range links {
		p.Stop()
		// The listener is closed and opened again on the same address.
		if err := p.Start(); err != nil {
			t.Fatalf("toxiproxy %s: restart after reset: %v", p.Name, err)
		}
	}
}

// allLinks returns every proxy: the nodes' links to Redis, then the
// clients' links to the nodes.
func (s *system) allLinks() []*toxiproxy.Proxy {
	return append(append([]*toxiproxy.Proxy{}, s.toRedis...), s.toNode...)
}

// runningNodes returns the indexes of the nodes whose process runs.
func (s *system) runningNodes() []int {
	var out []int
	for i, n := range s.nodes {
		if n.Running() {
			out = append(out, i)
		}
	}
	return out
}

// waitReady waits until every running node answers /readyz.
func (s *system) waitReady() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	for {
		all := true
		for _, n := range s.nodes {
			if n.Running() && !n.Ready() {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("the nodes were not ready within %v", hangGuard)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
