package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// Algorithms this package accepts. The key decides which one: an HMAC
// secret only ever verifies HS256, an RSA key RS256, a P-256 key ES256 and
// an Ed25519 key EdDSA. A token whose alg does not fit the selected key is
// refused, which rules out alg "none" and algorithm confusion.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// MinRSABits is the smallest RSA modulus accepted for RS256 keys.
const MinRSABits = 2048

// publicKey is a verification key together with the one algorithm it may
// verify.
type publicKey struct {
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keyAlg checks a parsed public key and returns the algorithm it verifies.
func keyAlg(k any) (string, error) {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N == nil || k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("RSA key too short (%d bits, want at least %d)", bitLen(k.N), MinRSABits)
		}
		return AlgRS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return AlgES256, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", errors.New("Ed25519 key of wrong size")
		}
		return AlgEdDSA, nil
	default:
		return "", fmt.Errorf("unsupported key type %T", k)
	}
}

func bitLen(n *big.Int) int {
	if n == nil {
		return 0
	}
	return n.BitLen()
}

// parsePublicKeyPEM reads the first PEM block of data: a PKIX "PUBLIC KEY",
// a PKCS#1 "RSA PUBLIC KEY" or a "CERTIFICATE" (its public key is used).
// Private keys are refused: the server never needs them.
func parsePublicKeyPEM(data []byte) (publicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return publicKey{}, errors.New("no PEM block found")
	}
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			k = cert.PublicKey
		}
	default:
		return publicKey{}, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE (never a private key)", block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("PEM block %q: %w", block.Type, err)
	}
	alg, err := keyAlg(k)
	if err != nil {
		return publicKey{}, err
	}
	return publicKey{alg: alg, key: k}, nil
}

// jwk is one entry of a JSON Web Key Set (RFC 7517), with the members this
// package reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWK turns one JWK into a verification key. Keys meant for
// encryption (use != sig), of other types or curves, or whose alg member
// disagrees with their type, are errors (the caller skips them).
func parseJWK(j jwk) (publicKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return publicKey{}, fmt.Errorf("use %q is not sig", j.Use)
	}
	var k any
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N)
		if err != nil || len(n) == 0 {
			return publicKey{}, errors.New("RSA key: bad n")
		}
		e, err := b64(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return publicKey{}, errors.New("RSA key: bad e")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return publicKey{}, errors.New("RSA key: bad e")
		}
		k = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	case "EC":
		if j.Crv != "P-256" {
			return publicKey{}, fmt.Errorf("EC key: curve %q, want P-256", j.Crv)
		}
		x, errX := b64(j.X)
		y, errY := b64(j.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return publicKey{}, errors.New("EC key: bad x or y")
		}
		point := make([]byte, 0, 65)
		point = append(point, 4)
		point = append(point, x...)
		point = append(point, y...)
		// Validates that the point lies on the curve.
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return publicKey{}, fmt.Errorf("EC key: %w", err)
		}
		k = pk
	case "OKP":
		if j.Crv != "Ed25519" {
			return publicKey{}, fmt.Errorf("OKP key: curve %q, want Ed25519", j.Crv)
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return publicKey{}, errors.New("OKP key: bad x")
		}
		k = ed25519.PublicKey(x)
	default:
		return publicKey{}, fmt.Errorf("key type %q not supported", j.Kty)
	}
	alg, err := keyAlg(k)
	if err != nil {
		return publicKey{}, err
	}
	if j.Alg != "" && j.Alg != alg {
		return publicKey{}, fmt.Errorf("alg %q does not fit a %s key (%s)", j.Alg, j.Kty, alg)
	}
	return publicKey{alg: alg, key: k}, nil
}

// b64 decodes base64url without padding (tolerating padding, which some
// issuers add).
func b64(s string) ([]byte, error) {
	if n := len(s); n > 0 && s[n-1] == '=' {
		return base64.URLEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}
