package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// Mode is what a run measures.
type Mode string

// The modes; see the package documentation.
const (
	ModeIdle    Mode = "idle"
	ModeConnect Mode = "connect"
	ModeFanout  Mode = "fanout"
	ModeCluster Mode = "cluster"
)

// ClientKind is how the bench client reads its connections.
type ClientKind string

const (
	// ClientReactor reads every connection from a few epoll loops (Linux;
	// elsewhere it falls back to ClientGoroutine).
	ClientReactor ClientKind = "reactor"
	// ClientGoroutine reads each connection on its own goroutine with a
	// 2 KiB buffer.
	ClientGoroutine ClientKind = "goroutine"
	// ClientLibrary opens each connection as an ordinary application does:
	// github.com/coder/websocket, one goroutine per connection, the
	// upgrade first and then one message [connect, subscribe] (see
	// library.go). JSON only; every connection subscribes, in connect mode
	// too.
	ClientLibrary ClientKind = "library"
)

// PublishVia is how fanout publishes.
type PublishVia string

const (
	// PublishAPI publishes with POST /v1/api/publish (needs the API key).
	PublishAPI PublishVia = "api"
	// PublishWS publishes with publish frames over a few WebSocket
	// connections (needs a namespace with publish on, and a
	// client_publish.rate high enough).
	PublishWS PublishVia = "ws"
)

// PublishTo says which nodes a cluster run publishes to.
type PublishTo string

const (
	// PublishFirst publishes every message once, to the first node: the
	// other nodes' subscribers receive it through a shared broker.
	PublishFirst PublishTo = "first"
	// PublishAll publishes every message to every node (for nodes that do
	// not share a broker: each node's subscribers get that node's copy).
	PublishAll PublishTo = "all"
)

// Config is one benchmark run. The zero value of each field means its
// documented default.
type Config struct {
	// Mode is idle, connect, fanout or cluster. Required.
	Mode Mode `json:"mode"`
	// URLs are the nodes (base or WebSocket URLs). Required; cluster mode
	// spreads connections over them round-robin.
	URLs []string `json:"urls"`
	// Conns is the number of connections (subscribers in fanout). Default
	// 1000.
	Conns int `json:"conns"`
	// Channels is how many channels the connections subscribe to (conn i
	// to channel i mod Channels). Default 1 for fanout and cluster,
	// Conns/100 (at least 1) for idle.
	Channels int `json:"channels"`
	// ChannelPrefix begins every channel name; a random run id follows, so
	// runs never share channels. Default "bench:" (the "bench" namespace
	// must allow subscribe, and publish for PublishWS).
	ChannelPrefix string `json:"channel_prefix"`
	// Rate is publishes per second over all channels (fanout, cluster).
	// Default 10 for fanout; 0 in cluster means an idle run over the nodes.
	Rate float64 `json:"rate"`
	// Duration is how long to publish (fanout, cluster) or the least time
	// to hold the connections (idle). Default 10s for fanout, 30s for idle.
	Duration time.Duration `json:"duration"`
	// Payload is the approximate size of each published payload in bytes
	// (at least the timestamp). Default 64.
	Payload int `json:"payload"`
	// Codec is the encoding of every bench connection, subscribers and
	// WebSocket publishers: json (ferry.v1.json), msgpack or protobuf.
	// The server API always takes JSON. Default json.
	Codec string `json:"codec,omitempty"`
	// Secret is the HMAC secret tokens are signed with (HS256). Required.
	Secret string `json:"-"`
	// APIKey authenticates the server API (stats, and publishing with
	// PublishAPI). Without it server figures are missing.
	APIKey string `json:"-"`
	// Workers is how many child processes open the connections; 0 means
	// in this process, unless Conns exceeds ConnsPerProcess, in which case
	// ceil(Conns/ConnsPerProcess) workers are used.
	Workers int `json:"workers"`
	// ConnsPerProcess caps the connections one process opens. Default
	// 15000 (a 20,000 open-file limit leaves room).
	ConnsPerProcess int `json:"conns_per_process"`
	// Concurrency is how many handshakes are in flight at once, over all
	// processes. Default 128.
	Concurrency int `json:"concurrency"`
	// OneUser mints every connection's token for one user (still one
	// distinct token per connection) instead of a user per connection: the
	// server's per-user bookkeeping then holds all of them under one
	// identity (raise or turn off max_connections_per_user). Default
	// false.
	OneUser bool `json:"one_user,omitempty"`
	// Client is how connections are read. Default ClientReactor.
	Client ClientKind `json:"client"`
	// Transport is ws (default), or sse / poll for sessions of the HTTP
	// fallbacks, each with a goroutine of its own (JSON; idle, connect
	// and cluster without a rate: fanout over them is not measured).
	Transport Transport `json:"transport,omitempty"`
	// Loops is the number of reactor loops per process. Default GOMAXPROCS.
	Loops int `json:"loops"`
	// ReadPause makes each reactor loop sleep this long after a poll that
	// did not fill its event buffer, so that reads are gathered and the
	// server's writes seldom have to wake a sleeping reader. On loopback the
	// sender pays for waking the receiver, which a server with remote
	// clients never does; a pause of about 1ms removes that artifact at the
	// price of up to that much added latency. Default 0 (read at once).
	ReadPause time.Duration `json:"read_pause"`
	// PublishVia is api (default) or ws.
	PublishVia PublishVia `json:"publish_via"`
	// PublishTo is first (default) or all.
	PublishTo PublishTo `json:"publish_to"`
	// Publishers is how many publishing goroutines (and, with PublishWS,
	// connections) there are. Default: between 4 and 64 by rate.
	Publishers int `json:"publishers"`
	// SourceAddrs are the local addresses connections are made from, in
	// turn. Default: for a loopback target, one 127.x.y.z address per 1000
	// connections (at least 4); otherwise the system's choice.
	SourceAddrs []string `json:"source_addrs,omitempty"`
	// ConnectTimeout bounds one connection's handshake (TCP, upgrade,
	// connect, subscribe). Default 10s.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Drain is how long fanout waits, after the last publish, for
	// deliveries to arrive. Default 10s.
	Drain time.Duration `json:"drain"`
	// SettleTimeout bounds how long idle waits beyond Duration for the
	// server's RSS to settle. Default 60s.
	SettleTimeout time.Duration `json:"settle_timeout"`
	// WorkerCommand starts a worker process; the worker protocol runs on
	// its standard input and output (see RunWorker). Default: this
	// executable with the arguments "bench --worker".
	WorkerCommand []string `json:"-"`
	// WorkerEnv is added to the workers' environment.
	WorkerEnv []string `json:"-"`
	// Progress, when set, gets a progress line about every second.
	Progress io.Writer `json:"-"`
	// Stderr gets the workers' standard error. Default: discarded.
	Stderr io.Writer `json:"-"`
}

// withDefaults checks cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	switch cfg.Mode {
	case ModeIdle, ModeConnect, ModeFanout, ModeCluster:
	case "":
		return cfg, fmt.Errorf("%w: no mode (idle, connect, fanout or cluster)", ErrConfig)
	default:
		return cfg, fmt.Errorf("%w: unknown mode %q (idle, connect, fanout or cluster)", ErrConfig, cfg.Mode)
	}
	if len(cfg.URLs) == 0 {
		return cfg, fmt.Errorf("%w: no server URL", ErrConfig)
	}
	if cfg.Mode == ModeCluster && len(cfg.URLs) < 2 {
		return cfg, fmt.Errorf("%w: cluster mode needs at least two URLs", ErrConfig)
	}
	if cfg.Secret == "" {
		return cfg, fmt.Errorf("%w: no token secret (--secret or FERRY_TOKEN_HMAC_SECRET)", ErrConfig)
	}
	if cfg.Conns == 0 {
		cfg.Conns = 1000
	}
	if cfg.Conns < 0 || cfg.Channels < 0 || cfg.Rate < 0 || cfg.Duration < 0 || cfg.Payload < 0 ||
		cfg.Workers < 0 || cfg.Concurrency < 0 || cfg.Loops < 0 || cfg.Publishers < 0 || cfg.ConnsPerProcess < 0 {
		return cfg, fmt.Errorf("%w: negative value", ErrConfig)
	}
	if cfg.Channels == 0 {
		cfg.Channels = 1
		if cfg.Mode == ModeIdle {
			cfg.Channels = max(1, cfg.Conns/100)
		}
	}
	if cfg.Channels > cfg.Conns {
		cfg.Channels = cfg.Conns
	}
	if cfg.ChannelPrefix == "" {
		cfg.ChannelPrefix = "bench:"
	}
	if cfg.Rate == 0 && cfg.Mode == ModeFanout {
		cfg.Rate = 10
	}
	if cfg.Duration == 0 {
		cfg.Duration = 10 * time.Second
		if cfg.Mode == ModeIdle || (cfg.Mode == ModeCluster && cfg.Rate == 0) {
			cfg.Duration = 30 * time.Second
		}
	}
	if cfg.Payload == 0 {
		cfg.Payload = 64
	}
	if cfg.Codec == "" {
		cfg.Codec = CodecJSON
	}
	if _, err := codecNamed(cfg.Codec); err != nil {
		return cfg, err
	}
	if cfg.ConnsPerProcess == 0 {
		cfg.ConnsPerProcess = 15000
	}
	if cfg.Workers == 0 && cfg.Conns > cfg.ConnsPerProcess {
		cfg.Workers = (cfg.Conns + cfg.ConnsPerProcess - 1) / cfg.ConnsPerProcess
	}
	if cfg.Workers > 0 && (cfg.Conns+cfg.Workers-1)/cfg.Workers > cfg.ConnsPerProcess {
		return cfg, fmt.Errorf("%w: %d workers cannot hold %d connections at %d per process", ErrConfig, cfg.Workers, cfg.Conns, cfg.ConnsPerProcess)
	}
	if cfg.Workers > cfg.Conns {
		cfg.Workers = cfg.Conns
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 128
	}
	switch cfg.Client {
	case "":
		cfg.Client = ClientReactor
	case ClientReactor, ClientGoroutine:
	case ClientLibrary:
		if cfg.Codec != CodecJSON {
			return cfg, fmt.Errorf("%w: the library client speaks JSON only, not %q", ErrConfig, cfg.Codec)
		}
	default:
		return cfg, fmt.Errorf("%w: unknown client %q (reactor, goroutine or library)", ErrConfig, cfg.Client)
	}
	switch cfg.Transport {
	case "":
		cfg.Transport = TransportWS
	case TransportWS:
	case TransportSSE, TransportPoll:
		if cfg.Codec != CodecJSON {
			return cfg, fmt.Errorf("%w: the HTTP fallbacks speak JSON only, not %q", ErrConfig, cfg.Codec)
		}
		if cfg.publishes() {
			return cfg, fmt.Errorf("%w: --transport %s measures idle and connect (and cluster without --rate); fanout over the fallbacks is not measured", ErrConfig, cfg.Transport)
		}
	default:
		return cfg, fmt.Errorf("%w: unknown transport %q (ws, sse or poll)", ErrConfig, cfg.Transport)
	}
	if cfg.Loops == 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	switch cfg.PublishVia {
	case "":
		cfg.PublishVia = PublishAPI
	case PublishAPI, PublishWS:
	default:
		return cfg, fmt.Errorf("%w: unknown publish path %q (api or ws)", ErrConfig, cfg.PublishVia)
	}
	if cfg.PublishVia == PublishAPI && cfg.APIKey == "" && cfg.publishes() {
		return cfg, fmt.Errorf("%w: publishing through the API needs an API key (--api-key or FERRY_API_KEY)", ErrConfig)
	}
	switch cfg.PublishTo {
	case "":
		cfg.PublishTo = PublishFirst
	case PublishFirst, PublishAll:
	default:
		return cfg, fmt.Errorf("%w: unknown publish target %q (first or all)", ErrConfig, cfg.PublishTo)
	}
	if cfg.Publishers == 0 {
		cfg.Publishers = min(64, max(4, int(cfg.Rate)/100))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.Drain == 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.SettleTimeout == 0 {
		cfg.SettleTimeout = 60 * time.Second
	}
	for _, u := range cfg.URLs {
		if _, err := ParseTarget(u); err != nil {
			return cfg, err
		}
	}
	for _, a := range cfg.SourceAddrs {
		if strings.TrimSpace(a) == "" {
			return cfg, fmt.Errorf("%w: empty source address", ErrConfig)
		}
	}
	return cfg, nil
}

// publishes reports whether the run publishes messages.
func (cfg Config) publishes() bool {
	return cfg.Mode == ModeFanout || (cfg.Mode == ModeCluster && cfg.Rate > 0)
}
