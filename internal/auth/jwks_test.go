package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksServer serves a key set that tests can swap, and counts fetches.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	keys   []map[string]any
	status int
}

func newJWKSServer(tb testing.TB, keys ...map[string]any) *jwksServer {
	tb.Helper()
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		status, body := s.status, map[string]any{"keys": s.keys}
		s.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "nope", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...map[string]any) {
	s.mu.Lock()
	s.status, s.keys = status, keys
	s.mu.Unlock()
}

func newJWKSVerifier(tb testing.TB, srv *httptest.Server, clock *fakeClock, mod func(*VerifierConfig)) *Verifier {
	tb.Helper()
	cfg := VerifierConfig{JWKSURL: srv.URL, HTTPClient: srv.Client(), Clock: clock.Now}
	if mod != nil {
		mod(&cfg)
	}
	return newTestVerifier(tb, cfg)
}

func TestJWKSAlgorithms(t *testing.T) {
	k := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	encKey := jwkOf(t, "enc", &k.rsa2.PublicKey)
	encKey["use"] = "enc"
	wrongAlg := jwkOf(t, "liar", k.ed2.Public())
	wrongAlg["alg"] = "RS256"
	srv := newJWKSServer(t,
		jwkOf(t, "rsa", &k.rsa.PublicKey),
		jwkOf(t, "ec", &k.ec.PublicKey),
		jwkOf(t, "ed", k.ed.Public()),
		jwkOf(t, "small", &small.PublicKey), // skipped: too short
		encKey,                              // skipped: not for signatures
		wrongAlg,                            // skipped: alg does not fit
	)
	v := newJWKSVerifier(t, srv.Server, newFakeClock(t0), nil)
	base := claimsAt("alice")
	tests := []struct {
		name       string
		token      string
		wantReason Reason
	}{
		{"RS256", sign(t, jwt.SigningMethodRS256, k.rsa, base, map[string]any{"kid": "rsa"}), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, k.ec, base, map[string]any{"kid": "ec"}), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, k.ed, base, map[string]any{"kid": "ed"}), ""},
		{"kid of another key type", sign(t, jwt.SigningMethodES256, k.ec, base, map[string]any{"kid": "rsa"}), ReasonAlg},
		{"right kid, wrong key", sign(t, jwt.SigningMethodRS256, k.rsa2, base, map[string]any{"kid": "rsa"}), ReasonSignature},
		{"skipped short key", sign(t, jwt.SigningMethodRS256, small, base, map[string]any{"kid": "small"}), ReasonKey},
		{"skipped encryption key", sign(t, jwt.SigningMethodRS256, k.rsa2, base, map[string]any{"kid": "enc"}), ReasonKey},
		{"skipped key with a lying alg", sign(t, jwt.SigningMethodEdDSA, k.ed2, base, map[string]any{"kid": "liar"}), ReasonKey},
		{"no kid, several keys", sign(t, jwt.SigningMethodRS256, k.rsa, base, nil), ReasonKey},
		{"HS256 without a secret", sign(t, jwt.SigningMethodHS256, []byte("whatever secret you like, really"), base, map[string]any{"kid": "rsa"}), ReasonAlg},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base, map[string]any{"kid": "rsa"}), ReasonAlg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), tt.token)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != "alice" {
					t.Errorf("Subject = %q", c.Subject)
				}
				return
			}
			if !errors.Is(err, ErrTokenInvalid) || reasonOf(err) != tt.wantReason {
				t.Fatalf("Verify error = %v, want reason %q", err, tt.wantReason)
			}
		})
	}
	if h := srv.hits.Load(); h != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (unknown kids within 10s must not refetch)", h)
	}
}

func TestJWKSSingleKeyWithoutKid(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwkOf(t, "only", k.ed.Public()))
	v := newJWKSVerifier(t, srv.Server, newFakeClock(t0), nil)
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, k.ed, claimsAt("a"), nil)); err != nil {
		t.Fatalf("token without kid against a one-key set: %v", err)
	}
}

func TestJWKSRotation(t *testing.T) {
	k := keys(t)
	clock := newFakeClock(t0)
	srv := newJWKSServer(t, jwkOf(t, "k1", &k.rsa.PublicKey))
	v := newJWKSVerifier(t, srv.Server, clock, nil)
	ctx := context.Background()
	tok1 := sign(t, jwt.SigningMethodRS256, k.rsa, claimsAt("alice"), map[string]any{"kid": "k1"})
	tok2 := sign(t, jwt.SigningMethodES256, k.ec, claimsAt("alice"), map[string]any{"kid": "k2"})

	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("k1: %v", err)
	}
	srv.set(http.StatusOK, jwkOf(t, "k2", &k.ec.PublicKey))

	// Within 10 s of the last fetch the unknown kid is refused without a
	// fetch, however many times it is tried.
	for range 20 {
		if _, err := v.Verify(ctx, tok2); reasonOf(err) != ReasonKey {
			t.Fatalf("k2 before the refetch window: %v, want reason kid", err)
		}
	}
	if h := srv.hits.Load(); h != 1 {
		t.Fatalf("hits = %d, want 1", h)
	}

	clock.Advance(jwksMinInterval)
	if _, err := v.Verify(ctx, tok2); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if h := srv.hits.Load(); h != 2 {
		t.Fatalf("hits = %d, want 2", h)
	}
	// k1 was dropped from the set: refused now (and no refetch, the last
	// one was just now).
	if _, err := v.Verify(ctx, tok1); reasonOf(err) != ReasonKey {
		t.Fatalf("k1 after rotation: %v, want reason kid", err)
	}
	if h := srv.hits.Load(); h != 2 {
		t.Fatalf("hits = %d, want 2", h)
	}
}

func TestJWKSUnknownKidFlood(t *testing.T) {
	k := keys(t)
	clock := newFakeClock(t0)
	srv := newJWKSServer(t, jwkOf(t, "k1", k.ed.Public()))
	v := newJWKSVerifier(t, srv.Server, clock, nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			tok := sign(t, jwt.SigningMethodEdDSA, k.ed2, claimsAt("x"), map[string]any{"kid": string(rune('a' + i%26))})
			if _, err := v.Verify(context.Background(), tok); reasonOf(err) != ReasonKey {
				t.Errorf("unknown kid: %v, want reason kid", err)
			}
		})
	}
	wg.Wait()
	if h := srv.hits.Load(); h != 1 {
		t.Fatalf("50 unknown kids caused %d fetches, want 1", h)
	}
	clock.Advance(jwksMinInterval - time.Second)
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed2, claimsAt("x"), map[string]any{"kid": "zz"})
	_, _ = v.Verify(context.Background(), tok)
	if h := srv.hits.Load(); h != 1 {
		t.Fatalf("fetch 9 s after the last: hits = %d, want 1", h)
	}
	clock.Advance(time.Second)
	_, _ = v.Verify(context.Background(), tok)
	if h := srv.hits.Load(); h != 2 {
		t.Fatalf("fetch 10 s after the last: hits = %d, want 2", h)
	}
}

func TestJWKSPeriodicRefreshKeepsKeysOnFailure(t *testing.T) {
	k := keys(t)
	clock := newFakeClock(t0)
	srv := newJWKSServer(t, jwkOf(t, "k1", &k.ec.PublicKey))
	var logs bytes.Buffer
	var logMu sync.Mutex
	v := newJWKSVerifier(t, srv.Server, clock, func(c *VerifierConfig) {
		c.JWKSRefresh = time.Minute
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	})
	ctx := context.Background()
	tok := sign(t, jwt.SigningMethodES256, k.ec, claimsAt("alice"), map[string]any{"kid": "k1"})
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if h := srv.hits.Load(); h != 1 {
		t.Fatalf("fresh cache refetched: hits = %d", h)
	}

	srv.set(http.StatusInternalServerError)
	clock.Advance(31 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("stale cache with a failing JWKS: %v (cached keys must keep working)", err)
	}
	if h := srv.hits.Load(); h != 2 {
		t.Fatalf("stale cache: hits = %d, want 2", h)
	}
	logMu.Lock()
	logged := logs.String()
	logMu.Unlock()
	if !bytes.Contains([]byte(logged), []byte("jwks fetch failed")) {
		t.Errorf("failed refresh not logged; log: %q", logged)
	}

	// Keys removed upstream go away at the next successful refresh.
	srv.set(http.StatusOK, jwkOf(t, "k2", k.ed.Public()))
	clock.Advance(jwksMinInterval)
	if _, err := v.Verify(ctx, tok); reasonOf(err) != ReasonKey {
		t.Fatalf("revoked key after refresh: %v, want reason kid", err)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestJWKSSlowServerTimesOut(t *testing.T) {
	k := keys(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	v := newTestVerifier(t, VerifierConfig{JWKSURL: srv.URL, HTTPClient: srv.Client(), JWKSTimeout: 50 * time.Millisecond})
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, claimsAt("a"), map[string]any{"kid": "k1"})
	_, err := v.Verify(context.Background(), tok)
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Verify against a hanging JWKS: %v, want ErrKeysUnavailable wrapping DeadlineExceeded", err)
	}
	if errors.Is(err, ErrTokenInvalid) {
		t.Errorf("an unreachable JWKS must not be blamed on the token: %v", err)
	}
}

func TestJWKSFailuresAndContext(t *testing.T) {
	k := keys(t)
	clock := newFakeClock(t0)
	srv := newJWKSServer(t, jwkOf(t, "k1", k.ed.Public()))
	v := newJWKSVerifier(t, srv.Server, clock, nil)
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, claimsAt("a"), map[string]any{"kid": "k1"})

	// A caller that already gave up does not use up the fetch budget.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled ctx: %v", err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("next caller: %v (the canceled fetch must not count)", err)
	}

	// A JWKS that never loaded: the error is the server's.
	srv2 := newJWKSServer(t)
	srv2.set(http.StatusNotFound)
	v2 := newJWKSVerifier(t, srv2.Server, clock, nil)
	if err := v2.Refresh(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Refresh against a 404: %v", err)
	}
	if _, err := v2.Verify(context.Background(), tok); !errors.Is(err, ErrKeysUnavailable) {
		t.Fatalf("Verify with no keys ever loaded: %v", err)
	}
	if h := srv2.hits.Load(); h != 1 {
		t.Errorf("hits = %d, want 1 (Verify right after a failed fetch must wait)", h)
	}
	srv2.set(http.StatusOK, jwkOf(t, "k1", k.ed.Public()))
	if err := v2.Refresh(context.Background()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if _, err := v2.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after Refresh: %v", err)
	}

	// An empty or broken set is an error, not an empty key ring.
	for name, body := range map[string]string{"empty": `{"keys":[]}`, "not json": `<html>`, "only bad keys": `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`} {
		bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
		v3 := newTestVerifier(t, VerifierConfig{JWKSURL: bad.URL, HTTPClient: bad.Client()})
		if err := v3.Refresh(context.Background()); !errors.Is(err, ErrKeysUnavailable) {
			t.Errorf("%s: Refresh = %v", name, err)
		}
		bad.Close()
	}
}

// A token can name a key URL (jku) or embed a key (jwk); neither is ever
// used.
func TestJWKSIgnoresTokenSuppliedKeys(t *testing.T) {
	k := keys(t)
	attacker := newJWKSServer(t, jwkOf(t, "evil", k.ed2.Public()))
	srv := newJWKSServer(t, jwkOf(t, "k1", k.ed.Public()))
	v := newJWKSVerifier(t, srv.Server, newFakeClock(t0), nil)
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed2, claimsAt("root"), map[string]any{
		"kid": "evil", "jku": attacker.URL, "x5u": attacker.URL,
		"jwk": jwkOf(t, "evil", k.ed2.Public()),
	})
	if _, err := v.Verify(context.Background(), tok); reasonOf(err) != ReasonKey {
		t.Fatalf("token with its own key: %v, want reason kid", err)
	}
	if h := attacker.hits.Load(); h != 0 {
		t.Fatalf("the URL in the token was fetched %d times", h)
	}
}

// With both a PEM key and a JWKS, a kid missing from the set falls back to
// the PEM key.
func TestJWKSWithPEMFallback(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, jwkOf(t, "k1", k.ed.Public()))
	v := newJWKSVerifier(t, srv.Server, newFakeClock(t0), func(c *VerifierConfig) {
		c.PublicKeyPEM = pemOf(t, &k.rsa.PublicKey)
	})
	ctx := context.Background()
	for name, tok := range map[string]string{
		"jwks key":              sign(t, jwt.SigningMethodEdDSA, k.ed, claimsAt("a"), map[string]any{"kid": "k1"}),
		"pem key with kid":      sign(t, jwt.SigningMethodRS256, k.rsa, claimsAt("a"), map[string]any{"kid": "pem"}),
		"pem key without a kid": sign(t, jwt.SigningMethodRS256, k.rsa, claimsAt("a"), nil),
	} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, k.ed2, claimsAt("a"), map[string]any{"kid": "k9"})); reasonOf(err) != ReasonAlg {
		t.Errorf("EdDSA with an unknown kid and an RSA PEM: %v, want reason alg", err)
	}
}
