package ws

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Memory per idle connection. The clients live in a child process (this
// test binary re-run as TestMemClientHelper) and use raw sockets, so that
// the numbers measured in this process are the server's alone, and so that
// each process stays under the file descriptor limit at 15,000 connections.
//
//	FERRY_WS_MEMCONNS=15000 go test -run TestIdleConnMemory -v ./internal/transport/ws
//	FERRY_WS_MEMCONNS=15000 go test -run '^$' -bench IdleConnMemory -benchtime 3x ./internal/transport/ws

const (
	envMemConns  = "FERRY_WS_MEMCONNS"
	envMemClient = "FERRY_WS_MEMCLIENT" // addr,count: run as the client helper
)

// idleHandler is a Handler that does nothing but count closes.
type idleHandler struct{ closed *sync.WaitGroup }

func (idleHandler) OnMessage(*Conn, bool, []byte) {}
func (h idleHandler) OnClose(*Conn, int, string)  { h.closed.Done() }
func (idleHandler) OnWritable(*Conn)              {}

// memReport is the server's memory growth per connection.
type memReport struct {
	conns             int
	heapPerConn       float64 // HeapInuse delta
	stackPerConn      float64 // StackInuse delta
	rssPerConn        float64 // resident set delta, everything included
	connStructSize    uintptr
	sysPerConn        float64 // Sys delta: all memory the runtime obtained
	goroutinesPerConn float64
}

func (r memReport) String() string {
	return fmt.Sprintf("%d idle conns: heap %.0f B/conn, goroutine stacks %.0f B/conn, RSS %.0f B/conn (runtime Sys %.0f B/conn), %.2f goroutines/conn, sizeof(Conn) = %d B",
		r.conns, r.heapPerConn, r.stackPerConn, r.rssPerConn, r.sysPerConn, r.goroutinesPerConn, r.connStructSize)
}

// idleFleet is a server with n idle connections from a child process.
type idleFleet struct {
	srv    *http.Server
	ln     net.Listener
	conns  []*Conn
	mu     sync.Mutex
	closed sync.WaitGroup
	child  *exec.Cmd
	stdin  interface{ Close() error }
	before snapshot
}

type snapshot struct {
	heap, stack, sys, rss uint64
	goroutines            int
}

func takeSnapshot() snapshot {
	for range 3 {
		runtime.GC() // stacks shrink during collections
	}
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return snapshot{heap: ms.HeapInuse, stack: ms.StackInuse, sys: ms.Sys, rss: rssBytes(), goroutines: runtime.NumGoroutine()}
}

func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func startIdleFleet(tb testing.TB, n int) *idleFleet {
	tb.Helper()
	f := &idleFleet{}
	f.closed.Add(n)
	var err error
	f.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	opts := withTestReactor(&Options{})
	var accepted atomic.Int64
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, opts)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		_ = c.Serve(idleHandler{&f.closed})
		accepted.Add(1)
	})}
	go func() { _ = f.srv.Serve(f.ln) }()
	f.before = takeSnapshot()

	f.child = exec.Command(os.Args[0], "-test.run=^TestMemClientHelper$", "-test.count=1")
	f.child.Env = append(os.Environ(), envMemClient+"="+f.ln.Addr().String()+","+strconv.Itoa(n))
	f.child.Stderr = os.Stderr
	stdin, err := f.child.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	f.stdin = stdin
	stdout, err := f.child.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.child.Start(); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready") {
		tb.Fatalf("client helper: %q, %v", line, err)
	}
	pollUntil(tb, "all connections accepted", func() bool { return accepted.Load() == int64(n) })
	// One heartbeat round: each client pinged once (answered with pongs by
	// the server's readers); now the server pings every client.
	f.sweep(tb)
	return f
}

// sweep pings every connection, as the server's heartbeat does.
func (f *idleFleet) sweep(tb testing.TB) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		if err := c.Ping(); err != nil {
			tb.Fatalf("ping: %v", err)
		}
	}
}

func (f *idleFleet) report(n int) memReport {
	after := takeSnapshot()
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return memReport{
		conns:             n,
		heapPerConn:       per(after.heap, f.before.heap),
		stackPerConn:      per(after.stack, f.before.stack),
		rssPerConn:        per(after.rss, f.before.rss),
		sysPerConn:        per(after.sys, f.before.sys),
		goroutinesPerConn: float64(after.goroutines-f.before.goroutines) / float64(n),
		connStructSize:    sizeofConn(),
	}
}

func (f *idleFleet) stop(tb testing.TB) {
	tb.Helper()
	_ = f.stdin.Close() // the helper closes every socket and exits
	if err := f.child.Wait(); err != nil {
		tb.Errorf("client helper: %v", err)
	}
	f.closed.Wait() // every OnClose ran
	_ = f.srv.Close()
}

func memConns(def int) int {
	if n, err := strconv.Atoi(os.Getenv(envMemConns)); err == nil && n > 0 {
		return n
	}
	return def
}

func TestIdleConnMemory(t *testing.T) {
	n := memConns(300)
	f := startIdleFleet(t, n)
	r := f.report(n)
	f.stop(t)
	t.Log(r)
	if r.goroutinesPerConn > 1.05 {
		t.Errorf("%.2f goroutines per idle connection, want 1 (the reader only)", r.goroutinesPerConn)
	}
}

func BenchmarkIdleConnMemory(b *testing.B) {
	n := memConns(2000)
	f := startIdleFleet(b, n)
	r := f.report(n)
	b.Log(r)
	// The measured operation: one heartbeat sweep (a ping to every
	// connection). Over loopback each ping also pays for the receiver's TCP
	// processing on the same CPU.
	for b.Loop() {
		f.sweep(b)
	}
	b.ReportMetric(r.heapPerConn, "heap-B/conn")
	b.ReportMetric(r.stackPerConn, "stack-B/conn")
	b.ReportMetric(r.rssPerConn, "rss-B/conn")
	b.ReportMetric(float64(r.connStructSize), "sizeof-Conn-B")
	f.stop(b)
}

// TestMemClientHelper is the client side of the memory tests, run in a
// child process. It is skipped unless FERRY_WS_MEMCLIENT is set.
func TestMemClientHelper(t *testing.T) {
	spec := os.Getenv(envMemClient)
	if spec == "" {
		t.Skip("client helper for TestIdleConnMemory; runs only in the child process")
	}
	addrStr, nStr, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(nStr)
	addr, err := net.ResolveTCPAddr("tcp", addrStr)
	if err != nil {
		t.Fatal(err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	req := []byte(handshakeRequest(addrStr, ""))
	ping := frame(true, 0x9, []byte("hb"))
	fds := make([]int, 0, n)
	buf := make([]byte, 512)
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			t.Fatal(err)
		}
		var resp []byte
		for !bytes.Contains(resp, []byte("\r\n\r\n")) {
			k, err := unix.Read(fd, buf)
			if err != nil || k == 0 {
				t.Fatal(errors.Join(err, errors.New("handshake response cut")))
			}
			resp = append(resp, buf[:k]...)
		}
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) {
			t.Fatalf("handshake: %q", resp)
		}
		if _, err := unix.Write(fd, ping); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}
