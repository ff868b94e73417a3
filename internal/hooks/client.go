package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ferry-io/ferry/internal/metrics"
)

// Config configures a Client. The zero value of every field means its
// documented default.
type Config struct {
	// Timeout bounds one hook call, from sending to the answer read.
	// Default 2s.
	Timeout time.Duration
	// MaxConcurrent bounds the calls in flight across every hook; a call
	// over the bound fails at once with ErrBusy. Default 256.
	MaxConcurrent int
	// BreakerFailures failures in a row open a URL's circuit breaker.
	// Default 5.
	BreakerFailures int
	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets a probe through. Default 5s.
	BreakerCooldown time.Duration
	// MaxAnswerBytes caps the answer body read; a larger answer is
	// ErrBadAnswer. Default 65536.
	MaxAnswerBytes int64
	// Secret, when set, signs every request as webhooks are signed
	// (Ferry-Signature), so that the back end can tell Ferry's calls from
	// others. Default none.
	Secret string
	// Metrics counts calls (nil: none counted).
	Metrics *metrics.Metrics
	// Transport sends the requests. Default: a transport that keeps up to
	// MaxConcurrent idle connections per back-end host and uses no proxy.
	Transport http.RoundTripper
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (c *Config) applyDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 256
	}
	if c.BreakerFailures <= 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerCooldown <= 0 {
		c.BreakerCooldown = 5 * time.Second
	}
	if c.MaxAnswerBytes <= 0 {
		c.MaxAnswerBytes = 64 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // the back end is the application's own: never through HTTP_PROXY
		t.MaxIdleConns = c.MaxConcurrent
		t.MaxIdleConnsPerHost = c.MaxConcurrent
		c.Transport = t
	}
}

// Client calls hooks. Its methods are safe for concurrent use.
type Client struct {
	cfg  Config
	http *http.Client
	sem  chan struct{} // one place per call in flight

	mu       sync.Mutex          // guards breakers
	breakers map[string]*Breaker // by URL; the URLs come from the configuration, so the map is bounded
}

// New returns a client configured by cfg.
func New(cfg Config) *Client {
	cfg.applyDefaults()
	return &Client{
		cfg:      cfg,
		http:     &http.Client{Transport: cfg.Transport, CheckRedirect: noRedirects},
		sem:      make(chan struct{}, cfg.MaxConcurrent),
		breakers: map[string]*Breaker{},
	}
}

// noRedirects keeps a hook's POST where it was configured to go.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Close releases the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) breaker(url string) *Breaker {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.breakers[url]
	if b == nil {
		b = NewBreaker(c.cfg.BreakerFailures, c.cfg.BreakerCooldown)
		c.breakers[url] = b
	}
	return b
}

// Call posts req as JSON to url and decodes the answer into ans. hook
// names the hook for metrics and the Ferry-Hook header. The error wraps
// one of ErrTimeout, ErrUnavailable, ErrBusy, ErrBreakerOpen and
// ErrBadAnswer.
func (c *Client) Call(ctx context.Context, hook, url string, req, ans any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s hook: encode request: %w", hook, err)
	}
	b := c.breaker(url)
	now := c.cfg.Now()
	if !b.Allow(now) {
		c.cfg.Metrics.HookRequest(hook, metrics.HookBreakerOpen, 0)
		return fail(ErrBreakerOpen, "%s hook: %d failures in a row, retrying after %v", hook, c.cfg.BreakerFailures, c.cfg.BreakerCooldown)
	}
	select {
	case c.sem <- struct{}{}:
	default:
		// Not sent: nothing is learned about the back end, but a probe
		// the breaker let through is given back.
		b.Cancel()
		c.cfg.Metrics.HookRequest(hook, metrics.HookBusy, 0)
		return fail(ErrBusy, "%s hook: %d calls in flight", hook, c.cfg.MaxConcurrent)
	}
	defer func() { <-c.sem }()

	start := time.Now()
	err = c.post(ctx, hook, url, body, ans)
	result := resultOf(err)
	// Only the back end's own trouble counts against its breaker: a bad
	// answer is a bug to fix, not a reason to stop calling.
	b.Done(!errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnavailable), c.cfg.Now())
	c.cfg.Metrics.HookRequest(hook, result, time.Since(start))
	return err
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return metrics.HookOK
	case errors.Is(err, ErrTimeout):
		return metrics.HookTimeout
	case errors.Is(err, ErrUnavailable):
		return metrics.HookUnavailable
	}
	return metrics.HookBadAnswer
}

func (c *Client) post(ctx context.Context, hook, url string, body []byte, ans any) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fail(ErrUnavailable, "%s hook: %v", hook, err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Ferry")
	r.Header.Set(HeaderHook, hook)
	if c.cfg.Secret != "" {
		r.Header.Set(HeaderSignature, Sign(c.cfg.Secret, c.cfg.Now(), body))
	}
	resp, err := c.http.Do(r)
	if err != nil {
		if ctx.Err() != nil {
			return fail(ErrTimeout, "%s hook: no answer within %v", hook, c.cfg.Timeout)
		}
		return fail(ErrUnavailable, "%s hook: %v", hook, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxAnswerBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return fail(ErrTimeout, "%s hook: answer not read within %v", hook, c.cfg.Timeout)
		}
		return fail(ErrUnavailable, "%s hook: read answer: %v", hook, err)
	}
	switch {
	case resp.StatusCode >= 500:
		return fail(ErrUnavailable, "%s hook: status %d", hook, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return fail(ErrBadAnswer, "%s hook: status %d (want 200)", hook, resp.StatusCode)
	case int64(len(raw)) > c.cfg.MaxAnswerBytes:
		return fail(ErrBadAnswer, "%s hook: answer larger than %d bytes", hook, c.cfg.MaxAnswerBytes)
	}
	if err := json.Unmarshal(raw, ans); err != nil {
		return fail(ErrBadAnswer, "%s hook: answer is not the expected JSON: %s", hook, clip(err.Error()))
	}
	return nil
}

// clip shortens a decoder's message, which may quote the answer.
func clip(s string) string {
	const max = 120
	if len(s) > max {
		return strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}
