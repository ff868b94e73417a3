package redis

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseURLs(t *testing.T) {
	tests := []struct {
		in   string
		want []endpoint
	}{
		{"redis://127.0.0.1:6380/2", []endpoint{{addrs: []string{"127.0.0.1:6380"}, db: 2}}},
		{"redis://cache", []endpoint{{addrs: []string{"cache:6379"}}}},
		{"redis://cache/", []endpoint{{addrs: []string{"cache:6379"}}}},
		{"redis://[::1]:7000/1", []endpoint{{addrs: []string{"[::1]:7000"}, db: 1}}},
		{"redis://[::1]", []endpoint{{addrs: []string{"[::1]:6379"}}}},
		{"REDIS://h:1", []endpoint{{addrs: []string{"h:1"}}}},
		{"rediss://u:p%40ss@h:6380/0", []endpoint{{tls: true, addrs: []string{"h:6380"}, user: "u", password: "p@ss"}}},
		{"redis://:secret@h", []endpoint{{addrs: []string{"h:6379"}, password: "secret"}}},
		{"redis://a:1,redis://b:2/3", []endpoint{
			{addrs: []string{"a:1"}},
			{addrs: []string{"b:2"}, db: 3},
		}},
		{"redis+sentinel://s1,s2:26380/mymaster", []endpoint{{addrs: []string{"s1:26379", "s2:26380"}, master: "mymaster"}}},
		{"redis+sentinel://u:p@s1:1,s2:2/m/4?sentinel_user=su&sentinel_password=sp", []endpoint{{
			addrs: []string{"s1:1", "s2:2"}, master: "m", db: 4, user: "u", password: "p", sentinelUser: "su", sentinelPassword: "sp",
		}}},
		{"rediss+sentinel://s1/m,redis://c:1", []endpoint{
			{tls: true, addrs: []string{"s1:26379"}, master: "m"},
			{addrs: []string{"c:1"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseURLs(tc.in)
			if err != nil {
				t.Fatalf("parseURLs: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d endpoints, want %d", len(got), len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				g.redacted = ""
				if !sameEndpoint(g, w) {
					t.Errorf("endpoint %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func sameEndpoint(a, b endpoint) bool {
	return a.tls == b.tls && slices.Equal(a.addrs, b.addrs) && a.master == b.master && a.db == b.db &&
		a.user == b.user && a.password == b.password && a.sentinelUser == b.sentinelUser && a.sentinelPassword == b.sentinelPassword
}

func TestParseURLsErrors(t *testing.T) {
	tests := []string{
		"",
		"cache:6379",
		"http://h",
		"redis://",
		"redis://h:notaport",
		"redis://h:0",
		"redis://h:70000",
		"redis://a,b",
		"redis://h/x",
		"redis://h/-1",
		"redis://h/1/2",
		"redis://h?db=1",
		"redis+sentinel://s1",
		"redis+sentinel://s1/",
		"redis+sentinel://s1/m/x",
		"redis+sentinel://s1/m?bogus=1",
		"redis://h:1,redis://h:1",
		"redis://u:p%zz@h",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			if _, err := parseURLs(in); !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("parseURLs(%q) = %v, want ErrInvalidURL", in, err)
			}
		})
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://u:secret@h:1/0", "redis://u:xxxxx@h:1/0"},
		{"redis://h:1/0", "redis://h:1/0"},
		{"redis://user@h", "redis://user@h"},
		{"redis+sentinel://:pw@s1,s2/m?sentinel_user=a&sentinel_password=pw2", "redis+sentinel://:xxxxx@s1,s2/m?sentinel_user=a&sentinel_password=xxxxx"},
	}
	for _, tc := range tests {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Errors never show a password either.
	_, err := parseURLs("redis://u:topsecret@h:bad")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error %v shows the password", err)
	}
}
