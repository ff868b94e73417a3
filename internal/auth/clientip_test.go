package auth

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes([]string{"10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "no proxies", remote: "203.0.113.5:1234", want: "203.0.113.5"},
		{name: "spoofed XFF from an untrusted peer", remote: "203.0.113.5:1234", xff: []string{"1.2.3.4"}, trusted: trusted, want: "203.0.113.5"},
		{name: "spoofed XFF, no trusted list", remote: "10.0.0.1:1234", xff: []string{"1.2.3.4"}, want: "10.0.0.1"},
		{name: "one trusted proxy", remote: "10.0.0.1:1234", xff: []string{"198.51.100.7"}, trusted: trusted, want: "198.51.100.7"},
		{name: "client-written entries are skipped", remote: "10.0.0.1:1234", xff: []string{"1.2.3.4, 198.51.100.7"}, trusted: trusted, want: "198.51.100.7"},
		{name: "chain of trusted proxies", remote: "10.0.0.1:1234", xff: []string{"1.2.3.4, 198.51.100.7, 10.9.9.9, 192.0.2.1"}, trusted: trusted, want: "198.51.100.7"},
		{name: "several header lines", remote: "10.0.0.1:1234", xff: []string{"1.2.3.4", "198.51.100.7, 10.0.0.2"}, trusted: trusted, want: "198.51.100.7"},
		{name: "every hop trusted", remote: "10.0.0.1:1234", xff: []string{"10.0.0.3, 10.0.0.2"}, trusted: trusted, want: "10.0.0.3"},
		{name: "garbage right of the client", remote: "10.0.0.1:1234", xff: []string{"198.51.100.7, not-an-ip"}, trusted: trusted, want: "10.0.0.1"},
		{name: "garbage left of the client", remote: "10.0.0.1:1234", xff: []string{"junk, 198.51.100.7"}, trusted: trusted, want: "198.51.100.7"},
		{name: "trusted peer, no XFF", remote: "10.0.0.1:1234", trusted: trusted, want: "10.0.0.1"},
		{name: "empty entries", remote: "10.0.0.1:1234", xff: []string{" , 198.51.100.7 ,"}, trusted: trusted, want: "198.51.100.7"},
		{name: "XFF entries with ports", remote: "10.0.0.1:1234", xff: []string{"[2001:db8::2]:80, 198.51.100.7:5555"}, trusted: trusted, want: "198.51.100.7"},
		{name: "IPv6 client", remote: "[2001:db8:ffff::1]:443", xff: []string{"2001:db8:1::9"}, trusted: trusted, want: "2001:db8:1::9"},
		{name: "IPv6 peer", remote: "[2001:db8::1]:443", want: "2001:db8::1"},
		{name: "IPv4-mapped peer", remote: "[::ffff:10.0.0.1]:443", xff: []string{"198.51.100.7"}, trusted: trusted, want: "198.51.100.7"},
		{name: "IPv4-mapped client", remote: "10.0.0.1:1", xff: []string{"::ffff:198.51.100.7"}, trusted: trusted, want: "198.51.100.7"},
		{name: "zone dropped", remote: "[fe80::1%eth0]:1", want: "fe80::1"},
		{name: "unix socket", remote: "@", want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, tt.trusted).String(); got != tt.want {
				t.Errorf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"10.0.0.1/8", "192.0.2.7", "::1", "::ffff:10.1.0.0/112", " 2001:db8::/32 "})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "::1/128", "10.1.0.0/16", "2001:db8::/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"nope", "10.0.0.0/33", "1.2.3", ""} {
		if _, err := ParsePrefixes([]string{"10.0.0.0/8", bad}); err == nil {
			t.Errorf("ParsePrefixes accepted %q", bad)
		}
	}
}

func TestTruncateIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"},
		{"fe80::1%eth0", "fe80::/48"},
	}
	for _, tt := range tests {
		if got := TruncateIP(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("TruncateIP(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := TruncateIP(netip.Addr{}); got != "" {
		t.Errorf("TruncateIP(zero) = %q, want empty", got)
	}
}
