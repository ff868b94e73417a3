package proxytest

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const nginxTemplate = `user www-data;
pid /run/x.pid;
error_log /var/log/x.log warn;
events { worker_connections 64; }
http {
    access_log /var/log/a.log;
    upstream ferry {
        # a comment: server 1.2.3.4:5;
        server 10.0.0.1:8080 max_fails=1 fail_timeout=2s;
        server 10.0.0.2:8080 max_fails=1 fail_timeout=2s;
        keepalive 8;
    }
    server {
        listen 80;
        listen 443 ssl;
        server_name _;
        location / { proxy_pass http://ferry; }
    }
}`

const haproxyTemplate = `global
    log /dev/log local0 info
    chroot /var/lib/haproxy
    user haproxy
    group haproxy
    daemon
    stats socket /run/haproxy/admin.sock mode 660 level admin
defaults
    mode http
    log global
    default-server check inter 2s
frontend in
    bind :80
    bind :443 ssl crt /x.pem
    default_backend ferry
backend ferry
    balance roundrobin
    server a 10.0.0.1:8080 weight 10
    server b 10.0.0.2:8080 weight 10`

func TestRenderNginx(t *testing.T) {
	backends := []Backend{{Addr: "127.0.0.1:1001"}, {Addr: "127.0.0.1:1002"}, {Addr: "127.0.0.1:1003"}}
	got, err := RenderNginx(nginxTemplate, "127.0.0.1:9000", backends, "/tmp/d", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"user root root;",
		"pid /tmp/d/nginx.pid;",
		"error_log /tmp/d/error.log warn;",
		"access_log /tmp/d/access.log;",
		"        server 127.0.0.1:1001 max_fails=1 fail_timeout=2s;\n        server 127.0.0.1:1002 max_fails=1 fail_timeout=2s;\n        server 127.0.0.1:1003 max_fails=1 fail_timeout=2s;\n        keepalive 8;",
		"listen 127.0.0.1:9000;",
		"proxy_temp_path /tmp/d/tmp/proxy;",
		"# a comment: server 1.2.3.4:5;",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered nginx.conf lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"www-data", "10.0.0.", "listen 80", "listen 443", "/var/log", "/run/x.pid"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered nginx.conf still has %q:\n%s", gone, got)
		}
	}
	if got, _ := RenderNginx(nginxTemplate, "x", backends, "/d", false); strings.Contains(got, "user root") {
		t.Error("user root added though not running as root")
	}
}

func TestRenderHAProxy(t *testing.T) {
	backends := []Backend{{Name: "n1", Addr: "127.0.0.1:1001"}, {Addr: "127.0.0.1:1002"}}
	got, err := RenderHAProxy(haproxyTemplate, "127.0.0.1:9000", backends, "/tmp/d")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"log stdout format raw local0 info",
		"stats socket /tmp/d/admin.sock mode 600 level admin",
		"    log global",
		"bind 127.0.0.1:9000",
		"    server n1 127.0.0.1:1001 weight 10\n    server node2 127.0.0.1:1002 weight 10",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered haproxy.cfg lacks %q:\n%s", want, got)
		}
	}
	for _, gone := range []string{"chroot", "user haproxy", "group", "daemon", "10.0.0.", ":443", "/run/haproxy"} {
		if strings.Contains(got, gone) {
			t.Errorf("rendered haproxy.cfg still has %q:\n%s", gone, got)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	one := []Backend{{Addr: "127.0.0.1:1"}}
	tests := []struct {
		name string
		err  error
		run  func() error
	}{
		{"nginx no backends", ErrNoBackends, func() error { _, err := RenderNginx(nginxTemplate, "x", nil, "/d", false); return err }},
		{"nginx no upstream", ErrNoUpstream, func() error {
			_, err := RenderNginx("http {\n server {\n listen 80;\n }\n}", "x", one, "/d", false)
			return err
		}},
		{"nginx no listen", ErrNoListen, func() error {
			_, err := RenderNginx("http {\n upstream u {\n server a:1;\n }\n}", "x", one, "/d", false)
			return err
		}},
		{"haproxy no servers", ErrNoUpstream, func() error {
			_, err := RenderHAProxy("frontend f\n bind :80\nbackend b\n balance roundrobin", "x", one, "/d")
			return err
		}},
		{"haproxy no bind", ErrNoListen, func() error {
			_, err := RenderHAProxy("backend b\n server a 1.2.3.4:5", "x", one, "/d")
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestProxiesServe runs the shipped configurations in front of two plain
// HTTP backends and checks that requests get through.
func TestProxiesServe(t *testing.T) {
	for _, kind := range []Kind{Nginx, HAProxy} {
		t.Run(string(kind), func(t *testing.T) {
			var backends []Backend
			for _, name := range []string{"a", "b"} {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, "backend "+name)
				}))
				t.Cleanup(srv.Close)
				backends = append(backends, Backend{Name: name, Addr: strings.TrimPrefix(srv.URL, "http://")})
			}
			p := Start(t, Options{Kind: kind, Backends: backends})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			seen := map[string]bool{}
			for range 6 {
				resp, err := client.Get(p.URL() + "/v1/api/stats")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "backend ") {
					t.Fatalf("through %s: HTTP %d %q", kind, resp.StatusCode, b)
				}
				seen[string(b)] = true
			}
			if kind == Nginx && len(seen) != 2 {
				t.Errorf("nginx round-robin reached %v, want both backends", seen)
			}
			// /metrics is not proxied: nodes are scraped directly.
			resp, err := client.Get(p.URL() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET /metrics through %s: HTTP %d, want 404", kind, resp.StatusCode)
			}
			if kind == HAProxy {
				st, err := p.ServerStatus()
				if err != nil || len(st) != 2 {
					t.Errorf("ServerStatus = %v, %v; want two servers", st, err)
				}
			}
			p.Stop()
			if _, err := client.Get(p.URL() + "/"); err == nil {
				t.Errorf("%s still answers after Stop", kind)
			}
		})
	}
}
