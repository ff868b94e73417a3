package auth

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOriginPolicy(t *testing.T) {
	list := []string{"https://app.example.com", "http://localhost:3000", "https://*.example.org", "HTTPS://Caps.Example.NET:443", "shop.example.com"}
	tests := []struct {
		name    string
		allowed []string
		dev     bool
		origin  []string // Origin header values (nil: none)
		host    string   // request Host; default ferry.internal
		fetch   string   // Sec-Fetch-Site
		want    bool
	}{
		{name: "exact", allowed: list, origin: []string{"https://app.example.com"}, want: true},
		{name: "exact, other case", allowed: list, origin: []string{"HTTPS://APP.Example.COM"}, want: true},
		{name: "exact, explicit default port", allowed: list, origin: []string{"https://app.example.com:443"}, want: true},
		{name: "entry with explicit default port", allowed: list, origin: []string{"https://caps.example.net"}, want: true},
		{name: "exact, other port", allowed: list, origin: []string{"https://app.example.com:8443"}, want: false},
		{name: "exact, other scheme", allowed: list, origin: []string{"http://app.example.com"}, want: false},
		{name: "exact with port", allowed: list, origin: []string{"http://localhost:3000"}, want: true},
		{name: "exact with port, other port", allowed: list, origin: []string{"http://localhost:3001"}, want: false},
		{name: "scheme-less entry means https", allowed: list, origin: []string{"https://shop.example.com"}, want: true},
		{name: "scheme-less entry is not http", allowed: list, origin: []string{"http://shop.example.com"}, want: false},
		{name: "suffix trick on exact", allowed: list, origin: []string{"https://app.example.com.evil.com"}, want: false},
		{name: "prefix trick on exact", allowed: list, origin: []string{"https://evilapp.example.com"}, want: false},

		{name: "wildcard, one label", allowed: list, origin: []string{"https://a.example.org"}, want: true},
		{name: "wildcard, two labels", allowed: list, origin: []string{"https://a.b.example.org"}, want: true},
		{name: "wildcard, upper case", allowed: list, origin: []string{"https://A.EXAMPLE.ORG"}, want: true},
		{name: "wildcard never the bare domain", allowed: list, origin: []string{"https://example.org"}, want: false},
		{name: "wildcard suffix trick", allowed: list, origin: []string{"https://evilexample.org"}, want: false},
		{name: "wildcard, domain as a label", allowed: list, origin: []string{"https://example.org.evil.com"}, want: false},
		{name: "wildcard, empty label", allowed: list, origin: []string{"https://.example.org"}, want: false},
		{name: "wildcard, double dot", allowed: list, origin: []string{"https://a..example.org"}, want: false},
		{name: "wildcard, other scheme", allowed: list, origin: []string{"http://a.example.org"}, want: false},
		{name: "wildcard, other port", allowed: list, origin: []string{"https://a.example.org:8443"}, want: false},
		{name: "bare domain listed too", allowed: []string{"https://*.example.org", "https://example.org"}, origin: []string{"https://example.org"}, want: true},

		{name: "star allows anything", allowed: []string{"*"}, origin: []string{"https://whatever.test"}, want: true},
		{name: "star allows null", allowed: []string{"*"}, origin: []string{"null"}, want: true},
		{name: "null refused", allowed: list, origin: []string{"null"}, want: false},
		{name: "null when listed", allowed: []string{"null"}, origin: []string{"null"}, want: true},
		{name: "empty list, foreign origin", allowed: nil, origin: []string{"https://app.example.com"}, want: false},

		{name: "dev localhost any port", dev: true, origin: []string{"http://localhost:5173"}, want: true},
		{name: "dev 127.0.0.1 https", dev: true, origin: []string{"https://127.0.0.1:1"}, want: true},
		{name: "dev [::1]", dev: true, origin: []string{"http://[::1]:8080"}, want: true},
		{name: "dev LOCALHOST", dev: true, origin: []string{"http://LOCALHOST"}, want: true},
		{name: "dev localhost suffix trick", dev: true, origin: []string{"http://localhost.evil.com"}, want: false},
		{name: "dev other scheme", dev: true, origin: []string{"ftp://localhost"}, want: false},
		{name: "no dev, localhost", dev: false, origin: []string{"http://localhost:5173"}, want: false},
		{name: "dev keeps the list", allowed: list, dev: true, origin: []string{"https://app.example.com"}, want: true},

		{name: "same host", origin: []string{"https://ferry.example.com"}, host: "ferry.example.com", want: true},
		{name: "same host and port", origin: []string{"http://ferry.example.com:8080"}, host: "FERRY.example.com:8080", want: true},
		{name: "same host, default port in Host", origin: []string{"https://ferry.example.com"}, host: "ferry.example.com:443", want: true},
		{name: "same host, other port", origin: []string{"http://ferry.example.com:8081"}, host: "ferry.example.com:8080", want: false},
		{name: "other host", origin: []string{"https://evil.com"}, host: "ferry.example.com", want: false},

		{name: "no Origin, not a browser", allowed: list, want: true},
		{name: "no Origin, cross-site browser request", allowed: list, fetch: "cross-site", want: false},
		{name: "no Origin, same-site browser request", allowed: list, fetch: "same-site", want: false},
		{name: "no Origin, same-origin browser request", allowed: list, fetch: "same-origin", want: true},
		{name: "no Origin, user typed the URL", allowed: list, fetch: "none", want: true},
		{name: "two Origin headers", allowed: list, origin: []string{"https://app.example.com", "https://evil.com"}, want: false},

		{name: "path", allowed: list, origin: []string{"https://app.example.com/x"}, want: false},
		{name: "user info", allowed: list, origin: []string{"https://evil.com@app.example.com"}, want: false},
		{name: "no scheme", allowed: list, origin: []string{"app.example.com"}, want: false},
		{name: "javascript", allowed: list, origin: []string{"javascript:alert(1)"}, want: false},
		{name: "bad port", allowed: list, origin: []string{"https://app.example.com:99999"}, want: false},
		{name: "empty port", allowed: list, origin: []string{"https://app.example.com:"}, want: false},
		{name: "backslash", allowed: list, origin: []string{`https://evil.com\app.example.com`}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewOriginPolicy(tt.allowed, tt.dev)
			if err != nil {
				t.Fatalf("NewOriginPolicy: %v", err)
			}
			r := httptest.NewRequest("GET", "/v1/ws", nil)
			r.Host = "ferry.internal"
			if tt.host != "" {
				r.Host = tt.host
			}
			for _, o := range tt.origin {
				r.Header.Add("Origin", o)
			}
			if tt.fetch != "" {
				r.Header.Set("Sec-Fetch-Site", tt.fetch)
				r.Header.Set("Sec-Fetch-Mode", "cors")
			}
			err = p.Check(r)
			if tt.want {
				if err != nil {
					t.Fatalf("Check: %v, want allowed", err)
				}
				return
			}
			if !errors.Is(err, ErrOriginForbidden) {
				t.Fatalf("Check = %v, want ErrOriginForbidden", err)
			}
			var oe *OriginError
			if !errors.As(err, &oe) || oe.Reason == "" {
				t.Fatalf("Check error %v is not an *OriginError with a reason", err)
			}
			if len(tt.origin) > 0 && (oe.Origin != tt.origin[0] || !strings.Contains(err.Error(), strconv.Quote(tt.origin[0]))) {
				t.Errorf("error %q does not name the origin %q", err, tt.origin[0])
			}
		})
	}
}

func TestOriginErrorClipsLongOrigins(t *testing.T) {
	p, err := NewOriginPolicy(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/v1/ws", nil)
	r.Header.Set("Origin", "https://"+strings.Repeat("a", 5000)+".com")
	err = p.Check(r)
	if !errors.Is(err, ErrOriginForbidden) || len(err.Error()) > 400 {
		t.Fatalf("Check = %v (len %d), want a short ErrOriginForbidden", err, len(err.Error()))
	}
}

func TestNewOriginPolicyRejects(t *testing.T) {
	for _, entry := range []string{
		"", "https://*.com", "*.com", "https://app.example.com/path", "https://a.*.example.com",
		"https://*.127.0.0.1", "https://app.example.com:0", "https://us er.example.com", "://x",
	} {
		if _, err := NewOriginPolicy([]string{"https://ok.example.com", entry}, false); err == nil {
			t.Errorf("NewOriginPolicy accepted %q", entry)
		}
	}
	for _, entry := range []string{"https://app.example.com/", " https://app.example.com ", "*.example.com", "http://[::1]:3000", "capacitor://localhost"} {
		if _, err := NewOriginPolicy([]string{entry}, false); err != nil {
			t.Errorf("NewOriginPolicy(%q): %v", entry, err)
		}
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", ClipLimit) // 2 bytes each
	got := Clip(long)
	if len(got) > ClipLimit+len("...") || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Errorf("Clip of %d bytes = %d bytes, valid UTF-8 %v", len(long), len(got), utf8.ValidString(got))
	}
	if Clip("short") != "short" {
		t.Error("Clip changed a short string")
	}
}

// Sec-Fetch-Mode alone (no Sec-Fetch-Site, no Origin) is what Node's fetch
// sends: not a browser, so not refused. A browser always sends
// Sec-Fetch-Site, and without Origin only same-origin or none passes.
func TestOriginSecFetchModeWithoutSite(t *testing.T) {
	p, err := NewOriginPolicy([]string{"https://app.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		site, mode string
		want       bool
	}{
		{"", "cors", true},     // Node's fetch (undici)
		{"", "navigate", true}, // any mode, as long as no site
		{"cross-site", "cors", false},
		{"same-site", "cors", false},
		{"cross-site", "", false},
		{"same-origin", "cors", true},
		{"none", "navigate", true},
	} {
		r := httptest.NewRequest("POST", "/v1/sessions", nil)
		r.Host = "ferry.internal"
		if tt.site != "" {
			r.Header.Set("Sec-Fetch-Site", tt.site)
		}
		if tt.mode != "" {
			r.Header.Set("Sec-Fetch-Mode", tt.mode)
		}
		err := p.Check(r)
		if got := err == nil; got != tt.want {
			t.Errorf("Sec-Fetch-Site %q, Sec-Fetch-Mode %q: Check = %v, want allowed %v", tt.site, tt.mode, err, tt.want)
		}
	}
}
