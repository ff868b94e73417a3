package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The HS256 fast path verifies the common token, HS256 with the usual
// claims, without the general JWT parser: typed claims instead of a map,
// one pooled HMAC per verifier instead of a new one per token, and buffers
// reused. It only ever ACCEPTS: a token it cannot accept with certainty
// (another algorithm, a crit or odd header, a claim of an unexpected type,
// a bad signature, an expired token, ...) goes through the general path, which decides and says why. So the fast path never accepts
// a token the general path refuses, and the errors stay those of the
// general path.

// hsHeader is the part of a JOSE header the fast path reads.
type hsHeader struct {
	Alg  string          `json:"alg"`
	Crit json.RawMessage `json:"crit"`
	Kid  json.RawMessage `json:"kid"`
}

// hsClaims are the claims the fast path reads, typed. A claim of another
// type fails the decoding, and the token goes the general way. A missing
// sub or iss reads as "", which the checks treat as the general path treats
// a missing one.
type hsClaims struct {
	Sub      string         `json:"sub"`
	Exp      numericDate    `json:"exp"`
	Nbf      numericDate    `json:"nbf"`
	Iat      numericDate    `json:"iat"`
	Iss      string         `json:"iss"`
	Aud      rawClaim       `json:"aud"`
	Channels *ChannelsClaim `json:"channels"`
}

// numericDate is a number claim and whether it was there (null counts as
// absent, as in the general path). Unlike a *float64 it costs no
// allocation.
type numericDate struct {
	v   float64
	set bool
}

func (n *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err // a string or another type: the general path decides
	}
	n.v, n.set = v, true
	return nil
}

// rawClaim keeps a claim's JSON undecoded, as a slice of the decoded
// payload (no copy): it is read before verifyFast returns the scratch
// buffer that holds it.
type rawClaim []byte

func (r *rawClaim) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// commonHeaders are the encoded headers most issuers write for HS256
// (golang-jwt, jsonwebtoken, jose and Ferry's own Mint): a token with one
// of them needs no header decoding.
var commonHeaders = []string{
	base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)),
	base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256"}`)),
	base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"}`)),
}

// hsScratch is what one fast verification borrows from the verifier's
// pool.
type hsScratch struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

// hsFast holds the fast path's state of one Verifier.
type hsFast struct {
	pool   sync.Pool // *hsScratch
	leeway time.Duration
	clock  func() time.Time
}

func newHSFast(secret []byte, leeway time.Duration, clock func() time.Time) *hsFast {
	key := append([]byte(nil), secret...)
	f := &hsFast{leeway: leeway, clock: clock}
	f.pool.New = func() any {
		return &hsScratch{mac: hmac.New(sha256.New, key), buf: make([]byte, 0, 1024), sum: make([]byte, 0, sha256.Size)}
	}
	return f
}

// verify returns the token's claims when the fast path can accept it, and
// false when the general path must decide.
func (v *Verifier) verifyFast(token string) (*Claims, bool) {
	f := v.fast
	h64, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil, false
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(s64, '.') >= 0 {
		return nil, false
	}
	sc := f.pool.Get().(*hsScratch)
	defer f.pool.Put(sc)

	// The signature first: nothing of an unsigned token is decoded.
	// (The token's bytes are copied into the scratch buffer: converting
	// the string for the hash's Write would allocate.)
	sc.buf = append(sc.buf[:0], token...)
	signed, sig64 := sc.buf[:len(h64)+1+len(p64)], sc.buf[len(h64)+1+len(p64)+1:]
	sc.mac.Reset()
	sc.mac.Write(signed)
	sc.sum = sc.mac.Sum(sc.sum[:0])
	var sig [sha256.Size]byte
	if base64.RawURLEncoding.DecodedLen(len(sig64)) != len(sig) {
		return nil, false
	}
	if n, err := base64.RawURLEncoding.Decode(sig[:], sig64); err != nil || n != len(sig) || !hmac.Equal(sig[:], sc.sum) {
		return nil, false
	}

	if !slices.Contains(commonHeaders, h64) {
		var hd hsHeader
		if !decodeSegment(sc, h64, &hd) || hd.Alg != AlgHS256 || hd.Crit != nil {
			return nil, false
		}
		if hd.Kid != nil && (len(hd.Kid) == 0 || hd.Kid[0] != '"') {
			return nil, false // a kid that is not a string: the general path refuses it
		}
	}
	var cl hsClaims
	if !decodeSegment(sc, p64, &cl) {
		return nil, false
	}
	c := &Claims{Subject: cl.Sub, Channels: cl.Channels}
	if c.Subject == "" && !v.allowNoSubject {
		return nil, false
	}
	if v.audience != "" {
		var aud jwt.ClaimStrings
		if cl.Aud == nil || json.Unmarshal(cl.Aud, &aud) != nil || !slices.Contains(aud, v.audience) {
			return nil, false
		}
	}
	if v.issuer != "" && cl.Iss != v.issuer {
		return nil, false
	}
	// The times as the general path reads them (whole seconds, rounded
	// down) and its comparisons: exp is past from exp+leeway on; nbf and
	// iat hold from their time less leeway on.
	now := f.clock()
	var good bool
	if c.ExpiresAt, good = secondsOf(cl.Exp); !good || (cl.Exp.set && !now.Before(c.ExpiresAt.Add(f.leeway))) {
		return nil, false
	}
	if c.NotBefore, good = secondsOf(cl.Nbf); !good || (cl.Nbf.set && now.Before(c.NotBefore.Add(-f.leeway))) {
		return nil, false
	}
	if c.IssuedAt, good = secondsOf(cl.Iat); !good || (cl.Iat.set && now.Before(c.IssuedAt.Add(-f.leeway))) {
		return nil, false
	}
	return c, true
}

// decodeSegment decodes one base64url segment of the token into v, in the
// scratch buffer.
func decodeSegment(sc *hsScratch, seg string, v any) bool {
	// The segment is copied after the token in the buffer, and decoded
	// after that.
	start := len(sc.buf)
	sc.buf = append(sc.buf, seg...)
	n := base64.RawURLEncoding.DecodedLen(len(seg))
	sc.buf = slices.Grow(sc.buf, n)
	src, dst := sc.buf[start:], sc.buf[len(sc.buf):len(sc.buf)+n]
	m, err := base64.RawURLEncoding.Decode(dst, src)
	if err != nil {
		return false
	}
	return json.Unmarshal(dst[:m], v) == nil
}

// secondsOf turns a NumericDate claim into the time the general path
// reports for it: whole seconds, the fraction dropped. False for values
// whose rounding might differ (negative, NaN, or past any real date): the
// general path decides those.
func secondsOf(n numericDate) (time.Time, bool) {
	if !n.set {
		return time.Time{}, true
	}
	if n.v < 0 || n.v > 1<<40 || math.IsNaN(n.v) {
		return time.Time{}, false
	}
	return time.Unix(int64(n.v), 0), true
}
