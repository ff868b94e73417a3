package auth

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestHS256FastPathAgrees: for tokens valid and invalid in every way the
// fast path looks at (times at and around their limits, fractional times,
// claims of the wrong type, headers it does not read), Verify with the fast
// path returns what the general path alone returns: the same claims, or an
// error of the same kind and text. The fast path must never accept a token
// the general path refuses.
func TestHS256FastPathAgrees(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("another-secret-0123456789abcdef!")
	now := t0.Unix()
	leeway := 5 * time.Second
	type tc struct {
		name   string
		claims jwt.MapClaims
		header map[string]any
		key    []byte
		edit   func(string) string
	}
	base := func(kv ...any) jwt.MapClaims { return with(claimsAt("alice"), kv...) }
	cases := []tc{
		{name: "plain", claims: base()},
		{name: "no exp", claims: base("exp", nil)},
		{name: "no iat", claims: base("iat", nil)},
		{name: "exp now", claims: base("exp", now)},
		{name: "exp within leeway", claims: base("exp", now-4)},
		{name: "exp at leeway", claims: base("exp", now-5)},
		{name: "exp past leeway", claims: base("exp", now-6)},
		{name: "exp fractional", claims: base("exp", float64(now-5)+0.9)},
		{name: "exp string", claims: base("exp", "99999999999")},
		{name: "exp null", claims: base("exp", nil, "x", 1)},
		{name: "exp negative", claims: base("exp", -1)},
		{name: "exp huge", claims: base("exp", 1e300)},
		{name: "nbf at leeway", claims: base("nbf", now+5)},
		{name: "nbf past leeway", claims: base("nbf", now+6)},
		{name: "nbf fractional", claims: base("nbf", float64(now+5)+0.5)},
		{name: "iat future", claims: base("iat", now+6)},
		{name: "iat at leeway", claims: base("iat", now+5)},
		{name: "iat bool", claims: base("iat", true)},
		{name: "no sub", claims: base("sub", nil)},
		{name: "empty sub", claims: base("sub", "")},
		{name: "sub number", claims: base("sub", 7)},
		{name: "aud string", claims: base("aud", "ferry")},
		{name: "aud list", claims: base("aud", []string{"x", "ferry"})},
		{name: "aud other", claims: base("aud", "other")},
		{name: "aud number", claims: base("aud", 3)},
		{name: "iss", claims: base("iss", "me")},
		{name: "iss other", claims: base("iss", "you")},
		{name: "iss number", claims: base("iss", 1)},
		{name: "channels", claims: base("channels", map[string]any{"subscribe": []string{"a:*"}, "publish": []string{}})},
		{name: "channels null lists", claims: base("channels", map[string]any{"subscribe": nil})},
		{name: "channels non-string", claims: base("channels", map[string]any{"subscribe": []any{1}})},
		{name: "channels string", claims: base("channels", "a")},
		{name: "kid string", claims: base(), header: map[string]any{"kid": "k1"}},
		{name: "kid number", claims: base(), header: map[string]any{"kid": 1}},
		{name: "crit", claims: base(), header: map[string]any{"crit": []string{"exp"}}},
		{name: "typ other", claims: base(), header: map[string]any{"typ": "at+jwt"}},
		{name: "wrong key", claims: base(), key: other},
		{name: "signature cut", claims: base(), edit: func(s string) string { return s[:len(s)-2] }},
		{name: "signature padded", claims: base(), edit: func(s string) string { return s + "=" }},
		{name: "four parts", claims: base(), edit: func(s string) string { return s + ".x" }},
		{name: "payload changed", claims: base(), edit: func(s string) string {
			p := strings.Split(s, ".")
			return p[0] + "." + p[1][:len(p[1])-1] + "A." + p[2]
		}},
	}
	configs := []VerifierConfig{
		{HMACSecret: secret, Leeway: leeway},
		{HMACSecret: secret, Leeway: leeway, Audience: "ferry", Issuer: "me"},
		{HMACSecret: secret, AllowNoSubject: true},
	}
	for ci, cfg := range configs {
		fast := newTestVerifier(t, cfg)
		slow := newTestVerifier(t, cfg)
		slow.fast = nil
		if fast.fast == nil {
			t.Fatal("no fast path with an HMAC secret")
		}
		if _, ok := fast.verifyFast(sign(t, jwt.SigningMethodHS256, secret, base("aud", "ferry", "iss", "me"), nil)); !ok {
			t.Fatalf("config %d: the fast path refuses a plain valid token", ci)
		}
		for _, c := range cases {
			key := secret
			if c.key != nil {
				key = c.key
			}
			tok := sign(t, jwt.SigningMethodHS256, key, c.claims, c.header)
			if c.edit != nil {
				tok = c.edit(tok)
			}
			got, gerr := fast.Verify(context.Background(), tok)
			want, werr := slow.Verify(context.Background(), tok)
			if (gerr == nil) != (werr == nil) || (gerr != nil && (gerr.Error() != werr.Error() || errors.Is(gerr, ErrTokenExpired) != errors.Is(werr, ErrTokenExpired))) {
				t.Errorf("config %d, %s: fast path says %v, general path %v", ci, c.name, gerr, werr)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config %d, %s: fast path claims %+v, general path %+v", ci, c.name, got, want)
			}
		}
	}
}

// BenchmarkVerifyHS256Minted is the token every connection of `ferry
// bench` carries (sub, iat, exp; ferry token's Mint), with the server's
// default leeway, through the fast path and through the general path
// alone.
func BenchmarkVerifyHS256Minted(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tok, err := Mint(secret, "bench-1234", time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"fast", "general"} {
		b.Run(path, func(b *testing.B) {
			v := newTestVerifier(b, VerifierConfig{HMACSecret: secret, Leeway: 5 * time.Second, Clock: time.Now})
			if path == "general" {
				v.fast = nil
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
