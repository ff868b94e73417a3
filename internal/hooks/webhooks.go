package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/metrics"
)

// Event kinds of webhooks (the "event" field and the Ferry-Event header).
const (
	EventConnectionOpened = "connection.opened"
	EventConnectionClosed = "connection.closed"
	EventSubscribed       = "subscribed"
	EventUnsubscribed     = "unsubscribed"
	EventUploadDone       = "upload.done"
)

// Event is one webhook body. Fields that do not apply to the kind are
// left out.
type Event struct {
	Kind      string          `json:"event"`
	Time      int64           `json:"time"` // unix milliseconds, when it happened
	Node      string          `json:"node"`
	Conn      string          `json:"conn,omitempty"`
	User      string          `json:"user,omitempty"`
	Transport string          `json:"transport,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Code      int             `json:"code,omitempty"`   // connection.closed: the close code
	Reason    string          `json:"reason,omitempty"` // connection.closed
	Info      json.RawMessage `json:"info,omitempty"`   // subscribed: the subscribe hook's info
	Upload    *UploadEvent    `json:"upload,omitempty"` // upload.done
}

// UploadEvent describes a finished upload.
type UploadEvent struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	URL    string `json:"url,omitempty"`
}

// WebhookConfig configures Webhooks. The zero value of every field but URL
// means its documented default.
type WebhookConfig struct {
	// URL receives every event (required).
	URL string
	// Secret keys the HMAC-SHA256 signature (Ferry-Signature). Default
	// none: events go unsigned (the configuration check refuses that
	// outside --dev).
	Secret string
	// Queue bounds the events waiting to be sent or retried; an event
	// that finds it full is dropped (reason queue_full). Default 1024.
	Queue int
	// Attempts is how many times an event is sent before it is dropped
	// (reason gave_up). Default 5.
	Attempts int
	// Backoff is the wait before the first retry; it doubles per retry,
	// up to 30s. Default 500ms.
	Backoff time.Duration
	// Timeout bounds one attempt. Default 5s.
	Timeout time.Duration
	// Senders is how many attempts may be in flight at once. Default 4.
	Senders int
	// Node names this node in every event.
	Node string
	// Metrics counts attempts and drops (nil: none counted).
	Metrics *metrics.Metrics
	// Logger logs drops (nil: slog.Default()).
	Logger *slog.Logger
	// Transport sends the requests (nil: a clone of http.DefaultTransport
	// without a proxy).
	Transport http.RoundTripper
	// Go starts a tracked goroutine (nil: the go statement).
	Go func(func())
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Webhooks sends events to the back end, fire and forget: Send never
// blocks; a fixed pool of senders posts them, retrying a 5xx or a
// connection error with backoff. Safe for concurrent use.
type Webhooks struct {
	cfg     WebhookConfig
	http    *http.Client
	queue   chan *pendingEvent // capacity cfg.Queue; never more than that many pending (see pending)
	pending atomic.Int64       // events queued or waiting for a retry
	done    chan struct{}      // closed by Close
	once    sync.Once
	wg      sync.WaitGroup // the senders
}

type pendingEvent struct {
	kind    string
	body    []byte
	attempt int
}

// NewWebhooks starts the senders of cfg.
func NewWebhooks(cfg WebhookConfig) *Webhooks {
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Senders <= 0 {
		cfg.Senders = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // as for hooks: the back end is the application's own
		cfg.Transport = t
	}
	if cfg.Go == nil {
		cfg.Go = func(f func()) { go f() }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Webhooks{
		cfg:   cfg,
		http:  &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout, CheckRedirect: noRedirects},
		queue: make(chan *pendingEvent, cfg.Queue),
		done:  make(chan struct{}),
	}
	for range cfg.Senders {
		w.wg.Add(1)
		cfg.Go(func() {
			defer w.wg.Done()
			w.sendLoop()
		})
	}
	return w
}

// Send queues ev (Time and Node are filled when zero). It never blocks: a
// full queue drops the event and counts it. A nil *Webhooks does nothing.
func (w *Webhooks) Send(ev Event) {
	if w == nil {
		return
	}
	if ev.Time == 0 {
		ev.Time = w.cfg.Now().UnixMilli()
	}
	if ev.Node == "" {
		ev.Node = w.cfg.Node
	}
	body, err := json.Marshal(ev)
	if err != nil {
		w.cfg.Logger.Warn("webhook: encode event", slog.String("event", ev.Kind), slog.Any("err", err))
		return
	}
	if w.pending.Add(1) > int64(w.cfg.Queue) {
		w.pending.Add(-1)
		w.drop(ev.Kind, metrics.WebhookQueueFull)
		return
	}
	select {
	case <-w.done:
		w.pending.Add(-1)
		w.drop(ev.Kind, metrics.WebhookShutdown)
	case w.queue <- &pendingEvent{kind: ev.Kind, body: body}: // never blocks: pending <= cap
	}
}

// UploadDone sends the upload.done event for a finished upload: the call
// the uploads part makes when a file is complete.
func (w *Webhooks) UploadDone(conn, user string, u UploadEvent) {
	w.Send(Event{Kind: EventUploadDone, Conn: conn, User: user, Upload: &u})
}

// Close stops the senders; events still queued or waiting for a retry are
// dropped and counted (reason shutdown). It waits for attempts in flight
// (each bounded by Timeout).
func (w *Webhooks) Close() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
	for {
		select {
		case ev := <-w.queue:
			w.pending.Add(-1)
			w.drop(ev.kind, metrics.WebhookShutdown)
		default:
			w.http.CloseIdleConnections()
			return
		}
	}
}

func (w *Webhooks) sendLoop() {
	for {
		select {
		case <-w.done:
			return
		case ev := <-w.queue:
			w.attempt(ev)
		}
	}
}

// attempt posts ev once and decides what follows: done, a retry later, or
// a drop.
func (w *Webhooks) attempt(ev *pendingEvent) {
	ev.attempt++
	start := time.Now()
	status, err := w.post(ev)
	result := metrics.HookOK
	switch {
	case err != nil:
		result = metrics.HookUnavailable
		if errorsIsTimeout(err) {
			result = metrics.HookTimeout
		}
	case status >= 500:
		result = metrics.HookUnavailable
	case status >= 300:
		result = metrics.HookBadAnswer
	}
	w.cfg.Metrics.HookRequest(metrics.HookWebhook, result, time.Since(start))
	switch {
	case result == metrics.HookOK:
		w.pending.Add(-1)
	case result == metrics.HookBadAnswer: // the back end said no: retrying will not change it
		w.pending.Add(-1)
		w.drop(ev.kind, metrics.WebhookRejected)
	case ev.attempt >= w.cfg.Attempts:
		w.pending.Add(-1)
		w.drop(ev.kind, metrics.WebhookGaveUp)
	default:
		w.retryLater(ev)
	}
}

// retryLater puts ev back in the queue after its backoff. ev still counts
// as pending while it waits, so the queue has room for it.
func (w *Webhooks) retryLater(ev *pendingEvent) {
	wait := w.cfg.Backoff << (ev.attempt - 1)
	if wait > 30*time.Second || wait <= 0 {
		wait = 30 * time.Second
	}
	t := time.NewTimer(wait)
	w.wg.Add(1)
	w.cfg.Go(func() {
		defer w.wg.Done()
		defer t.Stop()
		select {
		case <-w.done:
			w.pending.Add(-1)
			w.drop(ev.kind, metrics.WebhookShutdown)
		case <-t.C:
			w.queue <- ev // never blocks: pending <= cap
		}
	})
}

func (w *Webhooks) post(ev *pendingEvent) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(ev.body))
	if err != nil {
		return 0, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Ferry")
	r.Header.Set(HeaderHook, metrics.HookWebhook)
	r.Header.Set(HeaderEvent, ev.kind)
	if w.cfg.Secret != "" {
		r.Header.Set(HeaderSignature, Sign(w.cfg.Secret, w.cfg.Now(), ev.body))
	}
	resp, err := w.http.Do(r)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (w *Webhooks) drop(kind, reason string) {
	w.cfg.Metrics.WebhookDropped(reason)
	w.cfg.Logger.Warn("webhook dropped", slog.String("event", kind), slog.String("reason", reason))
}

func errorsIsTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
