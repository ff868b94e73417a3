package proxytest

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
)

// Kind names a proxy.
type Kind string

// The proxies of deploy/.
const (
	Nginx   Kind = "nginx"
	HAProxy Kind = "haproxy"
)

// Timeouts of the helper; they bound how long a broken proxy can hang a
// test.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
	adminTimeout = 5 * time.Second
)

// Options shape a proxy started by Start.
type Options struct {
	// Kind is Nginx or HAProxy. Required.
	Kind Kind
	// Backends are the nodes behind the proxy. Required.
	Backends []Backend
	// Template is the configuration file to render. Default: deploy/nginx.conf
	// or deploy/haproxy.cfg of the module.
	Template string
}

// Proxy is one nginx or haproxy process in the foreground.
type Proxy struct {
	// Kind is the proxy's kind.
	Kind Kind
	// Addr is where it listens, "127.0.0.1:port".
	Addr string
	// Config is the configuration it runs (the rendered template).
	Config string

	tb   testing.TB
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNginx runs deploy/nginx.conf in front of backends.
func StartNginx(tb testing.TB, backends ...Backend) *Proxy {
	tb.Helper()
	return Start(tb, Options{Kind: Nginx, Backends: backends})
}

// StartHAProxy runs deploy/haproxy.cfg in front of backends.
func StartHAProxy(tb testing.TB, backends ...Backend) *Proxy {
	tb.Helper()
	return Start(tb, Options{Kind: HAProxy, Backends: backends})
}

// Start renders the template for o.Backends and a free port, runs the
// proxy in the foreground and waits until it answers HTTP. It is stopped
// when the test ends. Skips (or, with CI set, fails) when the proxy is
// not installed.
func Start(tb testing.TB, o Options) *Proxy {
	tb.Helper()
	bin := binary(tb, o.Kind)
	tmpl := o.Template
	if tmpl == "" {
		root, err := ferrytest.ModuleRoot()
		if err != nil {
			tb.Fatalf("proxytest: %v", err)
		}
		name := "nginx.conf"
		if o.Kind == HAProxy {
			name = "haproxy.cfg"
		}
		tmpl = filepath.Join(root, "deploy", name)
	}
	text, err := os.ReadFile(tmpl)
	if err != nil {
		tb.Fatalf("proxytest: template: %v", err)
	}
	p := &Proxy{Kind: o.Kind, tb: tb, dir: tb.TempDir()}
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("proxytest: %s log:\n%s", p.Kind, p.LogTail(4000))
		}
	})
	for range 5 {
		var port int
		if port, err = freePort(); err != nil {
			continue
		}
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		switch o.Kind {
		case Nginx:
			p.Config, err = RenderNginx(string(text), p.Addr, o.Backends, p.dir, os.Geteuid() == 0)
		case HAProxy:
			p.Config, err = RenderHAProxy(string(text), p.Addr, o.Backends, p.dir)
		}
		if err != nil {
			tb.Fatalf("proxytest: render %s: %v", tmpl, err)
		}
		if err = p.startProcess(bin); err == nil || !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		tb.Fatalf("proxytest: start %s: %v", o.Kind, err)
	}
	return p
}

// binary finds the proxy's executable, skipping or failing tb when there
// is none.
func binary(tb testing.TB, k Kind) string {
	tb.Helper()
	env, pkg := "NGINX", "nginx"
	if k == HAProxy {
		env, pkg = "HAPROXY", "haproxy"
	} else if k != Nginx {
		tb.Fatalf("proxytest: unknown kind %q", k)
	}
	if p := os.Getenv(env); p != "" {
		return p
	}
	if p, err := exec.LookPath(string(k)); err == nil {
		return p
	}
	// Debian installs both in /usr/sbin, which is not in every PATH.
	if p := filepath.Join("/usr/sbin", string(k)); isExecutable(p) {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH or /usr/sbin (install the Debian package %s, or set %s)", k, pkg, env)
	if os.Getenv("CI") != "" {
		tb.Fatal("proxytest: " + msg + "; CI is set, so this is a failure")
	}
	tb.Skip("proxytest: " + msg + "; skipping")
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// URL is the proxy's HTTP base URL.
func (p *Proxy) URL() string { return "http://" + p.Addr }

// WebSocketURL is the WebSocket endpoint through the proxy.
func (p *Proxy) WebSocketURL() string { return "ws://" + p.Addr + "/v1/ws" }

// Dir is the proxy's directory (configuration, logs, pid file, socket).
func (p *Proxy) Dir() string { return p.dir }

func (p *Proxy) startProcess(bin string) error {
	var conf string
	var args []string
	switch p.Kind {
	case Nginx:
		conf = filepath.Join(p.dir, "nginx.conf")
		for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			if err := os.MkdirAll(filepath.Join(p.dir, "tmp", d), 0o700); err != nil {
				return err
			}
		}
		args = []string{"-p", p.dir, "-c", conf, "-g", "daemon off;"}
	case HAProxy:
		conf = filepath.Join(p.dir, "haproxy.cfg")
		args = []string{"-f", conf, "-db"}
	}
	if err := os.WriteFile(conf, []byte(p.Config), 0o600); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(p.dir, "proxy.out"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = out, out
	configureProcess(cmd)
	if err := cmd.Start(); err != nil {
		out.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	for {
		// Any HTTP answer (even 502 with every node down) means it serves.
		resp, err := client.Get(p.URL() + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w (%s): %s", errExited, p.Addr, p.LogTail(2000))
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("%s on %s not serving after %v: %v; log: %s", p.Kind, p.Addr, startTimeout, err, p.LogTail(2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends the proxy (SIGTERM to its process group: a fast shutdown that
// cuts open connections; SIGKILL if it lingers) and waits for it. Stopping
// a stopped proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	signalGroup(cmd, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		signalGroup(cmd, syscall.SIGKILL)
		<-done
	}
	// nginx workers exit after their master; make sure none is left.
	signalGroup(cmd, syscall.SIGKILL)
}

// LogTail returns the end of what the proxy logged (its output and, for
// nginx, error.log).
func (p *Proxy) LogTail(max int) string {
	var b strings.Builder
	for _, name := range []string{"proxy.out", "error.log"} {
		data, err := os.ReadFile(filepath.Join(p.dir, name))
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > max {
			data = data[len(data)-max:]
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", name, data)
	}
	return strings.TrimSpace(b.String())
}

// Admin sends one command to HAProxy's stats socket (from the template's
// "stats socket" line) and returns the answer.
func (p *Proxy) Admin(command string) (string, error) {
	if p.Kind != HAProxy {
		return "", fmt.Errorf("admin socket: %s has none", p.Kind)
	}
	conn, err := net.DialTimeout("unix", filepath.Join(p.dir, "admin.sock"), adminTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(adminTimeout))
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(bufio.NewReader(conn))
	return string(b), err
}

// ServerStatus returns HAProxy's view of each backend server, by name:
// "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/2" (coming up), "MAINT"...
func (p *Proxy) ServerStatus() (map[string]string, error) {
	text, err := p.Admin("show stat")
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(text, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	if len(rows) == 0 {
		return nil, errors.New("show stat: empty answer")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	sv, okSv := col["svname"]
	st, okSt := col["status"]
	if !okSv || !okSt {
		return nil, fmt.Errorf("show stat: no svname/status columns in %q", rows[0])
	}
	out := map[string]string{}
	for _, row := range rows[1:] {
		if len(row) <= max(sv, st) {
			continue
		}
		switch row[sv] {
		case "FRONTEND", "BACKEND":
			continue
		}
		out[row[sv]] = row[st]
	}
	return out, nil
}
