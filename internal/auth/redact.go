package auth

import (
	"net/url"
	"strings"
)

// Redacted replaces secret query values in logged URLs.
const Redacted = "REDACTED"

// RedactQuery returns rawURL (a full URL or a request URI such as
// "/v1/ws?ticket=...") with the values of the query parameters token and
// ticket (names compared case-insensitively, after percent-decoding)
// replaced by REDACTED. Both "&" and ";" count as separators, so that a
// value cannot hide from redaction behind a separator some other parser
// honours. Everything else, parameter order included, is kept as it was.
func RedactQuery(rawURL string) string {
	q := strings.IndexByte(rawURL, '?')
	if q < 0 {
		return rawURL
	}
	query := rawURL[q+1:]
	frag := ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	if !hasSecretParam(query) {
		return rawURL
	}
	var b strings.Builder
	b.Grow(len(rawURL))
	b.WriteString(rawURL[:q+1])
	for query != "" {
		part, sep, rest := cutParam(query)
		name, _, hasValue := strings.Cut(part, "=")
		if isSecretName(name) && hasValue {
			b.WriteString(name)
			b.WriteString("=" + Redacted)
		} else {
			b.WriteString(part)
		}
		b.WriteString(sep)
		query = rest
	}
	b.WriteString(frag)
	return b.String()
}

// cutParam splits off the first parameter of query and its separator.
func cutParam(query string) (part, sep, rest string) {
	if i := strings.IndexAny(query, "&;"); i >= 0 {
		return query[:i], query[i : i+1], query[i+1:]
	}
	return query, "", ""
}

func hasSecretParam(query string) bool {
	for query != "" {
		var part string
		part, _, query = cutParam(query)
		name, _, hasValue := strings.Cut(part, "=")
		if hasValue && isSecretName(name) {
			return true
		}
	}
	return false
}

func isSecretName(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	name = strings.TrimSpace(name)
	return strings.EqualFold(name, "token") || strings.EqualFold(name, "ticket")
}
