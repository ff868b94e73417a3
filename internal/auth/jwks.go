package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

const (
	// jwksMinInterval is the least time between two fetch attempts after
	// the first one, whatever triggers them (unknown kid, stale cache,
	// failure), so that tokens with made-up kids cannot hammer the issuer.
	jwksMinInterval = 10 * time.Second
	// jwksMaxBytes bounds the JWKS document.
	jwksMaxBytes = 1 << 20
)

// jwksCache holds the keys of one JWKS URL, by kid.
//
// Fetches are lazy: a Verify that needs a missing kid, or finds the cache
// older than refresh, fetches in its own goroutine (so the package starts
// none). Only one fetch runs at a time (sem); callers that find the cache
// merely stale keep using it while another caller refreshes.
type jwksCache struct {
	url     string
	client  *http.Client
	refresh time.Duration
	timeout time.Duration
	clock   func() time.Time
	log     *slog.Logger

	sem chan struct{} // capacity 1: held by the fetching caller

	mu          sync.RWMutex
	keys        map[string]publicKey
	loaded      bool      // at least one successful fetch
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch attempt that finished (ok or not)
	attempts    uint64    // count of finished attempts
	lastErr     error     // error of the last attempt, nil when it succeeded
}

func newJWKSCache(url string, client *http.Client, refresh, timeout time.Duration, clock func() time.Time, log *slog.Logger) *jwksCache {
	return &jwksCache{
		url: url, client: client, refresh: refresh, timeout: timeout, clock: clock, log: log,
		sem: make(chan struct{}, 1),
	}
}

type jwksState struct {
	key      publicKey
	found    bool
	loaded   bool
	stale    bool
	mayFetch bool
	attempts uint64
	lastErr  error
}

func (c *jwksCache) state(kid string) jwksState {
	now := c.clock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.keys[kid]
	return jwksState{
		key:      k,
		found:    ok,
		loaded:   c.loaded,
		stale:    c.loaded && now.Sub(c.fetchedAt) >= c.refresh,
		mayFetch: c.attempts == 0 || now.Sub(c.attemptedAt) >= jwksMinInterval || now.Before(c.attemptedAt),
		attempts: c.attempts,
		lastErr:  c.lastErr,
	}
}

// key returns the key with kid. found is false when no key has that kid
// even after a fetch (or when a fetch is not allowed yet). An error means
// no keys could be loaded at all (wraps ErrKeysUnavailable).
func (c *jwksCache) key(ctx context.Context, kid string) (publicKey, bool, error) {
	st := c.state(kid)
	if st.found {
		if st.stale && st.mayFetch {
			// Refresh if nobody else is; keep serving the cached key.
			select {
			case c.sem <- struct{}{}:
				c.fetchLocked(ctx, st.attempts)
				<-c.sem
				if st2 := c.state(kid); st2.found {
					return st2.key, true, nil
				}
				return publicKey{}, false, nil
			default:
			}
		}
		return st.key, true, nil
	}
	if !st.mayFetch {
		if !st.loaded {
			return publicKey{}, false, unavailable(ctx, st.lastErr)
		}
		return publicKey{}, false, nil
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return publicKey{}, false, fmt.Errorf("%w: waiting for JWKS fetch: %w", ErrKeysUnavailable, ctx.Err())
	}
	c.fetchLocked(ctx, st.attempts)
	<-c.sem
	st = c.state(kid)
	if st.found {
		return st.key, true, nil
	}
	if !st.loaded {
		return publicKey{}, false, unavailable(ctx, st.lastErr)
	}
	return publicKey{}, false, nil
}

func unavailable(ctx context.Context, err error) error {
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		err = errors.New("no keys loaded yet")
	}
	return fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
}

// single returns the only key of the set, for tokens without a kid.
func (c *jwksCache) single() (publicKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.keys) != 1 {
		return publicKey{}, false
	}
	for _, k := range c.keys {
		return k, true
	}
	return publicKey{}, false
}

// Refresh fetches now, whatever the rate limit, and reports the outcome.
func (c *jwksCache) Refresh(ctx context.Context) error {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()
	c.mu.RLock()
	seen := c.attempts
	c.mu.RUnlock()
	c.fetchLocked(ctx, seen)
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lastErr
}

// fetchLocked fetches the JWKS unless another fetch finished since the
// caller looked (seen attempts). The caller holds sem.
func (c *jwksCache) fetchLocked(ctx context.Context, seen uint64) {
	c.mu.RLock()
	done := c.attempts != seen
	c.mu.RUnlock()
	if done {
		return
	}
	keys, err := c.fetch(ctx)
	if err != nil && ctx.Err() != nil {
		// The caller gave up (client went away): not the issuer's fault,
		// so this does not count as an attempt.
		return
	}
	now := c.clock()
	c.mu.Lock()
	c.attempts++
	c.attemptedAt = now
	c.lastErr = err
	if err == nil {
		c.keys = keys
		c.loaded = true
		c.fetchedAt = now
	}
	loaded := c.loaded
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("jwks fetch failed", slog.String("url", c.url), slog.Bool("keeping_cached_keys", loaded), slog.Any("error", err))
	} else {
		c.log.Debug("jwks fetched", slog.String("url", c.url), slog.Int("keys", len(keys)))
	}
}

func (c *jwksCache) fetch(ctx context.Context) (map[string]publicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", c.url, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("jwks %s: HTTP %d", c.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks %s: reading body: %w", c.url, err)
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("jwks %s: document larger than %d bytes", c.url, jwksMaxBytes)
	}
	return parseJWKS(body, c.log)
}

// parseJWKS reads a JWK Set. Unusable keys are skipped (and logged); a set
// with no usable key at all is an error, so that a broken document never
// replaces working keys.
func parseJWKS(body []byte, log *slog.Logger) (map[string]publicKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	keys := make(map[string]publicKey, len(doc.Keys))
	for i, j := range doc.Keys {
		k, err := parseJWK(j)
		if err != nil {
			log.Debug("jwks: skipping key", slog.Int("index", i), slog.String("kid", j.Kid), slog.Any("error", err))
			continue
		}
		if _, dup := keys[j.Kid]; dup {
			log.Warn("jwks: duplicate kid, keeping the first", slog.String("kid", j.Kid))
			continue
		}
		keys[j.Kid] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable signing key (RSA >= 2048 bits, EC P-256 or Ed25519)")
	}
	return keys, nil
}
