package cluster_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/ferrytest"
	"github.com/ferry-io/ferry/server"
)

// readDeploy returns a file of deploy/ without its comments.
func readDeploy(t *testing.T, name string) string {
	t.Helper()
	root, err := ferrytest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// nginxBlock returns the body of the first block whose header matches
// header (e.g. `location = /v1/ws`), braces balanced.
func nginxBlock(t *testing.T, conf, header string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(header) + `\s*\{`)
	loc := re.FindStringIndex(conf)
	if loc == nil {
		t.Fatalf("deploy/nginx.conf has no block %q", header)
	}
	depth := 1
	for i := loc[1]; i < len(conf); i++ {
		switch conf[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[loc[1]:i]
			}
		}
	}
	t.Fatalf("deploy/nginx.conf: block %q is not closed", header)
	return ""
}

// directive returns the values of every `name value;` (nginx) or
// `name value` line (HAProxy) in text.
func directive(text, name string) []string {
	re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s+([^;\n]+);?\s*$`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out = append(out, strings.TrimSpace(m[1]))
	}
	return out
}

// durations parses values as durations (nginx/HAProxy style: 75s, 2m,
// 500ms), failing t for a value it cannot read and for no value at all
// (unset: the proxy's default applies, which why says is wrong).
func durations(t *testing.T, what string, values []string, why string) []time.Duration {
	t.Helper()
	if len(values) == 0 {
		t.Errorf("%s: not set (%s)", what, why)
	}
	var out []time.Duration
	for _, v := range values {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s %q: not a duration this test understands: %v", what, v, err)
			continue
		}
		out = append(out, d)
	}
	return out
}

// atLeast fails t unless every value is a duration longer than min (the
// heartbeat: idle connections must not be cut).
func atLeast(t *testing.T, what string, values []string, min time.Duration) {
	t.Helper()
	for _, d := range durations(t, what, values, "the defaults are shorter than the heartbeat") {
		if d <= min {
			t.Errorf("%s %v: must be longer than heartbeat.interval + heartbeat.timeout = %v, or idle connections are cut", what, d, min)
		}
	}
}

// atMost fails t unless every value is a duration of at most max.
func atMost(t *testing.T, what string, values []string, max time.Duration) {
	t.Helper()
	for _, d := range durations(t, what, values, "the defaults keep a frozen node in rotation too long") {
		if d > max {
			t.Errorf("%s %v: must be at most %v, or a frozen node stays in rotation too long", what, d, max)
		}
	}
}

// TestDeployConfigs checks what the proxy configurations must keep: timeouts
// longer than the heartbeat (the defaults of server.Default), WebSocket
// upgrade headers, no buffering on the streaming endpoints, round-robin in
// nginx, consistent hashing and /readyz checks in HAProxy. The other tests
// run these files for real.
func TestDeployConfigs(t *testing.T) {
	hb := server.Default().Heartbeat
	idle := hb.Interval + hb.Timeout

	t.Run("nginx", func(t *testing.T) {
		conf := readDeploy(t, "nginx.conf")
		ws := nginxBlock(t, conf, "location = /v1/ws")
		for _, want := range []string{
			"proxy_set_header Upgrade           $http_upgrade",
			"proxy_set_header Connection        $connection_upgrade",
		} {
			if !strings.Contains(ws, want) {
				t.Errorf("location /v1/ws lacks %q", want)
			}
		}
		if !regexp.MustCompile(`map \$http_upgrade \$connection_upgrade`).MatchString(conf) {
			t.Error("no map from $http_upgrade to $connection_upgrade")
		}
		for _, loc := range []string{"location = /v1/ws", "location = /v1/sse", "location = /v1/poll"} {
			body := nginxBlock(t, conf, loc)
			atLeast(t, loc+" proxy_read_timeout", directive(body, "proxy_read_timeout"), idle)
			atLeast(t, loc+" proxy_send_timeout", directive(body, "proxy_send_timeout"), idle)
			if got := directive(body, "proxy_buffering"); len(got) != 1 || got[0] != "off" {
				t.Errorf("%s: proxy_buffering %v, want off", loc, got)
			}
			if got := directive(body, "proxy_http_version"); len(got) > 0 && got[0] != "1.1" {
				t.Errorf("%s: proxy_http_version %v, want 1.1", loc, got)
			}
		}
		if got := directive(nginxBlock(t, conf, "server"), "proxy_http_version"); len(got) != 1 || got[0] != "1.1" {
			t.Errorf("server: proxy_http_version %v, want 1.1 (WebSocket needs it)", got)
		}
		up := nginxBlock(t, conf, "upstream ferry")
		for _, sticky := range []string{"ip_hash", "hash", "sticky", "least_conn", "random"} {
			if len(directive(up, sticky)) > 0 {
				t.Errorf("upstream ferry uses %s; the deployment is round-robin", sticky)
			}
		}
		if len(directive(up, "server")) < 2 {
			t.Error("upstream ferry lists fewer than two nodes")
		}
		// A frozen node: fail over fast on connect, and on the requests
		// that answer at once (location /).
		atMost(t, "proxy_connect_timeout", directive(conf, "proxy_connect_timeout"), 2*time.Second)
		atMost(t, "location / proxy_read_timeout", directive(nginxBlock(t, conf, "location /"), "proxy_read_timeout"), 10*time.Second)
		for _, srv := range directive(up, "server") {
			if !strings.Contains(srv, "max_fails=") || !strings.Contains(srv, "fail_timeout=") {
				t.Errorf("upstream server %q: max_fails and fail_timeout must be set (passive checks)", srv)
			}
		}
		if !strings.Contains(directive(conf, "proxy_next_upstream")[0], "http_503") {
			t.Error("proxy_next_upstream must include http_503: a draining node answers 503 to new handshakes")
		}
	})

	t.Run("haproxy", func(t *testing.T) {
		conf := readDeploy(t, "haproxy.cfg")
		for _, name := range []string{"timeout tunnel", "timeout client", "timeout server"} {
			atLeast(t, name, directive(conf, name), idle)
		}
		if got := directive(conf, "balance"); len(got) != 1 || !strings.HasPrefix(got[0], "hash ") {
			t.Errorf("balance %v, want hash on the affinity key", got)
		}
		if got := directive(conf, "hash-type"); len(got) != 1 || got[0] != "consistent" {
			t.Errorf("hash-type %v, want consistent", got)
		}
		if got := directive(conf, "option"); !containsAll(got, "httpchk", "redispatch", "forwardfor") {
			t.Errorf("options %v, want httpchk, redispatch and forwardfor", got)
		}
		if got := directive(conf, "http-check send"); len(got) != 1 || !strings.Contains(got[0], "uri /readyz") {
			t.Errorf("http-check send %v, want GET /readyz", got)
		}
		if got := directive(conf, "default-server"); len(got) != 1 || !strings.Contains(got[0], "check") {
			t.Errorf("default-server %v: servers must be checked", got)
		} else {
			// A frozen node must leave rotation within a few seconds:
			// checks every second, two failures, each failing after
			// timeout check.
			f := strings.Fields(got[0])
			if i := slices.Index(f, "inter"); i < 0 || i+1 >= len(f) {
				t.Errorf("default-server %q: no inter", got[0])
			} else {
				atMost(t, "default-server inter", f[i+1:i+2], time.Second)
			}
			if i := slices.Index(f, "fall"); i < 0 || i+1 >= len(f) || !slices.Contains([]string{"1", "2"}, f[i+1]) {
				t.Errorf("default-server %q: fall must be at most 2", got[0])
			}
		}
		atMost(t, "timeout check", directive(conf, "timeout check"), 2*time.Second)
	})
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}
