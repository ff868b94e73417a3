package natstest

import (
	"errors"
	"fmt"
	"io"
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

// Timeouts of the helper itself. They bound how long a broken environment
// can hang a test; they are not expectations about NATS' speed.
const (
	// startTimeout bounds the wait for a started server to report healthy.
	startTimeout = 20 * time.Second
	// stopTimeout bounds the wait for a stopped server to exit before it
	// is killed.
	stopTimeout = 10 * time.Second
	// probeTimeout bounds one HTTP health probe.
	probeTimeout = 2 * time.Second
)

// clusterName names the cluster of StartCluster's servers.
const clusterName = "ferrytest"

// Server is one nats-server process run by a test. Its methods are safe for
// concurrent use; the ones that fail use the testing.TB given to Start.
type Server struct {
	// Name is the server's name (unique in its cluster).
	Name string
	// Addr is the client address, "127.0.0.1:port". It stays the same
	// across Restart.
	Addr string

	tb          testing.TB
	bin         string
	dir         string
	port        int
	httpPort    int
	clusterPort int      // 0 for a server outside a cluster
	routes      []string // route URLs of the cluster, this server's own included

	mu   sync.Mutex
	proc *proc.Process
}

// Cluster is three nats-server processes joined by routes, with JetStream
// clustered over them.
type Cluster struct {
	Servers []*Server
}

// Start runs a single nats-server with JetStream on random free ports of
// 127.0.0.1 and stops it when the test ends. It skips the test when
// nats-server is not installed (or fails it when CI is set).
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := proc.RequireBinary(tb, "nats-server", "NATS_SERVER", "/usr/sbin")
	var err error
	for range 5 {
		s := newServer(tb, bin, "n1")
		if err = s.pickPorts(); err != nil {
			continue
		}
		if err = s.startProcess(); err == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("natstest: start nats-server: %v", err)
	return nil
}

// StartCluster runs three nats-servers with JetStream joined in one cluster
// and waits until each of them reports healthy (JetStream included). They
// are stopped when the test ends.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bin := proc.RequireBinary(tb, "nats-server", "NATS_SERVER", "/usr/sbin")
	var err error
	for range 5 {
		c := &Cluster{}
		for i := range 3 {
			c.Servers = append(c.Servers, newServer(tb, bin, fmt.Sprintf("n%d", i+1)))
		}
		if err = c.pickPorts(); err != nil {
			continue
		}
		if err = c.start(); err == nil {
			tb.Cleanup(c.Stop)
			return c
		}
		c.Stop()
	}
	tb.Fatalf("natstest: start nats cluster: %v", err)
	return nil
}

func (c *Cluster) pickPorts() error {
	var routes []string
	for _, s := range c.Servers {
		if err := s.pickPorts(); err != nil {
			return err
		}
		p, err := proc.FreePort()
		if err != nil {
			return err
		}
		s.clusterPort = p
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
	}
	for _, s := range c.Servers {
		s.routes = routes
	}
	return nil
}

// start launches every server first (a JetStream cluster elects its meta
// leader only once enough peers are up), then waits for each to be ready.
func (c *Cluster) start() error {
	for _, s := range c.Servers {
		if err := s.launch(); err != nil {
			return err
		}
	}
	for _, s := range c.Servers {
		if err := s.waitReady(); err != nil {
			return err
		}
	}
	return nil
}

// URL returns the client URLs of every server, comma-separated, as the
// NATS broker's Config.URL accepts them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Kill ends every server of the cluster at once with SIGKILL.
func (c *Cluster) Kill() {
	for _, s := range c.Servers {
		s.Kill()
	}
}

// Restart stops every server (if running) and starts them all again on the
// same ports, with their JetStream stores unless empty, and waits until
// each reports healthy. They are launched together: a server alone cannot
// become healthy without a quorum of its peers.
func (c *Cluster) Restart(empty bool) {
	tb := c.Servers[0].tb
	tb.Helper()
	c.Stop()
	var err error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if err = c.relaunch(empty); err == nil {
			return
		}
		c.Stop()
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("natstest: restart cluster: %v", err)
}

func (c *Cluster) relaunch(empty bool) error {
	for _, s := range c.Servers {
		if empty {
			if err := os.RemoveAll(filepath.Join(s.dir, "jetstream")); err != nil {
				return err
			}
		}
	}
	return c.start()
}

// Stop stops every server of the cluster.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}

func newServer(tb testing.TB, bin, name string) *Server {
	return &Server{Name: name, tb: tb, bin: bin, dir: tb.TempDir()}
}

func (s *Server) pickPorts() error {
	var err error
	if s.port, err = proc.FreePort(); err != nil {
		return err
	}
	if s.httpPort, err = proc.FreePort(); err != nil {
		return err
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	return nil
}

// config is the server's configuration file text. The WebSocket listener
// is off because there is no websocket block.
func (s *Server) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n", s.Name, s.port, s.httpPort)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}\n", filepath.Join(s.dir, "jetstream"))
	if s.clusterPort != 0 {
		fmt.Fprintf(&b, "cluster {\n  name: %q\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", clusterName, s.clusterPort)
		for _, r := range s.routes {
			fmt.Fprintf(&b, "    %q\n", r)
		}
		b.WriteString("  ]\n}\n")
	}
	return b.String()
}

// launch writes the configuration and starts the process without waiting
// for it to be ready.
func (s *Server) launch() error {
	conf := filepath.Join(s.dir, "nats.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return err
	}
	p, err := proc.Start(proc.Config{
		Path:    s.bin,
		Args:    []string{"-c", conf},
		Dir:     s.dir,
		LogFile: filepath.Join(s.dir, "nats.log"),
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// startProcess launches the server and waits until it is ready.
func (s *Server) startProcess() error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.waitReady()
}

// waitReady polls the monitoring endpoint /healthz, which answers 200 once
// the server accepts clients and its JetStream is usable.
func (s *Server) waitReady() error {
	p := s.process()
	err := p.WaitReady(s.healthy, startTimeout)
	if err == nil {
		return nil
	}
	p.Kill()
	if errors.Is(err, proc.ErrExited) {
		return fmt.Errorf("nats-server %s exited at start (port %d): %s", s.Name, s.port, s.LogTail())
	}
	return fmt.Errorf("nats-server %s on port %d: %v; log: %s", s.Name, s.port, err, s.LogTail())
}

func (s *Server) healthy() error {
	client := http.Client{Timeout: probeTimeout}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", s.httpPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// URL returns the server's client URL, nats://127.0.0.1:port.
func (s *Server) URL() string { return "nats://" + s.Addr }

// Dir is the server's working directory (its log is nats.log there).
func (s *Server) Dir() string { return s.dir }

// LogTail returns the end of the server's log, for error messages.
func (s *Server) LogTail() string {
	b, err := proc.ReadTail(filepath.Join(s.dir, "nats.log"), 2000)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	p := s.process()
	return p != nil && p.Running()
}

// Pid is the server's process id (0 before the first start), for
// measuring its CPU time.
func (s *Server) Pid() int {
	if p := s.process(); p != nil {
		return p.Pid()
	}
	return 0
}

func (s *Server) process() *proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop shuts the server down gracefully (SIGTERM; SIGKILL if it does not
// exit in time) and waits for it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if p := s.process(); p != nil {
		_ = p.Signal(syscall.SIGCONT)
		_ = p.Stop(stopTimeout)
	}
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// for it to exit.
func (s *Server) Kill() {
	if p := s.process(); p != nil {
		p.Kill()
	}
}

// Restart stops the server (if it runs) and starts it again on the same
// ports. With empty false the JetStream store survives (as after a crash
// of a server with its disk intact); with empty true it is deleted first,
// as when a server comes back on a new disk. In a cluster, the server
// rejoins its peers; Restart waits until it reports healthy.
func (s *Server) Restart(empty bool) {
	s.tb.Helper()
	s.Stop()
	if empty {
		if err := os.RemoveAll(filepath.Join(s.dir, "jetstream")); err != nil {
			s.tb.Fatalf("natstest: %v", err)
		}
	}
	// The ports were just released; a socket of the old process may
	// linger for a moment. Retry a while.
	var err error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if err = s.startProcess(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("natstest: restart %s on port %d: %v", s.Name, s.port, err)
}
