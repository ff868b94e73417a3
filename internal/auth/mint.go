package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Mint makes an HS256 token for sub, signed with secret, carrying iat, exp
// (now + ttl; no exp when ttl is 0) and, when ch is not nil, the channels
// claim. It serves `ferry token` and tests; production issuers usually mint
// tokens in the application back end.
func Mint(secret []byte, sub string, ttl time.Duration, ch *ChannelsClaim) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("auth: mint: empty secret")
	}
	if ttl < 0 {
		return "", fmt.Errorf("auth: mint: negative ttl %v", ttl)
	}
	now := time.Now()
	claims := jwt.MapClaims{"iat": now.Unix()}
	if sub != "" {
		claims["sub"] = sub
	}
	if ttl > 0 {
		// Rounded up, so the token lives at least ttl.
		exp := now.Add(ttl)
		e := exp.Unix()
		if exp.Nanosecond() > 0 {
			e++
		}
		claims["exp"] = e
	}
	if ch != nil {
		m := map[string][]string{}
		if ch.Subscribe != nil {
			m["subscribe"] = ch.Subscribe
		}
		if ch.Publish != nil {
			m["publish"] = ch.Publish
		}
		claims["channels"] = m
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return s, nil
}
