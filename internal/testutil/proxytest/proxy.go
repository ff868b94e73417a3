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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/internal/testutil/proc"
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
	proc *proc.Process // nil before the start
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
		if port, err = proc.FreePort(); err != nil {
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
	env := "NGINX"
	if k == HAProxy {
		env = "HAPROXY"
	} else if k != Nginx {
		tb.Fatalf("proxytest: unknown kind %q", k)
	}
	// Debian installs both in /usr/sbin, which is not in every PATH.
	return proc.RequireBinary(tb, string(k), env, "/usr/sbin")
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
	// The proxy and its workers get a process group of their own, so that
	// Stop can signal them all.
	pr, err := proc.Start(proc.Config{
		Path:    bin,
		Args:    args,
		Dir:     p.dir,
		LogFile: filepath.Join(p.dir, "proxy.out"),
		Group:   true,
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.proc = pr
	p.mu.Unlock()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err = pr.WaitReady(func() error {
		// Any HTTP answer (even 502 with every node down) means it serves.
		resp, err := client.Get(p.URL() + "/healthz")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}, startTimeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, proc.ErrExited):
		return fmt.Errorf("%w (%s): %s", errExited, p.Addr, p.LogTail(2000))
	default:
		p.Stop()
		return fmt.Errorf("%s on %s not serving: %v; log: %s", p.Kind, p.Addr, err, p.LogTail(2000))
	}
}

// Stop ends the proxy (SIGTERM to its process group: a fast shutdown that
// cuts open connections; SIGKILL if it lingers) and waits for it. Stopping
// a stopped proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	pr := p.proc
	p.mu.Unlock()
	if pr != nil {
		// Stop also ends workers left in the group after their master.
		_ = pr.Stop(stopTimeout)
	}
}

// LogTail returns the end of what the proxy logged (its output and, for
// nginx, error.log).
func (p *Proxy) LogTail(max int) string {
	var b strings.Builder
	for _, name := range []string{"proxy.out", "error.log"} {
		data, err := proc.ReadTail(filepath.Join(p.dir, name), max)
		if err != nil || len(data) == 0 {
			continue
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
