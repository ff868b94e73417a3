// Package server is the embeddable Ferry node: it wires the broker, the hub,
// sessions, transports, the server API and the metrics into one
// http.Handler.
//
//	srv, err := server.New(cfg)
//	...
//	err = srv.Run(ctx) // listens on cfg.Addr until ctx ends, then drains
//
// or mount srv.Handler() in your own http.Server and call Shutdown.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/broker/redis"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/ws"
	"github.com/ferry-io/ferry/protocol"
)

// Server is one Ferry node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	broker  broker.Broker
	hub     *hub.Hub
	reg     *session.Registry
	writers *session.Writers
	env     *session.Env
	metrics *metrics.Metrics

	verifier *auth.Verifier
	origins  *auth.OriginPolicy
	limiter  *auth.HandshakeLimiter
	tickets  *auth.TicketStore
	proxies  []netip.Prefix
	rules    map[string]session.Rules

	handler      http.Handler
	httpSessions sync.Map // session token -> *fallback.Transport
	sessionNets  sync.Map // session token -> networkKey it is bound to (session.bind_network)
	anyOrigin    bool     // allowed_origins has "*": CORS without credentials
	maxConns     int      // the node's connection cap in force (0 = none)
	adoptLocks   sync.Map // session token -> *sync.Mutex: one adoption at a time
	cert         atomic.Pointer[tls.Certificate]
	wsOnce       sync.Once
	wsOpts       *ws.Options
	reactor      *ws.Reactor // nil where epoll is missing: a reader goroutine per WebSocket
	started      time.Time
	draining     atomic.Bool

	wg       sync.WaitGroup // every long-lived goroutine, for Shutdown
	stop     chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	httpSrv *http.Server
}

// Options carries what cannot come from a config file.
type Options struct {
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Default: a new registry
	// served at /metrics.
	Registerer prometheus.Registerer
	// Broker replaces the broker named by Config.Broker (for embedding and
	// tests). The server closes it on Shutdown.
	Broker broker.Broker
}

// New builds a node from cfg (zero fields take their defaults) and starts
// its background work (broker delivery, the sweeper, the writers).
func New(cfg Config, opts ...Options) (*Server, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.NodeID == "" {
		cfg.NodeID = randomID(6)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With(slog.String("node", cfg.NodeID))
	s := &Server{cfg: cfg, log: log, started: time.Now(), stop: make(chan struct{})}

	var err error
	if s.proxies, err = auth.ParsePrefixes(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("config: trusted_proxies: %w", err)
	}
	if s.origins, err = auth.NewOriginPolicy(cfg.AllowedOrigins, cfg.Dev); err != nil {
		return nil, fmt.Errorf("config: allowed_origins: %w", err)
	}
	s.anyOrigin = slices.Contains(cfg.AllowedOrigins, "*")
	if s.verifier, err = newVerifier(cfg); err != nil {
		return nil, fmt.Errorf("config: token: %w", err)
	}
	s.limiter = auth.NewHandshakeLimiter(cfg.Handshake.Rate, cfg.Handshake.Burst, nil)
	s.maxConns = connectionCap(cfg.MaxConnections, log)
	s.rules = make(map[string]session.Rules, len(cfg.Namespaces))
	for name, ns := range cfg.Namespaces {
		s.rules[name] = rulesOf(ns)
	}
	s.metrics = metrics.New(o.Registerer)

	s.broker = o.Broker
	if s.broker == nil {
		if s.broker, err = openBroker(cfg, log); err != nil {
			return nil, err
		}
	}
	s.hub = hub.New(s.broker)
	s.reg = session.NewRegistry()
	s.writers = session.NewWritersWith(max(2, runtime.GOMAXPROCS(0)), session.Coalescing{
		WriteBudget: float64(cfg.Batch.WriteBudget * runtime.GOMAXPROCS(0)),
		MaxWindow:   cfg.Batch.MaxWindow,
	})
	if r, err := ws.NewReactor(0); err == nil {
		s.reactor = r
	} else {
		log.Info("websocket reactor unavailable: one reader goroutine per connection", slog.Any("err", err))
	}
	kv, _ := s.broker.(broker.KV)
	s.tickets = auth.NewTicketStore(kv, auth.TicketConfig{TTL: 30 * time.Second, NotFound: broker.ErrNotFound})
	s.env = s.newEnv(kv)
	s.metrics.SetQueueDepthFunc(func() float64 { return float64(s.reg.QueueDepth()) })

	if err := s.broker.Start(context.Background(), s); err != nil {
		s.writers.Close()
		s.closeReactor()
		_ = s.broker.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := s.ReloadTLS(); err != nil {
		s.writers.Close()
		s.closeReactor()
		_ = s.broker.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	s.handler = s.routes()
	s.goTracked(s.sweepLoop)
	return s, nil
}

func (s *Server) newEnv(kv broker.KV) *session.Env {
	cfg := s.cfg
	env := &session.Env{
		NodeID:   cfg.NodeID,
		Broker:   s.broker,
		KV:       kv,
		Hub:      s.hub,
		Verifier: s.verifier,
		RulesFor: s.rulesFor,
		Limits: session.Limits{
			MaxSubscriptions:  cfg.MaxSubscriptions,
			MaxFrameBytes:     cfg.MaxFrameBytes,
			MaxWindow:         uint32(cfg.Queue.MaxMessages),
			QueueMessages:     cfg.Queue.MaxMessages,
			QueueBytes:        cfg.Queue.MaxBytes,
			SlowConsumerGrace: cfg.SlowConsumer.Grace,
			BatchDelay:        cfg.Batch.Delay,
			PublishRate:       cfg.ClientPublish.Rate,
			PublishBurst:      cfg.ClientPublish.Burst,
			PublishCloseAfter: cfg.ClientPublish.CloseAfter,
			ConnectTimeout:    cfg.ConnectTimeout,
			HeartbeatInterval: cfg.Heartbeat.Interval,
			HeartbeatTimeout:  cfg.Heartbeat.Timeout,
			SessionTTL:        cfg.Session.TTL,
			IdempotencyWindow: cfg.Idempotency.Window,
			PerUser:           cfg.MaxConnectionsPerUser,
			Anonymous:         cfg.Auth.Anonymous,
		},
		Metrics:  s.metrics,
		Logger:   s.log,
		Registry: s.reg,
		Writers:  s.writers,
		Control:  s.broker.PublishControl,
		Go:       s.goTracked,
	}
	env.Presence, _ = s.broker.(broker.Presence)
	env.Users, _ = s.broker.(broker.Users)
	return env
}

func newVerifier(cfg Config) (*auth.Verifier, error) {
	vc := auth.VerifierConfig{
		HMACSecret: []byte(cfg.Token.HMACSecret),
		JWKSURL:    cfg.Token.JWKSURL,
		Audience:   cfg.Token.Audience,
		Issuer:     cfg.Token.Issuer,
		Leeway:     cfg.Token.Leeway,
	}
	if cfg.Token.PublicKeyFile != "" {
		pem, err := os.ReadFile(cfg.Token.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("public_key_file: %w", err)
		}
		vc.PublicKeyPEM = pem
	}
	return auth.NewVerifier(vc)
}

func openBroker(cfg Config, log *slog.Logger) (broker.Broker, error) {
	if cfg.Broker == "" || cfg.Broker == "memory" {
		return memory.New(memory.Config{NodeID: cfg.NodeID, Logger: log}), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redis.New(ctx, redis.Config{URL: cfg.Broker, NodeID: cfg.NodeID, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", redactURL(cfg.Broker), err)
	}
	return b, nil
}

// rulesOf converts a namespace's config into session rules.
func rulesOf(ns Namespace) session.Rules {
	p, _ := protocol.ParsePriority(ns.Priority) // Validate checked it
	return session.Rules{
		HistorySize: ns.HistorySize,
		HistoryTTL:  ns.HistoryTTL,
		Presence:    ns.Presence,
		JoinLeave:   ns.JoinLeave,
		Publish:     ns.Publish,
		Subscribe:   ns.Subscribe,
		Priority:    p,
		Rate:        ns.Rate,
	}
}

// rulesFor returns the rules of ch's namespace. With Dev on, a namespace
// that is not configured gets DevNamespace.
func (s *Server) rulesFor(ch string) (session.Rules, bool) {
	if r, ok := s.rules[namespaceOf(ch)]; ok {
		return r, true
	}
	if s.cfg.Dev {
		return rulesOf(DevNamespace), true
	}
	return session.Rules{}, false
}

// Config returns the configuration in force (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Handler returns the node's HTTP handler (all endpoints).
func (s *Server) Handler() http.Handler { return s.handler }

// goTracked starts fn on a goroutine that Shutdown waits for.
func (s *Server) goTracked(fn func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
}

func (s *Server) sweepLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.reg.Sweep(ctx, now)
			cancel()
			s.limiter.Sweep(now)
		}
	}
}

// HandlePublication implements broker.Handler: encode once, fan out to the
// local subscribers.
func (s *Server) HandlePublication(p *broker.Publication) {
	o := &session.Outgoing{Msg: protocol.NewPreparedMessage(p.Channel, p.Offset, p.Epoch, p.Data, protocol.Priority(p.Priority), p.From)}
	if p.Conflate != "" {
		o.Conflate = p.Channel + "\x00" + p.Conflate
	}
	s.hub.Broadcast(p.Channel, o)
}

// HandleControl implements broker.Handler.
func (s *Server) HandleControl(c broker.Control) {
	switch c.Kind {
	case "evict", "takeover":
		if sess := s.reg.ByConn(c.Conn); sess != nil {
			sess.Close(c.Code, c.Reason)
		}
	case "disconnect":
		for _, sess := range s.reg.ByUser(c.User) {
			sess.Close(c.Code, c.Reason)
		}
	case "join", "leave":
		ev := &session.PresenceOut{Event: protocol.PresenceEvent{Channel: c.Channel, User: c.User, Conn: c.Conn, Leave: c.Kind == "leave"}}
		s.hub.Broadcast(c.Channel, ev)
	}
}

// Run listens on the configured address and serves until ctx ends, then
// shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := s.httpServer()
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLS.CertFile != "" {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		errc <- err
	}()
	s.log.Info("listening", slog.String("addr", ln.Addr().String()), slog.Bool("tls", s.cfg.TLS.CertFile != ""), slog.Bool("dev", s.cfg.Dev))
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.Timeout+2*time.Second)
	defer cancel()
	err := s.Shutdown(sctx)
	<-errc
	return err
}

// httpServer builds the net/http server with timeouts that keep slow
// clients from pinning resources.
func (s *Server) httpServer() *http.Server {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ConnectTimeout,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      0, // SSE and long-poll hold responses open; they set their own deadlines
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.cfg.TLS.CertFile != "" {
		hs.TLSConfig = s.tlsConfig()
	}
	s.mu.Lock()
	s.httpSrv = hs
	s.mu.Unlock()
	return hs
}

// Shutdown drains the node: it stops accepting connections, tells every
// client to reconnect elsewhere (4013), waits for them to go (up to
// shutdown.timeout or ctx), then stops the broker and every goroutine.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	s.log.Info("draining", slog.Int("connections", s.reg.Count()))
	s.mu.Lock()
	hs := s.httpSrv
	s.mu.Unlock()
	if hs != nil {
		// Stops the listener and idle keep-alive connections; hijacked
		// WebSockets are ours to close below.
		go func() { _ = hs.Shutdown(ctx) }()
	}
	s.reg.Each(func(sess *session.Session) {
		sess.Close(protocol.CloseDraining, "server shutting down: reconnect to another node")
	})
	deadline := time.NewTimer(s.cfg.Shutdown.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
wait:
	for s.reg.Count() > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-deadline.C:
			break wait
		case <-tick.C:
		}
	}
	if n := s.reg.Count(); n > 0 {
		s.log.Warn("shutdown: closing connections that did not leave", slog.Int("connections", n))
		s.reg.Each(func(sess *session.Session) { sess.Abort() })
	}
	s.stopOnce.Do(func() { close(s.stop) })
	if hs != nil {
		_ = hs.Close()
	}
	s.closeReactor()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.writers.Close()
	err := s.broker.Close()
	s.log.Info("stopped")
	return err
}

// closeReactor stops the WebSocket reactor's loops; connections still
// registered are closed.
func (s *Server) closeReactor() {
	if s.reactor != nil {
		_ = s.reactor.Close()
	}
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var _ broker.Handler = (*Server)(nil)

// discardLogger is used where a caller passes no logger and wants silence.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fdReserve is how many file descriptors the node keeps for everything that
// is not a client connection (listener, broker, files, HTTP requests).
const fdReserve = 256

// connectionCap returns the connection cap in force: max_connections, but
// never more than the process's open-file limit allows, so that a full
// node answers 503 instead of failing to accept.
func connectionCap(configured int, log *slog.Logger) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<31 {
		return configured
	}
	byFiles := int(rl.Cur) - fdReserve
	if byFiles < 1 {
		byFiles = 1
	}
	if configured == 0 || configured > byFiles {
		log.Info("connection cap set by the open-file limit", slog.Int("max_connections", byFiles), slog.Uint64("nofile", rl.Cur))
		return byFiles
	}
	return configured
}
