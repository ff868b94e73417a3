package redistest

import (
	"context"
	"crypto/tls"
	"errors"
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

	"github.com/ferry-io/ferry/internal/testutil/proc"
)

// Timeouts of the helper itself. They bound how long a broken environment
// can hang a test; they are not expectations about Redis' speed.
const (
	// startTimeout bounds the wait for a started server to answer PING.
	startTimeout = 15 * time.Second
	// stopTimeout bounds the wait for a stopped server to exit before it
	// is killed.
	stopTimeout = 10 * time.Second
	// ioTimeout bounds one command sent by Server.Do.
	ioTimeout = 5 * time.Second
)

// errExited says that a started server exited before it was ready, most
// likely because its port was taken.
var errExited = errors.New("redis-server exited at start")

// Options shape a server started by StartWith. The zero value is a plain
// server, the same as Start.
type Options struct {
	// Args are extra redis-server arguments appended to the command line,
	// such as "--maxmemory", "10mb". Default: none.
	Args []string
	// TLS makes the server accept only TLS connections on Addr, with a
	// certificate for 127.0.0.1 and localhost signed by a certificate
	// authority made for this server (see Server.TLSConfig). Clients are
	// not asked for certificates. Default: false (plain TCP).
	TLS bool
}

// Server is one redis-server process run by a test. Its methods are safe
// for concurrent use; the ones that fail use the testing.TB given to Start.
type Server struct {
	// Addr is the address the server listens on, "127.0.0.1:port". It
	// stays the same across Restart.
	Addr string

	tb    testing.TB
	bin   string
	dir   string
	port  int
	build func(port int) []string // the command line without the binary
	tls   *tls.Config             // client side; nil for plain TCP
	// ready reports whether the started process serves; the default is a
	// PING answered with PONG.
	ready func() error

	mu   sync.Mutex
	proc *proc.Process // nil before the first start
}

// Start runs a plain redis-server on a random free port of 127.0.0.1 and
// stops it when the test ends. It skips the test when redis-server is not
// installed (or fails it when the environment variable CI is set).
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options.
func StartWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	s := newServer(tb)
	extra := append([]string(nil), o.Args...)
	portFlag := "--port"
	if o.TLS {
		files, clientCfg, err := writeCertificates(s.dir)
		if err != nil {
			tb.Fatalf("redistest: TLS certificates: %v", err)
		}
		s.tls = clientCfg
		portFlag = "--tls-port"
		extra = append([]string{
			"--port", "0",
			"--tls-cert-file", files.cert,
			"--tls-key-file", files.key,
			"--tls-ca-cert-file", files.ca,
			"--tls-auth-clients", "no",
		}, extra...)
	}
	s.build = func(p int) []string {
		args := []string{
			portFlag, strconv.Itoa(p),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--dbfilename", "dump.rdb",
			"--logfile", "redis.log",
			"--daemonize", "no",
		}
		return append(args, extra...)
	}
	s.launch()
	return s
}

// StartSentinel runs a Redis Sentinel on a random free port that monitors
// master under the name masterName, and waits until the sentinel knows the
// master's address. Server.Addr of the result is the sentinel's address.
func StartSentinel(tb testing.TB, master *Server, masterName string) *Server {
	tb.Helper()
	if master.tls != nil {
		tb.Fatal("redistest: StartSentinel supports plain TCP masters only")
	}
	host, mport, err := net.SplitHostPort(master.Addr)
	if err != nil {
		tb.Fatalf("redistest: master address %q: %v", master.Addr, err)
	}
	s := newServer(tb)
	conf := filepath.Join(s.dir, "sentinel.conf")
	s.build = func(p int) []string {
		// Sentinel rewrites its configuration file, so it is written
		// afresh before each start.
		// failover-timeout: a failover whose leader election split the
		// votes is tried again after twice this (default 3 minutes, so
		// 6 before a second try, longer than any test waits).
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"redis.log\"\ndir %q\n"+
			"sentinel monitor %s %s %s 1\nsentinel down-after-milliseconds %s 5000\nsentinel failover-timeout %s 10000\n",
			p, s.dir, masterName, host, mport, masterName, masterName)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		return []string{conf, "--sentinel"}
	}
	want := master.Addr
	s.ready = func() error {
		reply, err := s.Do("SENTINEL", "get-master-addr-by-name", masterName)
		if err != nil {
			return err
		}
		parts, ok := reply.([]any)
		if !ok || len(parts) != 2 {
			return fmt.Errorf("sentinel does not know %q yet (%v)", masterName, reply)
		}
		if got := fmt.Sprintf("%v:%v", parts[0], parts[1]); got != want {
			return fmt.Errorf("sentinel reports master %s, want %s", got, want)
		}
		return nil
	}
	s.launch()
	return s
}

// newServer prepares a Server without starting it: the binary, a temporary
// directory, and the cleanup that stops the process.
func newServer(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: proc.RequireBinary(tb, "redis-server", "REDIS_SERVER"), dir: tb.TempDir()}
	// Registered after TempDir, so it runs before the directory is removed.
	tb.Cleanup(s.Stop)
	return s
}

// launch starts the process on a free port, trying a few ports in case
// another process takes the one picked in the meantime.
func (s *Server) launch() {
	s.tb.Helper()
	var err error
	for range 5 {
		s.port, err = proc.FreePort()
		if err != nil {
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
		if err = s.startProcess(); err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		s.tb.Fatalf("redistest: start redis-server: %v", err)
	}
}

// startProcess runs the server on s.port and waits until it is ready.
func (s *Server) startProcess() error {
	// redis-server writes its own log (--logfile); its output is dropped.
	p, err := proc.Start(proc.Config{Path: s.bin, Args: s.build(s.port), Dir: s.dir})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	ready := s.ready
	if ready == nil {
		ready = s.pinged
	}
	err = p.WaitReady(ready, startTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, proc.ErrExited):
		return fmt.Errorf("%w (port %d): %s", errExited, s.port, s.logTail())
	default:
		p.Kill()
		return fmt.Errorf("redis-server on port %d: %v; log: %s", s.port, err, s.logTail())
	}
}

func (s *Server) pinged() error {
	reply, err := s.Do("PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %v", reply)
	}
	return nil
}

// logTail returns the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, err := proc.ReadTail(filepath.Join(s.dir, "redis.log"), 2000)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return strings.TrimSpace(string(b))
}

// URL returns a broker URL for the server: redis://127.0.0.1:port/0, or
// rediss:// when it serves TLS.
func (s *Server) URL() string {
	scheme := "redis"
	if s.tls != nil {
		scheme = "rediss"
	}
	return scheme + "://" + s.Addr + "/0"
}

// TLSConfig returns a client configuration that trusts the server's
// certificate authority, or nil for a plain TCP server. Each call returns a
// new copy.
func (s *Server) TLSConfig() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// Dir is the server's working directory (its log is redis.log there).
func (s *Server) Dir() string { return s.dir }

// Running reports whether the process is alive (a paused process counts).
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

// process is the current process, or nil before the first start.
func (s *Server) process() *proc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop shuts the server down gracefully (SIGTERM; SIGKILL if it does not
// exit in time) and waits for it. Stopping a stopped server does nothing.
// The data set is not saved.
func (s *Server) Stop() {
	if p := s.process(); p != nil {
		_ = p.Signal(syscall.SIGCONT) // a paused process cannot act on SIGTERM
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

// Pause stops the process with SIGSTOP: connections stay open but nothing
// is answered, as with a hung server. Resume undoes it; Stop and Kill work
// on a paused server.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.tb.Helper()
	p := s.process()
	if p == nil || !p.Running() {
		s.tb.Fatalf("redistest: signal %v: server is not running", sig)
	}
	if err := p.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Restart stops the server (if it runs) and starts it again on the same
// port. With empty false the data set survives: a running server saves it
// first (SAVE), and a killed one comes back with what was last saved by an
// earlier Restart. With empty true the server comes back with no data, as
// a server without persistence does after a crash.
func (s *Server) Restart(empty bool) {
	s.tb.Helper()
	if s.Running() {
		if !empty {
			if _, err := s.Do("SAVE"); err != nil {
				s.tb.Fatalf("redistest: SAVE before restart: %v", err)
			}
		}
		s.Stop()
	}
	if empty {
		if err := os.Remove(filepath.Join(s.dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.tb.Fatalf("redistest: %v", err)
		}
	}
	// The port was just released; another process could take it, and a
	// socket of the old process may linger for a moment. Retry a while.
	var err error
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if err = s.startProcess(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.tb.Fatalf("redistest: restart on port %d: %v", s.port, err)
}

// Do sends one command to the server on a new connection and returns the
// reply: a string (simple or bulk), an int64, nil, or a []any of those. An
// error reply is returned as an error.
func (s *Server) Do(args ...string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		cfg := s.tls.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := conn.Write(encodeCommand(args)); err != nil {
		return nil, err
	}
	return readReply(newReader(conn))
}
