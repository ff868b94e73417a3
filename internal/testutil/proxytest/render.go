package proxytest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Backend is one node behind the proxy.
type Backend struct {
	// Name names the server in HAProxy (its stats and logs); nginx does not
	// use it. Default: "nodeN" for the N-th backend.
	Name string
	// Addr is the node's "host:port".
	Addr string
}

var (
	nginxServer   = regexp.MustCompile(`^(\s*)server\s+\S+?((?:\s+[^;#]*?)?)\s*;\s*(?:#.*)?$`)
	nginxListen   = regexp.MustCompile(`^(\s*)listen\s+[^;]+;`)
	nginxUpstream = regexp.MustCompile(`^\s*upstream\s+\S+\s*\{`)
	nginxHTTP     = regexp.MustCompile(`^\s*http\s*\{`)
	nginxLogLine  = regexp.MustCompile(`^(\s*)(error_log|access_log)\s+(\S+?)((?:\s+[^;]*)?);`)
	nginxUser     = regexp.MustCompile(`^\s*user\s`)
	nginxPid      = regexp.MustCompile(`^\s*pid\s`)
)

// RenderNginx rewrites an nginx.conf for a test run: the server lines of
// its upstream block become one line per backend (with the first line's
// parameters), the first listen directive listens on listen (the others
// are dropped), pid, logs and temporary files go to dir, and the user
// directive is dropped (when the test runs as root, the workers run as
// root too, so that they can use dir).
func RenderNginx(template, listen string, backends []Backend, dir string, asRoot bool) (string, error) {
	if len(backends) == 0 {
		return "", ErrNoBackends
	}
	var out []string
	if asRoot {
		out = append(out, "user root root; # proxytest: the workers must reach the test directory")
	}
	inUpstream, servers, listens := false, 0, 0
	for _, line := range strings.Split(template, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			out = append(out, line)
			continue
		}
		switch {
		case nginxUpstream.MatchString(line):
			inUpstream = true
		case inUpstream && strings.HasPrefix(trimmed, "}"):
			inUpstream = false
		case inUpstream && nginxServer.MatchString(line):
			servers++
			if servers > 1 {
				continue
			}
			m := nginxServer.FindStringSubmatch(line)
			for _, b := range backends {
				out = append(out, fmt.Sprintf("%sserver %s%s;", m[1], b.Addr, m[2]))
			}
			continue
		case nginxListen.MatchString(line):
			listens++
			if listens > 1 {
				continue
			}
			m := nginxListen.FindStringSubmatch(line)
			out = append(out, fmt.Sprintf("%slisten %s;", m[1], listen))
			continue
		case nginxUser.MatchString(line):
			continue
		case nginxPid.MatchString(line):
			out = append(out, "pid "+filepath.Join(dir, "nginx.pid")+";")
			continue
		case nginxLogLine.MatchString(line):
			m := nginxLogLine.FindStringSubmatch(line)
			if m[3] != "off" {
				name := "error.log"
				if m[2] == "access_log" {
					name = "access.log"
				}
				out = append(out, fmt.Sprintf("%s%s %s%s;", m[1], m[2], filepath.Join(dir, name), m[4]))
				continue
			}
		case nginxHTTP.MatchString(line):
			out = append(out, line)
			tmp := filepath.Join(dir, "tmp")
			for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
				out = append(out, fmt.Sprintf("    %s_temp_path %s;", d, filepath.Join(tmp, d)))
			}
			continue
		}
		out = append(out, line)
	}
	if servers == 0 {
		return "", ErrNoUpstream
	}
	if listens == 0 {
		return "", ErrNoListen
	}
	return strings.Join(out, "\n"), nil
}

var (
	haproxySection = regexp.MustCompile(`^\s*(global|defaults|frontend|backend|listen|resolvers|peers|userlist|program|http-errors|ring|cache|mailers)(\s|$)`)
	haproxyServer  = regexp.MustCompile(`^(\s*)server\s+\S+\s+\S+(.*)$`)
	haproxyBind    = regexp.MustCompile(`^(\s*)bind\s`)
	haproxyDrop    = regexp.MustCompile(`^\s*(chroot|user|group|uid|gid|daemon)(\s|$)`)
	haproxyLog     = regexp.MustCompile(`^(\s*)log\s+(\S+)`)
	haproxySocket  = regexp.MustCompile(`^(\s*)stats\s+socket\s`)
	haproxyPidfile = regexp.MustCompile(`^(\s*)pidfile\s`)
)

// RenderHAProxy rewrites a haproxy.cfg for a test run: the server lines of
// its backend become one line per backend (with the first line's
// parameters), the first bind line binds listen (the others are dropped),
// the global log goes to stdout, the stats socket and pid file to dir, and
// chroot, user, group and daemon are dropped.
func RenderHAProxy(template, listen string, backends []Backend, dir string) (string, error) {
	if len(backends) == 0 {
		return "", ErrNoBackends
	}
	var out []string
	section, servers, binds := "", 0, 0
	for _, line := range strings.Split(template, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			out = append(out, line)
			continue
		}
		if m := haproxySection.FindStringSubmatch(line); m != nil {
			section = m[1]
			out = append(out, line)
			continue
		}
		switch {
		case section == "global" && haproxyDrop.MatchString(line):
			continue
		case section == "global" && haproxyLog.MatchString(line):
			m := haproxyLog.FindStringSubmatch(line)
			out = append(out, m[1]+"log stdout format raw local0 info")
			continue
		case section == "global" && haproxySocket.MatchString(line):
			m := haproxySocket.FindStringSubmatch(line)
			out = append(out, m[1]+"stats socket "+filepath.Join(dir, "admin.sock")+" mode 600 level admin")
			continue
		case section == "global" && haproxyPidfile.MatchString(line):
			m := haproxyPidfile.FindStringSubmatch(line)
			out = append(out, m[1]+"pidfile "+filepath.Join(dir, "haproxy.pid"))
			continue
		case (section == "frontend" || section == "listen") && haproxyBind.MatchString(line):
			binds++
			if binds > 1 {
				continue
			}
			m := haproxyBind.FindStringSubmatch(line)
			out = append(out, m[1]+"bind "+listen)
			continue
		case (section == "backend" || section == "listen") && haproxyServer.MatchString(line):
			servers++
			if servers > 1 {
				continue
			}
			m := haproxyServer.FindStringSubmatch(line)
			for i, b := range backends {
				name := b.Name
				if name == "" {
					name = fmt.Sprintf("node%d", i+1)
				}
				out = append(out, fmt.Sprintf("%sserver %s %s%s", m[1], name, b.Addr, m[2]))
			}
			continue
		}
		out = append(out, line)
	}
	if servers == 0 {
		return "", ErrNoUpstream
	}
	if binds == 0 {
		return "", ErrNoListen
	}
	return strings.Join(out, "\n"), nil
}
