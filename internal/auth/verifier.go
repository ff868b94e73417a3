package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenBytes bounds the length of a token Verify will look at; longer
// input is refused as malformed before any decoding.
const MaxTokenBytes = 16 << 10

// VerifierConfig says how tokens are verified. At least one of HMACSecret,
// PublicKeyPEM and JWKSURL must be set; several may be (a token's alg and
// kid pick the key).
//
// Tokens without exp are accepted: how long a token lives is the issuer's
// choice. Give tokens an exp (and refresh them over the connection) unless
// you mean them to be valid forever.
type VerifierConfig struct {
	// HMACSecret verifies HS256 tokens, and only those. Default none. Use
	// at least 32 random bytes.
	HMACSecret []byte
	// PublicKeyPEM is a PEM "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"
	// holding an RSA (>= 2048 bits, RS256), ECDSA P-256 (ES256) or Ed25519
	// (EdDSA) public key. The key type decides the one algorithm it
	// verifies. Default none.
	PublicKeyPEM []byte
	// JWKSURL is where a JSON Web Key Set is fetched from (only ever this
	// URL: jku/x5u/jwk headers in tokens are ignored). Keys are cached by
	// kid; an unknown kid triggers a refetch, at most once per 10 s.
	// Default none.
	JWKSURL string
	// JWKSRefresh is how old the cached set may get before a Verify
	// refreshes it (the cached keys keep working while it does, and if it
	// fails). Default 5m.
	JWKSRefresh time.Duration
	// JWKSTimeout bounds one JWKS fetch. Default 5s.
	JWKSTimeout time.Duration
	// HTTPClient fetches the JWKS. Default: a new http.Client with no
	// timeout of its own (JWKSTimeout applies).
	HTTPClient *http.Client
	// Audience, when set, must be one of the token's aud values.
	Audience string
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Leeway tolerates clock skew on exp, nbf and iat. Default 0 (the
	// server's configuration defaults it to 5s).
	Leeway time.Duration
	// AllowNoSubject accepts tokens without sub (anonymous users get an
	// empty Subject). Default false: such tokens are refused.
	AllowNoSubject bool
	// Clock tells the time. Default time.Now.
	Clock func() time.Time
	// Logger receives JWKS fetch failures. Default: discard.
	Logger *slog.Logger
}

// Verifier checks connection tokens. It is safe for concurrent use. A nil
// *Verifier refuses every token with ErrNoVerifier.
type Verifier struct {
	hmac           []byte
	pem            *publicKey
	jwks           *jwksCache
	audience       string
	issuer         string
	allowNoSubject bool
	parser         *jwt.Parser
	fast           *hsFast // nil without an HMAC secret
}

// NewVerifier checks cfg and builds a Verifier. It does not fetch the JWKS;
// call Refresh to load it eagerly (for instance at startup, to fail fast).
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if len(cfg.HMACSecret) == 0 && len(cfg.PublicKeyPEM) == 0 && cfg.JWKSURL == "" {
		return nil, ErrNoVerifier
	}
	if cfg.Leeway < 0 || cfg.JWKSRefresh < 0 || cfg.JWKSTimeout < 0 {
		return nil, errors.New("auth: negative leeway, JWKS refresh or JWKS timeout")
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{
		audience:       cfg.Audience,
		issuer:         cfg.Issuer,
		allowNoSubject: cfg.AllowNoSubject,
		parser: jwt.NewParser(
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(clock),
			jwt.WithIssuedAt(),
		),
	}
	if len(cfg.HMACSecret) > 0 {
		v.hmac = append([]byte(nil), cfg.HMACSecret...)
		v.fast = newHSFast(v.hmac, cfg.Leeway, clock)
	}
	if len(cfg.PublicKeyPEM) > 0 {
		k, err := parsePublicKeyPEM(cfg.PublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("auth: public key: %w", err)
		}
		v.pem = &k
	}
	if cfg.JWKSURL != "" {
		refresh := cfg.JWKSRefresh
		if refresh == 0 {
			refresh = 5 * time.Minute
		}
		timeout := cfg.JWKSTimeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		client := cfg.HTTPClient
		if client == nil {
			client = &http.Client{}
		}
		v.jwks = newJWKSCache(cfg.JWKSURL, client, refresh, timeout, clock, log)
	}
	return v, nil
}

// Refresh fetches the JWKS now (ignoring the refetch rate limit) and
// returns the fetch error, if any; cached keys survive a failed fetch. It
// does nothing without a JWKSURL.
func (v *Verifier) Refresh(ctx context.Context) error {
	if v == nil || v.jwks == nil {
		return nil
	}
	if err := v.jwks.Refresh(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	}
	return nil
}

// Claims is what a verified token says.
type Claims struct {
	// Subject is the user id (sub); empty only for anonymous tokens
	// (VerifierConfig.AllowNoSubject).
	Subject string
	// ExpiresAt, NotBefore and IssuedAt are exp, nbf and iat; zero when
	// the token does not carry them.
	ExpiresAt time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	// Channels is the optional channels claim; nil when absent.
	Channels *ChannelsClaim
}

// ChannelsClaim lists the channel patterns a token grants. A nil list means
// the token says nothing about that action (namespace rules apply); an
// empty, non-nil list grants nothing.
type ChannelsClaim struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// Verify checks token and returns its claims. Errors:
//   - ErrTokenExpired when exp has passed (and nothing else is wrong);
//   - a *TokenError (errors.Is ErrTokenInvalid) saying why it was refused;
//   - ErrKeysUnavailable when the JWKS could not be loaded;
//   - ErrNoVerifier on a nil Verifier.
//
// ctx bounds a JWKS fetch the call may need.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if v == nil {
		return nil, ErrNoVerifier
	}
	if token == "" {
		return nil, invalid(ReasonMalformed, "empty token", nil)
	}
	if len(token) > MaxTokenBytes {
		return nil, invalid(ReasonMalformed, fmt.Sprintf("longer than %d bytes", MaxTokenBytes), nil)
	}
	if v.fast != nil {
		if c, ok := v.verifyFast(token); ok {
			return c, nil
		}
	}
	var keyErr error // set by the key function: the precise reason
	keyFunc := func(t *jwt.Token) (any, error) {
		k, err := v.selectKey(ctx, t)
		if err != nil {
			keyErr = err
		}
		return k, err
	}
	mc := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, mc, keyFunc)
	if err != nil {
		err = classify(err, keyErr)
		if errors.Is(err, ErrTokenExpired) {
			// The signature holds; if the token is also wrong in a way a
			// fresh token of the same kind would be, say that instead, so
			// the client is not told to come back with a new one.
			if _, cerr := v.claims(mc); cerr != nil {
				return nil, cerr
			}
		}
		return nil, err
	}
	return v.claims(mc)
}

// selectKey picks the key for the token's alg and kid, refusing any alg
// that the configured keys do not allow.
func (v *Verifier) selectKey(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, invalid(ReasonMalformed, "crit header not supported", nil)
	}
	alg := t.Method.Alg()
	kidVal, hasKid := t.Header["kid"]
	kid, ok := kidVal.(string)
	if hasKid && !ok {
		return nil, invalid(ReasonMalformed, "kid is not a string", nil)
	}
	switch alg {
	case AlgHS256:
		if v.hmac == nil {
			return nil, invalid(ReasonAlg, "HS256 needs an HMAC secret, none is configured", nil)
		}
		return v.hmac, nil
	case AlgRS256, AlgES256, AlgEdDSA:
	default:
		return nil, invalid(ReasonAlg, fmt.Sprintf("algorithm %q not accepted", alg), nil)
	}
	var (
		jk    publicKey
		found bool
	)
	if v.jwks != nil {
		var err error
		jk, found, err = v.jwks.key(ctx, kid)
		if err != nil && v.pem == nil {
			return nil, err
		}
		if !found && kid == "" {
			jk, found = v.jwks.single()
		}
		if found && jk.alg == alg {
			return jk.key, nil
		}
	}
	if v.pem != nil && v.pem.alg == alg {
		return v.pem.key, nil
	}
	switch {
	case found:
		return nil, invalid(ReasonAlg, fmt.Sprintf("key %q verifies %s, token says %s", kid, jk.alg, alg), nil)
	case v.pem != nil:
		return nil, invalid(ReasonAlg, fmt.Sprintf("the configured public key verifies %s, token says %s", v.pem.alg, alg), nil)
	case v.jwks != nil:
		return nil, invalid(ReasonKey, fmt.Sprintf("no key with kid %q", kid), nil)
	default:
		return nil, invalid(ReasonAlg, fmt.Sprintf("%s needs a public key, none is configured", alg), nil)
	}
}

// classify maps a jwt error to this package's errors.
func classify(err, keyErr error) error {
	if keyErr != nil {
		return keyErr
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(ReasonMalformed, "", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Unknown or missing alg header (the key function never ran).
		return invalid(ReasonAlg, "", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid(ReasonSignature, "", err)
	case errors.Is(err, jwt.ErrInvalidType):
		return invalid(ReasonMalformed, "claim of the wrong type", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid(ReasonNotYetValid, "", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid(ReasonIssuedAt, "", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return fmt.Errorf("%w: %w", ErrTokenExpired, err)
	default:
		return invalid(ReasonMalformed, "", err)
	}
}

// claims checks aud, iss and sub and extracts Claims from a token whose
// signature and times were verified.
func (v *Verifier) claims(mc jwt.MapClaims) (*Claims, error) {
	if v.audience != "" {
		aud, err := mc.GetAudience()
		if err != nil {
			return nil, invalid(ReasonMalformed, "aud", err)
		}
		ok := false
		for _, a := range aud {
			if a == v.audience {
				ok = true
				break
			}
		}
		if !ok {
			return nil, invalid(ReasonAudience, fmt.Sprintf("want %q", v.audience), nil)
		}
	}
	if v.issuer != "" {
		iss, err := mc.GetIssuer()
		if err != nil {
			return nil, invalid(ReasonMalformed, "iss", err)
		}
		if iss != v.issuer {
			return nil, invalid(ReasonIssuer, fmt.Sprintf("want %q", v.issuer), nil)
		}
	}
	sub, err := mc.GetSubject()
	if err != nil {
		return nil, invalid(ReasonMalformed, "sub", err)
	}
	if sub == "" && !v.allowNoSubject {
		return nil, invalid(ReasonSubject, "missing sub", nil)
	}
	c := &Claims{Subject: sub}
	// The time claims were type-checked by the validator already.
	if d, _ := mc.GetExpirationTime(); d != nil {
		c.ExpiresAt = d.Time
	}
	if d, _ := mc.GetNotBefore(); d != nil {
		c.NotBefore = d.Time
	}
	if d, _ := mc.GetIssuedAt(); d != nil {
		c.IssuedAt = d.Time
	}
	ch, err := channelsClaim(mc["channels"])
	if err != nil {
		return nil, invalid(ReasonMalformed, "channels", err)
	}
	c.Channels = ch
	return c, nil
}

// channelsClaim reads {"subscribe": [...], "publish": [...]}.
func channelsClaim(v any) (*ChannelsClaim, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not an object")
	}
	var (
		c   ChannelsClaim
		err error
	)
	if c.Subscribe, err = patternList(m, "subscribe"); err != nil {
		return nil, err
	}
	if c.Publish, err = patternList(m, "publish"); err != nil {
		return nil, err
	}
	return &c, nil
}

func patternList(m map[string]any, key string) ([]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an array", key)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%s holds a non-string", key)
		}
		out = append(out, s)
	}
	return out, nil
}
