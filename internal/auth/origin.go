package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OriginPolicy decides which Origin headers may open a connection. It is
// immutable and safe for concurrent use.
type OriginPolicy struct {
	any   bool
	dev   bool
	exact map[origin]struct{}
	wild  []origin // host holds the suffix, e.g. ".example.com"
}

// origin is a normalized web origin: lower-case scheme and host (IPv6
// without brackets), and the port as a number, the scheme's default filled
// in (0 when the scheme has none and none was given).
type origin struct {
	scheme string
	host   string
	port   int
}

// NewOriginPolicy builds a policy from allowed entries, each one of:
//
//   - an exact origin, "https://app.example.com" or "http://localhost:3000";
//     scheme and host compare case-insensitively and a default port equals
//     no port (https://a.example:443 == https://A.example);
//   - a wildcard, "https://*.example.com": one or more labels before
//     .example.com (a.example.com, a.b.example.com), never example.com
//     itself (list it too if wanted) and never evilexample.com;
//   - "*": any origin;
//   - "null", to admit the opaque origin of sandboxed frames and files
//     (discouraged).
//
// An entry without a scheme ("app.example.com", "*.example.com") means
// https. A trailing "/" is tolerated; any other path is an error.
//
// Whatever the list says, an origin whose host and port equal the request's
// Host header (same-host) is allowed, so that pages served by the node
// itself work; dev additionally allows http and https on localhost,
// 127.0.0.1 and [::1], any port.
func NewOriginPolicy(allowed []string, dev bool) (*OriginPolicy, error) {
	p := &OriginPolicy{dev: dev, exact: make(map[origin]struct{})}
	var errs []error
	for _, e := range allowed {
		entry := strings.TrimSpace(e)
		switch {
		case entry == "*":
			p.any = true
			continue
		case strings.EqualFold(entry, "null"):
			p.exact[origin{scheme: "null"}] = struct{}{}
			continue
		case entry == "":
			errs = append(errs, errors.New("empty allowed origin"))
			continue
		}
		if !strings.Contains(entry, "://") {
			entry = "https://" + entry
		}
		entry = strings.TrimSuffix(entry, "/")
		wild := false
		if i := strings.Index(entry, "://*."); i >= 0 {
			wild = true
			entry = entry[:i+3] + "w" + entry[i+4:] // parse a placeholder label
		}
		o, err := parseOrigin(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed origin %q: %w", e, err))
			continue
		}
		if wild {
			if _, err := netip.ParseAddr(o.host[2:]); err == nil {
				errs = append(errs, fmt.Errorf("allowed origin %q: a wildcard needs a domain name", e))
				continue
			}
			o.host = o.host[1:] // ".example.com"
			if strings.Count(o.host, ".") < 2 {
				errs = append(errs, fmt.Errorf("allowed origin %q: wildcard over a top-level domain", e))
				continue
			}
			p.wild = append(p.wild, o)
			continue
		}
		p.exact[o] = struct{}{}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return p, nil
}

// Check returns nil when r may proceed, or an *OriginError (errors.Is
// ErrOriginForbidden; the server answers 403).
//
// A request without Origin is allowed when it does not come from a browser
// context: clients such as the Go SDK or curl send no Sec-Fetch-* headers,
// and Node's fetch sends Sec-Fetch-Mode but no Sec-Fetch-Site. Browsers
// always send Sec-Fetch-Site; without Origin it is allowed only when it
// says "same-origin" (a same-origin GET such as EventSource carries no
// Origin) or "none" (the user typed the URL); "cross-site" or "same-site"
// without Origin is refused.
func (p *OriginPolicy) Check(r *http.Request) error {
	vals := r.Header.Values("Origin")
	if len(vals) == 0 {
		site := r.Header.Get("Sec-Fetch-Site")
		switch {
		case site == "":
			// Not a browser (Sec-Fetch-Mode alone is Node's fetch).
			return nil
		case site == "same-origin" || site == "none":
			return nil
		default:
			return &OriginError{Reason: fmt.Sprintf("browser request (Sec-Fetch-Site %q) without an Origin header", Clip(site))}
		}
	}
	raw := vals[0]
	if len(vals) > 1 {
		return &OriginError{Origin: Clip(raw), Reason: "more than one Origin header"}
	}
	if p.any {
		return nil
	}
	if raw == "null" {
		if _, ok := p.exact[origin{scheme: "null"}]; ok {
			return nil
		}
		return &OriginError{Origin: raw, Reason: "opaque origin (sandboxed frame or file) not allowed"}
	}
	o, err := parseOrigin(raw)
	if err != nil {
		return &OriginError{Origin: Clip(raw), Reason: "malformed: " + err.Error()}
	}
	if _, ok := p.exact[o]; ok {
		return nil
	}
	for _, w := range p.wild {
		if o.scheme == w.scheme && o.port == w.port && wildHost(o.host, w.host) {
			return nil
		}
	}
	if p.dev && (o.scheme == "http" || o.scheme == "https") &&
		(o.host == "localhost" || o.host == "127.0.0.1" || o.host == "::1") {
		return nil
	}
	if sameHost(o, r.Host) {
		return nil
	}
	return &OriginError{Origin: Clip(raw), Reason: "not in allowed_origins"}
}

// wildHost reports whether host is one or more DNS labels followed by
// suffix (".example.com").
func wildHost(host, suffix string) bool {
	if len(host) <= len(suffix) || !strings.HasSuffix(host, suffix) {
		return false
	}
	for _, label := range strings.Split(host[:len(host)-len(suffix)], ".") {
		if label == "" {
			return false
		}
	}
	return true
}

// sameHost reports whether o names the host (and port) the request was
// sent to. A Host without a port means the default port of o's scheme.
func sameHost(o origin, hostHeader string) bool {
	if hostHeader == "" {
		return false
	}
	h, err := parseOrigin(o.scheme + "://" + hostHeader)
	if err != nil {
		return false
	}
	return h == o
}

// parseOrigin parses scheme://host[:port] strictly: no user info, path,
// query or fragment.
func parseOrigin(s string) (origin, error) {
	i := strings.Index(s, "://")
	if i <= 0 {
		return origin{}, errors.New("want scheme://host[:port]")
	}
	scheme := strings.ToLower(s[:i])
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		if !(c >= 'a' && c <= 'z' || j > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return origin{}, errors.New("bad scheme")
		}
	}
	hp := s[i+3:]
	if hp == "" {
		return origin{}, errors.New("no host")
	}
	var host, port string
	if hp[0] == '[' {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return origin{}, errors.New("unclosed [")
		}
		host = hp[1:end]
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return origin{}, errors.New("bad IPv6 address")
		}
		host = a.String()
		rest := hp[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return origin{}, errors.New("junk after ]")
			}
			port = rest[1:]
			if port == "" {
				return origin{}, errors.New("empty port")
			}
		}
	} else {
		host = hp
		if c := strings.IndexByte(hp, ':'); c >= 0 {
			host, port = hp[:c], hp[c+1:]
			if port == "" {
				return origin{}, errors.New("empty port")
			}
		}
		if host == "" {
			return origin{}, errors.New("no host")
		}
		for j := 0; j < len(host); j++ {
			c := host[j]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
				return origin{}, fmt.Errorf("bad character %q in host", c)
			}
		}
		host = strings.ToLower(host)
	}
	o := origin{scheme: scheme, host: host}
	if port != "" {
		if len(port) > 5 {
			return origin{}, errors.New("bad port")
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
			return origin{}, errors.New("bad port")
		}
		o.port = n
	} else {
		switch scheme {
		case "http":
			o.port = 80
		case "https":
			o.port = 443
		}
	}
	return o, nil
}

// ClipLimit is how many bytes of a client-supplied string (an origin, the
// connect frame's client name) Clip keeps.
const ClipLimit = 200

// Clip cuts text a client chose to at most ClipLimit bytes (at a UTF-8
// boundary) plus "...", so that one connection cannot write kilobytes of
// its own text into every log line about it.
func Clip(s string) string {
	if len(s) <= ClipLimit {
		return s
	}
	cut := ClipLimit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
