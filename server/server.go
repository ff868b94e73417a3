// Package server is the embeddable Ferry node: it wires the broker, the
// node layer, sessions, transports, the server API and the
// metrics into one http.Handler, and is the node's public API.
//
//	srv, err := server.New(cfg, server.Options{Broker: memory.New(memory.Config{})})
//	...
//	err = srv.Run(ctx) // listens on cfg.Addr until ctx ends, then drains
//
// or mount srv.Handler() in your own http.Server and call Shutdown. The
// application publishes with srv.Publish(ctx, channel, data, options...).
//
// The broker is the caller's choice (Options.Broker): this package links
// no engine, so a single node on broker/memory links no Redis client;
// broker/open opens one by URL, as `ferry serve` does. See
// docs/adr/004-node-layer.md for the packages behind it and their
// dependency direction.
package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
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
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/transport/fallback"
	"github.com/ferry-io/ferry/internal/transport/ws"
	"github.com/ferry-io/ferry/internal/upload"
	"github.com/ferry-io/ferry/protocol"
)

// Server is one Ferry node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	broker  broker.Broker
	hub     *hub.Hub
	node    *node.Node
	reg     *node.Registry[*session.Session]
	writers *flow.Writers
	env     *session.Env
	metrics *metrics.Metrics

	verifier *auth.Verifier
	origins  *auth.OriginPolicy
	limiter  *auth.HandshakeLimiter
	tickets  *auth.TicketStore
	proxies  []netip.Prefix

	handler      http.Handler
	httpSessions *fallback.Sessions
	anyOrigin    bool // allowed_origins has "*": CORS without credentials
	maxConns     int  // the node's connection cap in force (0 = none)
	cert         atomic.Pointer[tls.Certificate]
	wsOnce       sync.Once
	wsOpts       *ws.Options
	reactor      *ws.Reactor // nil where epoll is missing: a reader goroutine per WebSocket
	started      time.Time
	draining     atomic.Bool

	wg sync.WaitGroup // every long-lived goroutine, for Shutdown
	// lifetime is the parent of every frame's and every sweep's context
	// (session.Env.Lifetime); stopWork cancels it in Shutdown, after the
	// drain. Both set by New, read-only after.
	lifetime context.Context
	stopWork context.CancelFunc
	stop     chan struct{}
	stopOnce sync.Once

	// uploads is the upload store (nil: uploads off); uploadsHTTP its tus
	// handler; uploadTmp the temporary directory a Dev node keeps them in.
	// Set by New, read-only after.
	uploads     *upload.Store
	uploadsHTTP http.Handler
	uploadTmp   string

	mu      sync.Mutex
	httpSrv *http.Server
	// handoff is the listener of Serve when it serves plain HTTP: held
	// long-polls give their connections back to it (handoff.go); nil
	// otherwise (TLS, or an embedder serving Handler() itself).
	handoff atomic.Pointer[handoffListener]

	admin *adminState // the admin page's bookkeeping; nil when it is off
}

// ErrNoBroker is returned by New when Options.Broker is nil.
var ErrNoBroker = errors.New("server: no broker: pass Options.Broker (broker/memory for one node; broker/open opens one by URL)")

// Options carries what cannot come from a config file.
type Options struct {
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics. Default: a new registry
	// served at /metrics.
	Registerer prometheus.Registerer
	// Broker is the node's channel engine (required). The server starts it
	// and closes it on Shutdown. Config.Broker only names it (in stats);
	// the ferry command opens the broker Config.Broker names with
	// broker/open. A single node embedding Ferry passes memory.New(...)
	// from broker/memory, which links no Redis client.
	Broker broker.Broker
	// OnUploadDone, when set, is called after an upload's sha256 is
	// verified (after the uploads.channel publish): the seam where the
	// application back end or a webhook learns of it. It may be called
	// more than once for one upload (a retried commit): key on the id.
	OnUploadDone func(context.Context, UploadDone)
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
	if o.Broker == nil {
		return nil, ErrNoBroker
	}
	// The node and its broker share one id: control messages are addressed
	// by it.
	if id, ok := o.Broker.(interface{ NodeID() string }); ok {
		switch b := id.NodeID(); {
		case cfg.NodeID == "":
			cfg.NodeID = b
		case b != "" && b != cfg.NodeID:
			return nil, fmt.Errorf("config: node_id %q differs from the broker's node id %q", cfg.NodeID, b)
		}
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
	s.lifetime, s.stopWork = context.WithCancel(context.Background())

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
	s.metrics = metrics.New(o.Registerer, namespaceNames(cfg)...)
	s.metrics.SetMaxConnections(s.maxConns)

	s.broker = o.Broker
	s.hub = hub.New(s.broker)
	s.reg = node.NewRegistry[*session.Session]()
	s.node = node.New(node.Config{
		ID:                cfg.NodeID,
		Broker:            s.broker,
		Hub:               s.hub,
		Namespaces:        namespacesOf(cfg),
		IdempotencyWindow: cfg.Idempotency.Window,
		Metrics:           s.metrics,
		Local:             s.reg,
		// s.httpSessions is set below, before the broker starts
		// delivering control messages.
		Routes: func(c broker.Control) { s.httpSessions.HandleControl(c) },
	})
	s.writers = flow.NewWritersWith(max(2, runtime.GOMAXPROCS(0)), flow.Coalescing{
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
	s.httpSessions = fallback.NewSessions(fallback.SessionsConfig{
		Env:        s.env,
		KV:         kv,
		SessionTTL: cfg.Session.TTL,
		Heartbeat:  cfg.Heartbeat.Interval + cfg.Heartbeat.Timeout,
		Logger:     log,
		Beating:    func() bool { return s.node.Beating(time.Now()) },
	})
	s.metrics.SetQueueDepthFunc(func() float64 { return float64(s.reg.QueueDepth()) })
	if err := s.openUploads(o.OnUploadDone); err != nil {
		s.writers.Close()
		s.closeReactor()
		return nil, fmt.Errorf("config: %w", err)
	}

	if err := s.broker.Start(context.Background(), s.node); err != nil {
		s.writers.Close()
		s.closeReactor()
		s.closeHooks()
		_ = s.broker.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	if err := s.ReloadTLS(); err != nil {
		s.writers.Close()
		s.closeReactor()
		s.closeHooks()
		_ = s.broker.Close()
		return nil, fmt.Errorf("config: %w", err)
	}
	s.setupAdmin()
	s.handler = s.routes()
	s.goTracked(s.sweepLoop)
	s.goTracked(s.brokerProbe())
	s.goTracked(s.livenessLoop)
	if s.uploads != nil {
		s.goTracked(s.runUploadSweep)
	}
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
		Node:     s.node,
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
		Go:       s.goTracked,
		Lifetime: s.lifetime,
	}
	env.Presence, _ = s.broker.(broker.Presence)
	env.Users, _ = s.broker.(broker.Users)
	env.Hooks = s.newHooks()
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

// namespacesOf converts the configured namespaces into the node's rules.
// With Dev on, a namespace that is not configured gets DevNamespace.
func namespacesOf(cfg Config) node.Namespaces {
	ns := node.Namespaces{ByName: make(map[string]node.Rules, len(cfg.Namespaces))}
	for name, n := range cfg.Namespaces {
		ns.ByName[name] = rulesOf(n)
	}
	if cfg.Dev {
		dev := rulesOf(DevNamespace)
		ns.Fallback = &dev
	}
	return ns
}

// rulesOf converts a namespace's config into node rules.
func rulesOf(ns Namespace) node.Rules {
	p, _ := protocol.ParsePriority(ns.Priority) // Validate checked it
	return node.Rules{
		HistorySize: ns.HistorySize,
		HistoryTTL:  ns.HistoryTTL,
		Presence:    ns.Presence,
		JoinLeave:   ns.JoinLeave,
		Publish:     ns.Publish,
		Subscribe:   ns.Subscribe,
		Priority:    p,
		Rate:        ns.Rate,

		SubscribeHook: ns.SubscribeHook,
		PublishHook:   ns.PublishHook,
	}
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
			ctx, cancel := context.WithTimeout(s.lifetime, 5*time.Second)
			s.reg.Sweep(ctx, now)
			cancel()
			s.limiter.Sweep(now)
		}
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
	if s.cfg.TLS.CertFile == "" {
		hl := newHandoffListener(ln, hs.IdleTimeout, s.goTracked)
		s.handoff.Store(hl)
		ln = hl
	}
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
	// Work still in flight (a frame waiting on the broker, a replay page)
	// stops now instead of running out its own timeout.
	s.stopWork()
	if n := s.reg.Count(); n > 0 {
		s.log.Warn("shutdown: closing connections that did not leave", slog.Int("connections", n))
		s.reg.Each(func(sess *session.Session) { sess.Abort() })
	}
	s.stopOnce.Do(func() { close(s.stop) })
	if hs != nil {
		_ = hs.Close()
	}
	s.closeReactor()
	s.closeHooks()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.writers.Close()
	// The sessions are handed over (or saved) and the liveness loop has
	// stopped: no node needs to wait for this one any more.
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	s.node.Forget(fctx)
	fcancel()
	s.closeUploads()
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
