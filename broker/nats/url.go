package nats

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// serverList is what a Config.URL names.
type serverList struct {
	// urls are the server URLs for the NATS client, credentials included.
	urls []string
	// replicas is the "replicas" query parameter, 0 when absent.
	replicas int
}

// parseURL checks Config.URL: one or more nats:// (or tls://) URLs
// separated by commas, each with a host and no path. The query parameter
// replicas=N (on any of them) sets the replication factor.
func parseURL(raw string) (serverList, error) {
	var out serverList
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return out, fmt.Errorf("%w: %q: empty server in the list", ErrInvalidURL, raw)
		}
		u, err := url.Parse(part)
		if err != nil {
			return out, fmt.Errorf("%w: %q: %v", ErrInvalidURL, part, err)
		}
		if u.Scheme != "nats" && u.Scheme != "tls" {
			return out, fmt.Errorf("%w: %q: scheme %q, want nats or tls", ErrInvalidURL, part, u.Scheme)
		}
		if u.Hostname() == "" {
			return out, fmt.Errorf("%w: %q: no host", ErrInvalidURL, part)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return out, fmt.Errorf("%w: %q: bad port %q", ErrInvalidURL, part, p)
			}
		}
		if u.Path != "" && u.Path != "/" {
			return out, fmt.Errorf("%w: %q: unexpected path %q", ErrInvalidURL, part, u.Path)
		}
		for k, v := range u.Query() {
			if k != "replicas" {
				return out, fmt.Errorf("%w: %q: unknown parameter %q (known: replicas)", ErrInvalidURL, part, k)
			}
			n, err := strconv.Atoi(v[len(v)-1])
			if err != nil || n < 1 || n > 5 {
				return out, fmt.Errorf("%w: %q: replicas %q: want 1 to 5", ErrInvalidURL, part, v[len(v)-1])
			}
			out.replicas = n
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "4222")
		}
		clean := url.URL{Scheme: u.Scheme, User: u.User, Host: host}
		out.urls = append(out.urls, clean.String())
	}
	return out, nil
}
