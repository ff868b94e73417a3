package redis

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// endpoint is one Redis server, or one Sentinel-managed master, parsed from
// Config.URL. A sharded setup has several.
type endpoint struct {
	tls bool
	// addrs are host:port pairs: the server, or the Sentinels when master
	// is set.
	addrs    []string
	master   string
	db       int
	user     string
	password string
	// Credentials for the Sentinels themselves.
	sentinelUser     string
	sentinelPassword string
	// redacted is the URL with its passwords hidden, for logs and errors.
	redacted string
}

// String returns the endpoint's URL without passwords.
func (e endpoint) String() string { return e.redacted }

// parseURLs splits Config.URL into endpoints. URLs are separated by commas;
// a comma followed by something without "://" continues the host list of a
// Sentinel URL.
func parseURLs(s string) ([]endpoint, error) {
	var raws []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		switch {
		case strings.Contains(part, "://"):
			raws = append(raws, part)
		case len(raws) == 0:
			return nil, fmt.Errorf("%w: %q does not start with a scheme such as redis://", ErrInvalidURL, redact(part))
		default:
			raws[len(raws)-1] += "," + part
		}
	}
	if len(raws) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	out := make([]endpoint, 0, len(raws))
	seen := make(map[string]bool, len(raws))
	for _, raw := range raws {
		e, err := parseURL(raw)
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("%s/%s/%d", strings.Join(e.addrs, ","), e.master, e.db)
		if seen[id] {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrInvalidURL, e)
		}
		seen[id] = true
		out = append(out, e)
	}
	return out, nil
}

// parseURL parses one URL of a form Config.URL documents.
func parseURL(raw string) (endpoint, error) {
	e := endpoint{redacted: redact(raw)}
	bad := func(format string, args ...any) (endpoint, error) {
		return endpoint{}, fmt.Errorf("%w: %s: %s", ErrInvalidURL, e.redacted, fmt.Sprintf(format, args...))
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	sentinel := false
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		e.tls = true
	case "redis+sentinel":
		sentinel = true
	case "rediss+sentinel":
		sentinel, e.tls = true, true
	default:
		return bad("unknown scheme %q (want redis, rediss, redis+sentinel or rediss+sentinel)", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	hosts := authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo := authority[:i]
		hosts = authority[i+1:]
		user, pass, _ := strings.Cut(userinfo, ":")
		var err error
		if e.user, err = url.PathUnescape(user); err != nil {
			return bad("user: %v", err)
		}
		if e.password, err = url.PathUnescape(pass); err != nil {
			return bad("password: %v", err)
		}
	}

	defaultPort := "6379"
	if sentinel {
		defaultPort = "26379"
	}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			return bad("%v", err)
		}
		e.addrs = append(e.addrs, addr)
	}
	if !sentinel && len(e.addrs) != 1 {
		return bad("one host expected (separate shards as whole URLs: redis://a,redis://b)")
	}

	segs := []string{}
	if path != "" {
		segs = strings.Split(path, "/")
	}
	if sentinel {
		if len(segs) == 0 || segs[0] == "" {
			return bad("the master name is missing (redis+sentinel://host:port/master[/db])")
		}
		name, err := url.PathUnescape(segs[0])
		if err != nil {
			return bad("master name: %v", err)
		}
		e.master = name
		segs = segs[1:]
	}
	switch {
	case len(segs) > 1:
		return bad("unexpected path %q", "/"+path)
	case len(segs) == 1 && segs[0] != "":
		db, err := strconv.Atoi(segs[0])
		if err != nil || db < 0 {
			return bad("database %q is not a number", segs[0])
		}
		e.db = db
	}

	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for k, v := range q {
		switch {
		case sentinel && k == "sentinel_user":
			e.sentinelUser = v[len(v)-1]
		case sentinel && k == "sentinel_password":
			e.sentinelPassword = v[len(v)-1]
		default:
			return bad("unknown parameter %q", k)
		}
	}
	return e, nil
}

// hostPort validates h and adds the default port when it has none.
func hostPort(h, defaultPort string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: "host" or "[v6]".
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), defaultPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
			return "", fmt.Errorf("host %q: %v", h, err)
		}
	}
	if host == "" {
		return "", fmt.Errorf("host %q: empty host name", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return "", fmt.Errorf("host %q: bad port %q", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

// redact hides the password of a URL's userinfo and the sentinel_password
// parameter, so the URL can be logged.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	beforeQuery, query, hasQuery := strings.Cut(rest, "?")
	authority, path, hasPath := strings.Cut(beforeQuery, "/")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		if user, _, hasPass := strings.Cut(authority[:i], ":"); hasPass {
			authority = user + ":xxxxx" + authority[i:]
		}
	}
	out := authority
	if ok {
		out = scheme + "://" + authority
	}
	if hasPath {
		out += "/" + path
	}
	if hasQuery {
		params := strings.Split(query, "&")
		for i, p := range params {
			if k, _, _ := strings.Cut(p, "="); k == "sentinel_password" {
				params[i] = k + "=xxxxx"
			}
		}
		out += "?" + strings.Join(params, "&")
	}
	return out
}
