package nats

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in       string
		urls     []string
		replicas int
		bad      string // part of the error, "" when the URL is valid
	}{
		{in: "nats://127.0.0.1:4222", urls: []string{"nats://127.0.0.1:4222"}},
		{in: "nats://h", urls: []string{"nats://h:4222"}},
		{in: "nats://u:p%40ss@h:1", urls: []string{"nats://u:p%40ss@h:1"}},
		{in: "tls://h:4443", urls: []string{"tls://h:4443"}},
		{in: "nats://a:1, nats://b:2,nats://c:3?replicas=3", urls: []string{"nats://a:1", "nats://b:2", "nats://c:3"}, replicas: 3},
		{in: "redis://h:6379", bad: "scheme"},
		{in: "nats://", bad: "no host"},
		{in: "nats://h:99999", bad: "bad port"},
		{in: "nats://h/x", bad: "path"},
		{in: "nats://h?replicas=7", bad: "replicas"},
		{in: "nats://h?foo=1", bad: "unknown parameter"},
		{in: "nats://a,,nats://b", bad: "empty server"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseURL(tc.in)
			if tc.bad != "" {
				if !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("parseURL = %+v, %v; want ErrInvalidURL saying %q", got, err, tc.bad)
				}
				return
			}
			if err != nil || !slices.Equal(got.urls, tc.urls) || got.replicas != tc.replicas {
				t.Fatalf("parseURL = %+v, %v; want %v, replicas %d", got, err, tc.urls, tc.replicas)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Prefix: "a.b"},
		{Prefix: "has space"},
		{Replicas: 6},
		{Replicas: -1},
	} {
		if _, err := New(t.Context(), cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	if _, err := New(t.Context(), Config{URL: "http://x"}); !errors.Is(err, ErrInvalidURL) {
		t.Errorf("New with an http URL = %v, want ErrInvalidURL", err)
	}
}

func TestToken(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"", "_", "a.b", "a b", "*", ">", "chat:room/1", "ü"} {
		tok := token(s)
		if strings.ContainsAny(tok, ".*> ") || tok == "" {
			t.Errorf("token(%q) = %q is not one safe subject token", s, tok)
		}
		if prev, ok := seen[tok]; ok {
			t.Errorf("token(%q) = token(%q) = %q", s, prev, tok)
		}
		seen[tok] = s
	}
}
