package ferrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/proc"
)

// Defaults of Options.
const (
	// DefaultSecret is the HMAC secret the nodes verify tokens with.
	DefaultSecret = "ferrytest-secret-0123456789abcdef"
	// DefaultAPIKey is the key of the nodes' server API.
	DefaultAPIKey = "ferrytest-api-key"
	// DefaultNamespaces configures the "chat" namespace (history of 10000
	// messages kept 10 minutes, presence, client publish and subscribe) and
	// "default" (client publish and subscribe, no history).
	DefaultNamespaces = `{"chat": {"history_size": 10000, "history_ttl": "10m", "presence": true, "publish": true, "subscribe": true},` +
		` "default": {"publish": true, "subscribe": true}}`
)

// Timeouts of the helper. They bound how long a broken node can hang a
// test; they are not expectations about Ferry's speed.
const (
	// readyTimeout bounds the wait for a started node's /readyz.
	readyTimeout = 20 * time.Second
	// stopTimeout bounds a graceful stop (the node's own drain takes at
	// most shutdown.timeout, 10 s by default, plus 2 s) before SIGKILL.
	stopTimeout = 30 * time.Second
)

// Options shape the nodes of a cluster (or one node).
type Options struct {
	// Binary is the ferry executable (Binary.Path). Required.
	Binary string
	// Broker is FERRY_BROKER, e.g. a redistest server's URL(). Default
	// "memory" (every node on its own).
	Broker string
	// Secret is FERRY_TOKEN_HMAC_SECRET. Default DefaultSecret.
	Secret string
	// APIKey is FERRY_API_KEY. Default DefaultAPIKey.
	APIKey string
	// Env holds more settings as "FERRY_NAME=value", e.g.
	// "FERRY_MAX_CONNECTIONS_PER_USER=2"; they override the helper's own.
	// FERRY_NAMESPACES defaults to DefaultNamespaces and
	// FERRY_HANDSHAKE_RATE to 0 (no per-IP limit: every test client comes
	// from 127.0.0.1). FERRY_* variables of the test's own environment are
	// not passed on.
	Env []string
	// IDPrefix names the nodes of StartCluster: IDPrefix1, IDPrefix2...
	// Default "node".
	IDPrefix string
}

func (o Options) withDefaults() Options {
	if o.Broker == "" {
		o.Broker = "memory"
	}
	if o.Secret == "" {
		o.Secret = DefaultSecret
	}
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.IDPrefix == "" {
		o.IDPrefix = "node"
	}
	return o
}

// Node is one `ferry serve` process. Its methods are safe for concurrent
// use; failures are reported to the testing.TB it was started with.
type Node struct {
	// ID is the node id (FERRY_NODE_ID), the same across restarts.
	ID string
	// Addr is "127.0.0.1:port", the same across restarts.
	Addr string

	tb   testing.TB
	opts Options
	dir  string
	port int

	mu   sync.Mutex
	proc *proc.Process // nil before the first start
	runs int           // how many processes were started, for the log names
}

// Start runs one node with id and waits until it is ready. It is stopped
// when the test ends.
func Start(tb testing.TB, id string, o Options) *Node {
	tb.Helper()
	if o.Binary == "" {
		tb.Fatal("ferrytest: Options.Binary is required (use Binary.Path)")
	}
	n := &Node{ID: id, tb: tb, opts: o.withDefaults(), dir: tb.TempDir()}
	// Registered after TempDir, so it runs before the directory is removed.
	tb.Cleanup(func() {
		n.Kill()
		// A node built with -race (Binary.Race) reports data races in its
		// log as they happen; they fail the test that ran it.
		if strings.Contains(n.Log(), "WARNING: DATA RACE") {
			tb.Errorf("ferrytest: node %s reported a data race; its log is below", n.ID)
		}
		if tb.Failed() {
			tb.Logf("ferrytest: log of node %s (%s):\n%s", n.ID, n.Addr, n.LogTail(6000))
		}
	})
	var err error
	for range 5 {
		n.port, err = proc.FreePort()
		if err != nil {
			continue
		}
		n.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
		if err = n.startProcess(); err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		tb.Fatalf("ferrytest: start node %s: %v", id, err)
	}
	return n
}

// BaseURL is the node's HTTP base URL, http://127.0.0.1:port.
func (n *Node) BaseURL() string { return "http://" + n.Addr }

// WebSocketURL is the node's WebSocket endpoint, ws://127.0.0.1:port/v1/ws.
func (n *Node) WebSocketURL() string { return "ws://" + n.Addr + "/v1/ws" }

// Dir is the node's working directory, where its logs are kept
// (ferry.N.log for the N-th start).
func (n *Node) Dir() string { return n.dir }

// environ is the node's environment: the test's own minus its FERRY_*
// variables, then the helper's settings, then Options.Env.
func (n *Node) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FERRY_") {
			env = append(env, kv)
		}
	}
	o := n.opts
	env = append(env,
		"FERRY_ADDR="+n.Addr,
		"FERRY_NODE_ID="+n.ID,
		"FERRY_BROKER="+o.Broker,
		"FERRY_TOKEN_HMAC_SECRET="+o.Secret,
		"FERRY_API_KEY="+o.APIKey,
		"FERRY_HANDSHAKE_RATE=0",
		"FERRY_NAMESPACES="+DefaultNamespaces,
	)
	// Later entries win in os/exec (the last value of a duplicated name is
	// used), so Options.Env overrides the defaults above.
	return append(env, o.Env...)
}

// startProcess runs `ferry serve` on n.port and waits until it is ready.
func (n *Node) startProcess() error {
	n.mu.Lock()
	n.runs++
	logName := filepath.Join(n.dir, fmt.Sprintf("ferry.%d.log", n.runs))
	n.mu.Unlock()
	p, err := proc.Start(proc.Config{
		Path:    n.opts.Binary,
		Args:    []string{"serve"},
		Dir:     n.dir,
		Env:     n.environ(),
		LogFile: logName,
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err = p.WaitReady(func() error { return n.ready(client) }, readyTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, proc.ErrExited):
		return fmt.Errorf("%w (port %d): %s", errExited, n.port, n.LogTail(2000))
	default:
		p.Kill()
		return fmt.Errorf("node %s on port %d: %v; log: %s", n.ID, n.port, err, n.LogTail(2000))
	}
}

func (n *Node) ready(client *http.Client) error {
	resp, err := client.Get(n.BaseURL() + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: HTTP %d", resp.StatusCode)
	}
	return nil
}

// Ready reports whether the node answers GET /readyz with 200.
func (n *Node) Ready() bool {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	return n.ready(client) == nil
}

// Running reports whether the node's process is alive.
func (n *Node) Running() bool {
	p := n.process()
	return p != nil && p.Running()
}

// process is the current process, or nil before the first start.
func (n *Node) process() *proc.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Kill ends the node at once with SIGKILL, as a crash would, and waits for
// it. Killing a stopped node does nothing.
func (n *Node) Kill() {
	if p := n.process(); p != nil {
		p.Kill()
	}
}

// Freeze stops the node's process with SIGSTOP, as a long GC pause, a
// stalled VM or a hung disk would: its sockets stay open and the kernel
// still accepts connections on its port, but nothing answers. Thaw
// continues it. A frozen node must be thawed (or killed) before Stop.
func (n *Node) Freeze() error { return n.signal(syscall.SIGSTOP) }

// Thaw continues a frozen node (SIGCONT).
func (n *Node) Thaw() error { return n.signal(syscall.SIGCONT) }

func (n *Node) signal(sig syscall.Signal) error {
	p := n.process()
	if p == nil {
		return fmt.Errorf("node %s: not started", n.ID)
	}
	if err := p.Signal(sig); err != nil {
		return fmt.Errorf("node %s: %v: %w", n.ID, sig, err)
	}
	return nil
}

// Stop shuts the node down gracefully with SIGTERM (it drains: every client
// gets close code 4013) and waits for it to exit. It returns an error when
// the node exited with a non-zero status or had to be killed after
// stopTimeout. Stopping a stopped node returns nil.
func (n *Node) Stop() error {
	p := n.process()
	if p == nil {
		return nil
	}
	if err := p.Stop(stopTimeout); err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	return nil
}

// Restart starts the node again on the same port with the same id and
// settings, stopping it gracefully first if it runs, and waits until it is
// ready.
func (n *Node) Restart() {
	n.tb.Helper()
	if n.Running() {
		if err := n.Stop(); err != nil {
			n.tb.Errorf("ferrytest: restart: %v", err)
		}
	}
	// The port was just released; give a lingering socket a moment.
	var err error
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if err = n.startProcess(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.tb.Fatalf("ferrytest: restart node %s on port %d: %v", n.ID, n.port, err)
}

// Log returns everything the node wrote to stdout and stderr, over all its
// starts (its JSON log lines).
func (n *Node) Log() string {
	n.mu.Lock()
	runs := n.runs
	n.mu.Unlock()
	var b bytes.Buffer
	for i := 1; i <= runs; i++ {
		data, err := os.ReadFile(filepath.Join(n.dir, fmt.Sprintf("ferry.%d.log", i)))
		if err != nil {
			continue
		}
		if runs > 1 {
			fmt.Fprintf(&b, "--- start %d ---\n", i)
		}
		b.Write(data)
	}
	return b.String()
}

// LogTail returns the last max bytes of Log.
func (n *Node) LogTail(max int) string {
	s := n.Log()
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return strings.TrimSpace(s)
}

// Cluster is a set of nodes sharing one broker.
type Cluster struct {
	// Nodes in start order; Nodes[i].ID is IDPrefix followed by i+1.
	Nodes []*Node
	opts  Options
}

// StartCluster starts n nodes with the same options and waits until each
// is ready.
func StartCluster(tb testing.TB, n int, o Options) *Cluster {
	tb.Helper()
	o = o.withDefaults()
	c := &Cluster{opts: o}
	for i := range n {
		c.Nodes = append(c.Nodes, Start(tb, fmt.Sprintf("%s%d", o.IDPrefix, i+1), o))
	}
	return c
}

// Addrs returns the nodes' addresses, in order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr
	}
	return out
}

// Node returns the node with id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Secret is the HMAC secret the cluster's tokens must be signed with.
func (c *Cluster) Secret() string { return c.opts.Secret }

// APIKey is the key of the cluster's server API.
func (c *Cluster) APIKey() string { return c.opts.APIKey }

// WaitReady waits until every running node answers /readyz with 200, or
// ctx ends, and reports whether they all did.
func (c *Cluster) WaitReady(ctx context.Context) bool {
	for {
		all := true
		for _, n := range c.Nodes {
			if n.Running() && !n.Ready() {
				all = false
				break
			}
		}
		if all {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}
