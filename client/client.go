package client

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/ferry-io/ferry/protocol"
)

// Client is a connection to a Ferry node that reconnects on its own. Make
// one with Dial, or New and then Connect; end it with Close.
type Client struct {
	url          string
	cfg          Config
	wire         wireFormat // the codec's encoding, from cfg.Codec
	log          *slog.Logger
	clock        Clock
	rnd          *lockedRand
	httpClient   *http.Client
	ownTransport *http.Transport

	life      context.Context // ends with Close
	cancel    context.CancelFunc
	events    *eventQueue
	runWG     sync.WaitGroup // the run loop
	subWG     sync.WaitGroup // subscription delivery goroutines
	closeOnce sync.Once
	done      chan struct{} // closed on StateClosed

	cur       atomic.Pointer[conn] // the connection acks go to
	delivered atomic.Int64

	// mu guards everything below. Lock order: mu, then a conn's wmu (held
	// across the write so frames leave in the order they were decided).
	mu          sync.Mutex
	started     bool
	state       State
	stateCh     chan struct{} // closed and replaced on every state change
	closing     bool
	closeErr    error
	lastErr     error
	cn          *conn
	gen         uint64
	nextID      uint32
	maxFrame    int // the server's max_frame_bytes, from the last connected
	subs        map[string]*Subscription
	pending     map[*request]struct{}
	reqSeq      uint64
	token       string
	needToken   bool
	retried401  bool
	session     string
	resumeToken string
	noResume    bool
	stats       Stats
}

// defaultMaxFrame is the protocol's default max_frame_bytes, assumed until
// a server says otherwise.
const defaultMaxFrame = 64 << 10

// New returns a client for the node at url (a base URL such as
// http://host:8080 or ws://host:8080, or the full ws://host:8080/v1/ws) that
// is not connected yet: call Connect. Errors wrap ErrInvalidConfig.
func New(url string, cfg Config) (*Client, error) {
	wsURL, err := WebSocketURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	r := cfg.Rand
	if r == nil {
		r = newRand()
	}
	c := &Client{
		url:      wsURL,
		cfg:      cfg,
		wire:     wireFormatOf(cfg.Codec),
		log:      cfg.Logger,
		clock:    cfg.Clock,
		rnd:      &lockedRand{r: r},
		events:   newEventQueue(),
		done:     make(chan struct{}),
		stateCh:  make(chan struct{}),
		subs:     make(map[string]*Subscription),
		pending:  make(map[*request]struct{}),
		token:    cfg.Token,
		maxFrame: defaultMaxFrame,
	}
	c.httpClient = cfg.HTTPClient
	if c.httpClient == nil {
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			c.ownTransport = dt.Clone()
		} else {
			c.ownTransport = &http.Transport{Proxy: http.ProxyFromEnvironment}
		}
		c.httpClient = &http.Client{Transport: c.ownTransport}
	}
	c.life, c.cancel = context.WithCancel(context.Background())
	go c.events.run()
	return c, nil
}

// Dial is New followed by Connect; on failure the client is closed.
func Dial(ctx context.Context, url string, cfg Config) (*Client, error) {
	c, err := New(url, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Connect starts the client's connection loop, if it is not running yet,
// and waits until the client is connected. When ctx ends first it returns
// ctx's error (with the last connection error) and the client goes on
// trying in the background; when the client stops for good (a close code
// after which it must not reconnect, Backoff.MaxAttempts, Close) it returns
// that error, which wraps ErrClosed.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	if c.state == StateClosed || c.closing {
		err := closedError(c.closeErr)
		c.mu.Unlock()
		return err
	}
	if !c.started {
		c.started = true
		c.runWG.Add(1)
		go c.run()
	}
	c.mu.Unlock()
	return c.waitConnected(ctx)
}

func (c *Client) waitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		st, ch, cerr, last := c.state, c.stateCh, c.closeErr, c.lastErr
		c.mu.Unlock()
		switch st {
		case StateConnected:
			return nil
		case StateClosed:
			return closedError(cerr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("connect: %w (last error: %v)", ctx.Err(), last)
			}
			return fmt.Errorf("connect: %w", ctx.Err())
		}
	}
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Done is closed when the client reaches StateClosed.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client stopped: nil while it runs and after Close,
// else an error wrapping ErrClosed and the cause (a *CloseError, a
// *HandshakeError, ErrGaveUp...).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateClosed || c.closeErr == nil {
		return nil
	}
	return closedError(c.closeErr)
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	st := c.stats
	c.mu.Unlock()
	st.Delivered = int(c.delivered.Load())
	return st
}

// Close ends the client: it closes the connection with 1000 (normal) after
// sending nothing more, stops reconnecting, fails the calls in progress with
// ErrClosed, ends every subscription (closing their Messages channels) and
// waits for every goroutine of the client to return, callbacks included. It
// is safe to call more than once, but not from a callback of this client.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		cn := c.cn
		c.mu.Unlock()
		if cn != nil {
			cn.closeNormal()
		}
		c.cancel()
		c.runWG.Wait()
		c.shutdown(nil)
		c.subWG.Wait()
		<-c.events.exited
		if c.ownTransport != nil {
			c.ownTransport.CloseIdleConnections()
		}
	})
	return nil
}

// shutdown moves the client to StateClosed for cause (nil for Close): it
// fails the pending requests, ends the subscriptions and lets the event
// goroutine finish.
func (c *Client) shutdown(cause error) {
	c.mu.Lock()
	if c.state == StateClosed {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeErr = cause
	subs := c.subs
	c.subs = make(map[string]*Subscription)
	reqs := c.pending
	c.pending = make(map[*request]struct{})
	c.setStateLocked(StateChange{State: StateClosed, Err: cause})
	if cause != nil {
		c.log.Warn("ferry client closed", slog.Any("err", cause))
		c.reportErrorLocked(cause)
	}
	c.events.stop()
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	err := closedError(cause)
	for r := range reqs {
		r.finish(nil, err)
	}
	for _, s := range subs {
		s.end(err)
	}
}

// setStateLocked records a state change and queues its callback.
func (c *Client) setStateLocked(sc StateChange) {
	sc.Prev = c.state
	c.state = sc.State
	close(c.stateCh)
	c.stateCh = make(chan struct{})
	if fn := c.cfg.OnState; fn != nil {
		c.events.push(func() { fn(sc) })
	}
}

// reportErrorLocked queues err for OnError.
func (c *Client) reportErrorLocked(err error) {
	if fn := c.cfg.OnError; fn != nil {
		c.events.push(func() { fn(err) })
	}
}

func (c *Client) reportError(err error) {
	c.mu.Lock()
	c.reportErrorLocked(err)
	c.mu.Unlock()
}

// newIDLocked returns the next request id (never 0).
func (c *Client) newIDLocked() uint32 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// isClosing reports whether Close was called or the client stopped.
func (c *Client) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// protocolPosition converts a Position for a frame.
func protocolPosition(p Position) *protocol.StreamPosition {
	return &protocol.StreamPosition{Offset: p.Offset, Epoch: p.Epoch}
}
