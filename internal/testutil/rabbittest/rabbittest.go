package rabbittest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ferry-io/ferry/internal/testutil/proc"
)

// Timeouts of the helper. They bound how long a broken environment can
// hang a test; RabbitMQ takes some seconds to boot on a loaded machine.
const (
	startTimeout = 90 * time.Second
	stopTimeout  = 30 * time.Second
)

// serverDir is where Debian keeps the real start script; /usr/sbin's
// wrapper insists on running as the rabbitmq user and on its directories.
const serverDir = "/usr/lib/rabbitmq/bin"

// Server is one RabbitMQ node run by a test. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is the AMQP listener, "127.0.0.1:port". It stays the same
	// across Restart.
	Addr string

	tb       testing.TB
	bin      string
	epmdBin  string
	dir      string
	env      []string
	distPort int

	mu   sync.Mutex
	epmd *proc.Process
	proc *proc.Process
}

// Start runs a RabbitMQ node and stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := proc.RequireBinary(tb, "rabbitmq-server", "RABBITMQ_SERVER", serverDir)
	if filepath.Dir(bin) == "/usr/sbin" {
		// The wrapper drops to the rabbitmq user; run the script behind it.
		bin = filepath.Join(serverDir, "rabbitmq-server")
	}
	epmd := proc.RequireBinary(tb, "epmd", "ERL_EPMD", "/usr/lib/erlang/bin")
	s := &Server{tb: tb, bin: bin, epmdBin: epmd, dir: tb.TempDir()}
	tb.Cleanup(s.Stop)
	if err := s.prepare(); err != nil {
		tb.Fatalf("rabbittest: %v", err)
	}
	if err := s.start(); err != nil {
		tb.Fatalf("rabbittest: %v", err)
	}
	s.requireStreams()
	return s
}

// requireStreams skips the test (fails it in CI) when the node is older
// than 3.9, which has no stream queues.
func (s *Server) requireStreams() {
	s.tb.Helper()
	c, err := amqp.Dial(s.URL())
	if err != nil {
		s.tb.Fatalf("rabbittest: %v", err)
	}
	v, _ := c.Properties["version"].(string)
	_ = c.Close()
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		s.tb.Fatalf("rabbittest: unreadable server version %q", v)
	}
	if major > 3 || (major == 3 && minor >= 9) {
		return
	}
	msg := fmt.Sprintf("rabbittest: RabbitMQ %s has no streams (3.9 or later needed)", v)
	if os.Getenv("CI") != "" {
		s.tb.Fatal(msg + "; CI is set, so this is a failure")
	}
	s.tb.Skip(msg + "; skipping")
}

// prepare picks the ports and writes the node's files: configuration,
// an empty plugin list and a home directory for the Erlang cookie.
func (s *Server) prepare() error {
	ports := make([]int, 3)
	for i := range ports {
		p, err := proc.FreePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	amqpPort, epmdPort := ports[0], ports[1]
	s.distPort = ports[2]
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(amqpPort))
	home := filepath.Join(s.dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	// A cookie of our own, so no other node (or CLI) can join this one.
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(randomCookie()), 0o400); err != nil {
		return err
	}
	conf := fmt.Sprintf("listeners.tcp.1 = %s\nloopback_users = none\nlog.file.level = warning\n", s.Addr)
	if err := os.WriteFile(filepath.Join(s.dir, "rabbitmq.conf"), []byte(conf), 0o600); err != nil {
		return err
	}
	// Streams are queues of the core broker, reached over AMQP 0.9.1: no
	// plugin is needed, and the system's plugin list must not apply.
	if err := os.WriteFile(filepath.Join(s.dir, "enabled_plugins"), []byte("[].\n"), 0o600); err != nil {
		return err
	}
	node := fmt.Sprintf("ferrytest%d@localhost", amqpPort)
	s.env = append(os.Environ(),
		"HOME="+home,
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(amqpPort),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(s.distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_MNESIA_BASE="+filepath.Join(s.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(s.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(s.dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(s.dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR="+filepath.Join(s.dir, "plugins-expand"),
		"RABBITMQ_PID_FILE="+filepath.Join(s.dir, "rabbitmq.pid"),
	)
	return nil
}

// start runs epmd (once) and the node, and waits until AMQP answers.
func (s *Server) start() error {
	s.mu.Lock()
	if s.epmd == nil || !s.epmd.Running() {
		// Our own epmd on our own port, in the foreground so that Stop
		// can end it; the node would otherwise start a daemon that
		// outlives the test.
		port := envValue(s.env, "ERL_EPMD_PORT")
		e, err := proc.Start(proc.Config{Path: s.epmdBin, Args: []string{"-port", port, "-address", "127.0.0.1"}, Env: s.env, Dir: s.dir})
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("start epmd: %w", err)
		}
		s.epmd = e
	}
	p, err := proc.Start(proc.Config{
		Path:    s.bin,
		Env:     s.env,
		Dir:     s.dir,
		LogFile: filepath.Join(s.dir, "server.out"),
		Group:   true,
	})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("start rabbitmq-server: %w", err)
	}
	s.proc = p
	s.mu.Unlock()
	err = p.WaitReady(s.dial, startTimeout)
	if err != nil {
		p.Kill()
		return fmt.Errorf("rabbitmq-server on %s: %v; output: %s", s.Addr, err, s.logTail())
	}
	return nil
}

// dial is the readiness probe: an AMQP connection is opened and closed.
func (s *Server) dial() error {
	c, err := amqp.DialConfig(s.URL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	return c.Close()
}

func (s *Server) logTail() string {
	b, err := proc.ReadTail(filepath.Join(s.dir, "server.out"), 2000)
	if err != nil {
		return "(no output: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// URL returns the node's AMQP URL, amqp://guest:guest@127.0.0.1:port/.
func (s *Server) URL() string { return "amqp://guest:guest@" + s.Addr + "/" }

// Dir is the node's working directory (data, logs, configuration).
func (s *Server) Dir() string { return s.dir }

// Pid is the process id of the node's start script (0 before the first
// start); the Erlang VM runs as its child, so measure its CPU time with
// the children's.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid()
}

// Running reports whether the node's process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && s.proc.Running()
}

// Down stops the node (SIGTERM to its process group; SIGKILL when it does
// not exit in time) and leaves epmd running, so Restart can bring it back.
// The node's data survives. Stopping a stopped node does nothing.
func (s *Server) Down() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		_ = p.Stop(stopTimeout)
	}
}

// Stop stops the node and its epmd.
func (s *Server) Stop() {
	s.Down()
	s.mu.Lock()
	e := s.epmd
	s.mu.Unlock()
	if e != nil {
		_ = e.Signal(syscall.SIGTERM)
		_ = e.Stop(stopTimeout)
	}
}

// Restart stops the node when it runs and starts it again on the same
// ports with the same data.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Down()
	var err error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		// The old listener may linger for a moment; try again.
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("rabbittest: restart: %v", err)
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func randomCookie() string {
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	return "FERRYTEST" + strings.ToUpper(hex.EncodeToString(buf))
}
