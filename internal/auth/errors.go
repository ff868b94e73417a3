package auth

import (
	"errors"
	"fmt"
)

var (
	// ErrTokenExpired: the token's exp lies in the past (beyond the leeway).
	// The server closes the connection with 4015 so that the client comes
	// back with a fresh token.
	ErrTokenExpired = errors.New("auth: token expired")
	// ErrTokenInvalid: the token cannot be accepted (bad signature, refused
	// algorithm, wrong audience or issuer, not yet valid, malformed, no
	// subject). Errors carrying it are *TokenError values saying why. The
	// server closes with 4001.
	ErrTokenInvalid = errors.New("auth: token invalid")
	// ErrNoVerifier: no way to verify tokens was configured (no HMAC
	// secret, public key or JWKS URL). Returned by NewVerifier, and by
	// Verify on a nil *Verifier.
	ErrNoVerifier = errors.New("auth: no token verifier configured")
	// ErrKeysUnavailable: the JWKS could not be fetched and no usable key
	// is cached, so the token could not be checked at all. This is the
	// server's problem, not the client's: answer 503, not 401.
	ErrKeysUnavailable = errors.New("auth: signing keys unavailable")
	// ErrOriginForbidden: the request's Origin is not allowed (HTTP 403).
	// Errors carrying it are *OriginError values naming the origin.
	ErrOriginForbidden = errors.New("auth: origin forbidden")
	// ErrTicketInvalid: the ticket is unknown, was already used, or expired
	// (HTTP 401).
	ErrTicketInvalid = errors.New("auth: ticket invalid")
)

// Reason says why a token was refused. The set is small and fixed, so it
// can label metrics and go into log lines and error frames.
type Reason string

// Reasons carried by *TokenError.
const (
	// ReasonMalformed: not three base64url parts, bad JSON, a claim of the
	// wrong type, an unsupported crit header, or a token that is too long.
	ReasonMalformed Reason = "malformed"
	// ReasonAlg: an algorithm this verifier does not accept (none, an
	// unknown one, or one that does not fit the configured key).
	ReasonAlg Reason = "alg"
	// ReasonKey: no configured key has the token's kid.
	ReasonKey Reason = "kid"
	// ReasonSignature: the signature does not verify.
	ReasonSignature Reason = "signature"
	// ReasonAudience: aud does not contain the configured audience.
	ReasonAudience Reason = "aud"
	// ReasonIssuer: iss differs from the configured issuer.
	ReasonIssuer Reason = "iss"
	// ReasonNotYetValid: nbf lies in the future (beyond the leeway).
	ReasonNotYetValid Reason = "nbf"
	// ReasonIssuedAt: iat lies in the future (beyond the leeway).
	ReasonIssuedAt Reason = "iat"
	// ReasonSubject: sub is missing or empty and anonymous tokens are not
	// allowed.
	ReasonSubject Reason = "sub"
)

// TokenError is a refused token: errors.Is(err, ErrTokenInvalid) holds, and
// Reason says which check failed.
type TokenError struct {
	Reason Reason
	// Detail is a short human-readable explanation (safe to log; it never
	// holds the token itself).
	Detail string
	// Err is the underlying error, if any (from the JWT library, a key
	// parser, ...).
	Err error
}

// Error says why the token was refused (never including the token).
func (e *TokenError) Error() string {
	msg := "auth: token invalid: " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrTokenInvalid and the underlying error.
func (e *TokenError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrTokenInvalid}
	}
	return []error{ErrTokenInvalid, e.Err}
}

func invalid(r Reason, detail string, err error) *TokenError {
	return &TokenError{Reason: r, Detail: detail, Err: err}
}

// OriginError is a refused Origin: errors.Is(err, ErrOriginForbidden) holds.
type OriginError struct {
	// Origin is the Origin header as received (cut to 200 bytes); empty
	// when the request had none.
	Origin string
	// Reason says why it was refused.
	Reason string
}

// Error names the refused origin and the reason.
func (e *OriginError) Error() string {
	if e.Origin == "" {
		return "auth: origin forbidden: " + e.Reason
	}
	return fmt.Sprintf("auth: origin %q forbidden: %s", e.Origin, e.Reason)
}

// Unwrap returns ErrOriginForbidden.
func (e *OriginError) Unwrap() error { return ErrOriginForbidden }
