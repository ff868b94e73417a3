package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func newTestVerifier(tb testing.TB, cfg VerifierConfig) *Verifier {
	tb.Helper()
	if cfg.Clock == nil {
		cfg.Clock = func() time.Time { return t0 }
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func TestVerify(t *testing.T) {
	k := keys(t)
	secret := []byte("0123456789abcdef0123456789abcdef")
	hmacCfg := VerifierConfig{HMACSecret: secret}
	rsaCfg := VerifierConfig{PublicKeyPEM: pemOf(t, &k.rsa.PublicKey)}
	ecCfg := VerifierConfig{PublicKeyPEM: pemOf(t, &k.ec.PublicKey)}
	edCfg := VerifierConfig{PublicKeyPEM: pemOf(t, k.ed.Public())}
	base := claimsAt("alice")

	noneToken := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base, nil)
	// The classic confusion attack: take the server's public key PEM and
	// use it as an HMAC secret.
	confused := sign(t, jwt.SigningMethodHS256, rsaCfg.PublicKeyPEM, base, nil)

	tests := []struct {
		name       string
		cfg        VerifierConfig
		token      string
		wantSub    string
		wantErr    error
		wantReason Reason
	}{
		{name: "HS256 valid", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, base, nil), wantSub: "alice"},
		{name: "RS256 valid", cfg: rsaCfg, token: sign(t, jwt.SigningMethodRS256, k.rsa, base, nil), wantSub: "alice"},
		{name: "ES256 valid", cfg: ecCfg, token: sign(t, jwt.SigningMethodES256, k.ec, base, nil), wantSub: "alice"},
		{name: "EdDSA valid", cfg: edCfg, token: sign(t, jwt.SigningMethodEdDSA, k.ed, base, nil), wantSub: "alice"},
		{name: "no exp is accepted", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", nil), nil), wantSub: "alice"},
		{name: "kid ignored without JWKS", cfg: rsaCfg, token: sign(t, jwt.SigningMethodRS256, k.rsa, base, map[string]any{"kid": "whatever"}), wantSub: "alice"},

		{name: "expired", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", t0.Add(-time.Minute).Unix()), nil), wantErr: ErrTokenExpired},
		{name: "expired within leeway", cfg: VerifierConfig{HMACSecret: secret, Leeway: 5 * time.Second},
			token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", t0.Add(-3*time.Second).Unix()), nil), wantSub: "alice"},
		{name: "expired beyond leeway", cfg: VerifierConfig{HMACSecret: secret, Leeway: 5 * time.Second},
			token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", t0.Add(-6*time.Second).Unix()), nil), wantErr: ErrTokenExpired},
		{name: "expired and wrong audience says audience", cfg: VerifierConfig{HMACSecret: secret, Audience: "ferry"},
			token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", t0.Add(-time.Minute).Unix(), "aud", "other"), nil), wantErr: ErrTokenInvalid, wantReason: ReasonAudience},
		{name: "expired with bad signature says signature", cfg: hmacCfg,
			token: sign(t, jwt.SigningMethodHS256, []byte("another secret of enough length!!"), with(base, "exp", t0.Add(-time.Minute).Unix()), nil), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "nbf in the future", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "nbf", t0.Add(time.Minute).Unix()), nil), wantErr: ErrTokenInvalid, wantReason: ReasonNotYetValid},
		{name: "nbf within leeway", cfg: VerifierConfig{HMACSecret: secret, Leeway: 5 * time.Second},
			token: sign(t, jwt.SigningMethodHS256, secret, with(base, "nbf", t0.Add(4*time.Second).Unix()), nil), wantSub: "alice"},
		{name: "iat in the future", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "iat", t0.Add(time.Hour).Unix()), nil), wantErr: ErrTokenInvalid, wantReason: ReasonIssuedAt},

		{name: "HS256 wrong secret", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, []byte("not the secret, not the secret!!"), base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "RS256 wrong key", cfg: rsaCfg, token: sign(t, jwt.SigningMethodRS256, k.rsa2, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "ES256 wrong key", cfg: ecCfg, token: sign(t, jwt.SigningMethodES256, k.ec2, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "EdDSA wrong key", cfg: edCfg, token: sign(t, jwt.SigningMethodEdDSA, k.ed2, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "tampered payload", cfg: hmacCfg, token: tamper(t, sign(t, jwt.SigningMethodHS256, secret, base, nil)), wantErr: ErrTokenInvalid, wantReason: ReasonSignature},

		{name: "alg none (HMAC verifier)", cfg: hmacCfg, token: noneToken, wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "alg none (RSA verifier)", cfg: rsaCfg, token: noneToken, wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "RS256 to HS256 confusion, PEM only", cfg: rsaCfg, token: confused, wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "RS256 to HS256 confusion, PEM and secret", cfg: VerifierConfig{HMACSecret: secret, PublicKeyPEM: rsaCfg.PublicKeyPEM}, token: confused, wantErr: ErrTokenInvalid, wantReason: ReasonSignature},
		{name: "ES256 token for an RSA key", cfg: rsaCfg, token: sign(t, jwt.SigningMethodES256, k.ec, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "RS256 token for an HMAC verifier", cfg: hmacCfg, token: sign(t, jwt.SigningMethodRS256, k.rsa, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "HS512 refused", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS512, secret, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "PS256 refused", cfg: rsaCfg, token: sign(t, jwt.SigningMethodPS256, k.rsa, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonAlg},
		{name: "unknown alg", cfg: hmacCfg, token: withHeader(t, sign(t, jwt.SigningMethodHS256, secret, base, nil), `{"alg":"XX999","typ":"JWT"}`), wantErr: ErrTokenInvalid, wantReason: ReasonAlg},

		{name: "garbage", cfg: hmacCfg, token: "not a token", wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "three garbage parts", cfg: hmacCfg, token: "a.b.c", wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "empty", cfg: hmacCfg, token: "", wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "too long", cfg: hmacCfg, token: strings.Repeat("a", MaxTokenBytes+1), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "crit header", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, base, map[string]any{"crit": []string{"exp2"}}), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "kid not a string", cfg: rsaCfg, token: sign(t, jwt.SigningMethodRS256, k.rsa, base, map[string]any{"kid": 7}), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "exp not a number", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "exp", "tomorrow"), nil), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},

		{name: "audience matches", cfg: VerifierConfig{HMACSecret: secret, Audience: "ferry"}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "aud", "ferry"), nil), wantSub: "alice"},
		{name: "audience in a list", cfg: VerifierConfig{HMACSecret: secret, Audience: "ferry"}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "aud", []string{"x", "ferry"}), nil), wantSub: "alice"},
		{name: "audience mismatch", cfg: VerifierConfig{HMACSecret: secret, Audience: "ferry"}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "aud", "other"), nil), wantErr: ErrTokenInvalid, wantReason: ReasonAudience},
		{name: "audience missing", cfg: VerifierConfig{HMACSecret: secret, Audience: "ferry"}, token: sign(t, jwt.SigningMethodHS256, secret, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonAudience},
		{name: "audience not checked when unset", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "aud", "other"), nil), wantSub: "alice"},
		{name: "issuer matches", cfg: VerifierConfig{HMACSecret: secret, Issuer: "https://id.example"}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "iss", "https://id.example"), nil), wantSub: "alice"},
		{name: "issuer mismatch", cfg: VerifierConfig{HMACSecret: secret, Issuer: "https://id.example"}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "iss", "https://evil.example"), nil), wantErr: ErrTokenInvalid, wantReason: ReasonIssuer},
		{name: "issuer missing", cfg: VerifierConfig{HMACSecret: secret, Issuer: "https://id.example"}, token: sign(t, jwt.SigningMethodHS256, secret, base, nil), wantErr: ErrTokenInvalid, wantReason: ReasonIssuer},

		{name: "missing sub", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "sub", nil), nil), wantErr: ErrTokenInvalid, wantReason: ReasonSubject},
		{name: "empty sub", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "sub", ""), nil), wantErr: ErrTokenInvalid, wantReason: ReasonSubject},
		{name: "missing sub allowed", cfg: VerifierConfig{HMACSecret: secret, AllowNoSubject: true}, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "sub", nil), nil), wantSub: ""},
		{name: "sub not a string", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "sub", 42), nil), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "channels not an object", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "channels", "room:*"), nil), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
		{name: "channels list of numbers", cfg: hmacCfg, token: sign(t, jwt.SigningMethodHS256, secret, with(base, "channels", map[string]any{"subscribe": []int{1}}), nil), wantErr: ErrTokenInvalid, wantReason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, tt.cfg)
			c, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject != tt.wantSub {
					t.Errorf("Subject = %q, want %q", c.Subject, tt.wantSub)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if c != nil {
				t.Errorf("claims returned with an error: %+v", c)
			}
			if got := reasonOf(err); got != tt.wantReason {
				t.Errorf("reason = %q, want %q (err %v)", got, tt.wantReason, err)
			}
			if tt.wantErr == ErrTokenExpired && errors.Is(err, ErrTokenInvalid) {
				t.Errorf("expired token also reported invalid: %v", err)
			}
			if strings.Contains(err.Error(), tt.token) && len(tt.token) > 10 {
				t.Errorf("error message holds the token: %v", err)
			}
		})
	}
}

// tamper flips the payload's subject without re-signing.
func tamper(tb testing.TB, token string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		tb.Fatalf("not a JWT: %q", token)
	}
	payload, err := jwt.NewParser().DecodeSegment(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	changed := strings.Replace(string(payload), `"alice"`, `"admin"`, 1)
	if changed == string(payload) {
		tb.Fatal("tamper: no subject to change")
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(changed))
	return strings.Join(parts, ".")
}

// withHeader replaces a token's header (the signature no longer matters:
// the alg checks come first).
func withHeader(tb testing.TB, token, header string) string {
	tb.Helper()
	parts := strings.Split(token, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(parts, ".")
}

func TestVerifyClaims(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := newTestVerifier(t, VerifierConfig{HMACSecret: secret})
	tok := sign(t, jwt.SigningMethodHS256, secret, with(claimsAt("bob"),
		"nbf", t0.Add(-time.Minute).Unix(),
		"channels", map[string]any{"subscribe": []string{"room:*", "user:{sub}"}},
		"role", "admin"), nil)
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.Equal(t0.Add(time.Hour)) || !c.IssuedAt.Equal(t0) || !c.NotBefore.Equal(t0.Add(-time.Minute)) {
		t.Errorf("times: exp %v iat %v nbf %v", c.ExpiresAt, c.IssuedAt, c.NotBefore)
	}
	if c.Channels == nil || len(c.Channels.Subscribe) != 2 || c.Channels.Publish != nil {
		t.Fatalf("Channels = %+v", c.Channels)
	}
	if ok, named := c.CanSubscribe("user:bob"); !ok || !named {
		t.Errorf("CanSubscribe(user:bob) = %v, %v", ok, named)
	}
	if ok, named := c.CanSubscribe("user:eve"); ok || !named {
		t.Errorf("CanSubscribe(user:eve) = %v, %v", ok, named)
	}
	if ok, named := c.CanPublish("room:1"); ok || named {
		t.Errorf("CanPublish without a publish list = %v, %v, want false, false", ok, named)
	}

	// No exp: zero ExpiresAt, no channels claim: nil Channels.
	tok = sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "bob"}, nil)
	if c, err = v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.IsZero() || c.Channels != nil {
		t.Errorf("ExpiresAt %v Channels %+v, want zero and nil", c.ExpiresAt, c.Channels)
	}
}

func TestMintRoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewVerifier(VerifierConfig{HMACSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ch := &ChannelsClaim{Subscribe: []string{"room:*"}, Publish: []string{}}
	tok, err := Mint(secret, "carol", time.Hour, ch)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "carol" {
		t.Errorf("Subject = %q", c.Subject)
	}
	if d := time.Until(c.ExpiresAt); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("ExpiresAt %v is not about an hour away", c.ExpiresAt)
	}
	if c.Channels == nil || len(c.Channels.Subscribe) != 1 || c.Channels.Publish == nil || len(c.Channels.Publish) != 0 {
		t.Errorf("Channels = %+v, want subscribe [room:*] and an empty, present publish list", c.Channels)
	}
	if ok, named := c.CanPublish("room:1"); ok || !named {
		t.Errorf("CanPublish with an empty list = %v, %v, want false, true", ok, named)
	}

	tok, err = Mint(secret, "carol", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if !c.ExpiresAt.IsZero() || c.Channels != nil {
		t.Errorf("ttl 0: ExpiresAt %v Channels %v, want none", c.ExpiresAt, c.Channels)
	}

	if _, err := Mint(nil, "x", time.Minute, nil); err == nil {
		t.Error("Mint with an empty secret succeeded")
	}
	if _, err := Mint(secret, "x", -time.Second, nil); err == nil {
		t.Error("Mint with a negative ttl succeeded")
	}
	other, _ := Mint([]byte("some other secret of sufficient size"), "x", time.Minute, nil)
	if _, err := v.Verify(context.Background(), other); reasonOf(err) != ReasonSignature {
		t.Errorf("token minted with another secret: %v", err)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	k := keys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     VerifierConfig
		wantErr error
	}{
		{"nothing configured", VerifierConfig{}, ErrNoVerifier},
		{"not PEM", VerifierConfig{PublicKeyPEM: []byte("hello")}, nil},
		{"private key PEM", VerifierConfig{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})}, nil},
		{"RSA 1024", VerifierConfig{PublicKeyPEM: pemOf(t, &small.PublicKey)}, nil},
		{"P-384", VerifierConfig{PublicKeyPEM: pemOf(t, &p384.PublicKey)}, nil},
		{"negative leeway", VerifierConfig{HMACSecret: []byte("s"), Leeway: -time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err == nil || v != nil {
				t.Fatalf("NewVerifier = %v, %v; want an error", v, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}

	var nilV *Verifier
	if _, err := nilV.Verify(context.Background(), "x.y.z"); !errors.Is(err, ErrNoVerifier) {
		t.Errorf("nil Verifier: %v, want ErrNoVerifier", err)
	}
}

func TestPEMForms(t *testing.T) {
	k := keys(t)
	tok := sign(t, jwt.SigningMethodRS256, k.rsa, claimsAt("alice"), nil)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: bigOne(), NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for name, p := range map[string][]byte{"PKCS1": pkcs1, "certificate": cert} {
		v := newTestVerifier(t, VerifierConfig{PublicKeyPEM: p})
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v := newTestVerifier(b, VerifierConfig{HMACSecret: secret, Audience: "ferry"})
	tok := sign(b, jwt.SigningMethodHS256, secret, with(claimsAt("alice"), "aud", "ferry",
		"channels", map[string]any{"subscribe": []string{"room:*"}}), nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
