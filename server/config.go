package server

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/protocol"
)

// Config configures a node. The zero value of every field means its
// documented default (applied by New), except where a comment says 0 turns a
// limit off. Default returns the defaults written out, which is what
// `ferry serve` starts from before it reads a file, FERRY_* variables and
// flags (each name is the yaml path in upper case with "_" for "." and a
// FERRY_ prefix: heartbeat.interval is FERRY_HEARTBEAT_INTERVAL).
type Config struct {
	// Addr is the listen address. Default ":8080".
	Addr string `yaml:"addr"`
	// Dev turns on the embedded development defaults: memory broker, every
	// namespace open with history and presence, localhost origins, and a
	// generated secret and API key when none is given. Default false.
	Dev bool `yaml:"dev"`
	// NodeID names this node in a cluster. Default: a random id.
	NodeID string `yaml:"node_id"`
	// Broker selects the engine: "memory" (default), or Redis:
	// redis://[user:pass@]host:port/db, rediss:// (TLS), several URLs
	// separated by commas (shards, by channel), or
	// redis+sentinel://host:port,host:port/master/db; or NATS JetStream:
	// nats://[user:pass@]host:port, several URLs separated by commas
	// (servers of one cluster), ?replicas=3 to replicate the streams; or
	// RabbitMQ (3.9 or later): amqp://user:pass@host:port/vhost, amqps://
	// (TLS).
	Broker string `yaml:"broker"`
	// APIKey authenticates the server API (/v1/api/...). Default none: the
	// API answers 401 to every call.
	APIKey string `yaml:"api_key"`
	// API limits failed authentications on the server API.
	API APIConfig `yaml:"api"`

	// MaxConnections caps this node's connections; excess handshakes get
	// HTTP 503. Default 0 = no cap but the process's open-file limit (less
	// 256 descriptors kept for everything else), which always applies.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerUser caps one user's connections (cluster-wide with
	// a shared broker); a new one evicts the oldest with 4011. 0 = no cap,
	// as for MaxConnections. Default() sets 5.
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
	// MaxSubscriptions caps one connection's subscriptions. Default 1000.
	MaxSubscriptions int `yaml:"max_subscriptions"`
	// MaxFrameBytes caps an inbound message (after decompression); larger
	// ones close the connection with 4009. Default 65536.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// ConnectTimeout is how long a handshake and the first connect frame
	// may take. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Compression enables permessage-deflate. Default false.
	Compression bool `yaml:"compression"`

	Token          TokenConfig          `yaml:"token"`
	Auth           AuthConfig           `yaml:"auth"`
	AllowedOrigins []string             `yaml:"allowed_origins"`
	TrustedProxies []string             `yaml:"trusted_proxies"`
	Handshake      HandshakeConfig      `yaml:"handshake"`
	Heartbeat      HeartbeatConfig      `yaml:"heartbeat"`
	Shutdown       ShutdownConfig       `yaml:"shutdown"`
	Session        SessionConfig        `yaml:"session"`
	Idempotency    IdempotencyConfig    `yaml:"idempotency"`
	Queue          QueueConfig          `yaml:"queue"`
	SlowConsumer   SlowConsumerConfig   `yaml:"slow_consumer"`
	Batch          BatchConfig          `yaml:"batch"`
	ClientPublish  ClientPublishConfig  `yaml:"client_publish"`
	Namespaces     map[string]Namespace `yaml:"namespaces"`
	TLS            TLSConfig            `yaml:"tls"`
	Logs           LogsConfig           `yaml:"logs"`
	Admin          AdminConfig          `yaml:"admin"`
	Hooks          HooksConfig          `yaml:"hooks"`
	Uploads        UploadsConfig        `yaml:"uploads"`
}

// UploadsConfig configures resumable uploads (docs/uploads.md): the
// upload.* frames and tus 1.0 at /v1/uploads/, over one store.
type UploadsConfig struct {
	// Dir is the upload store's directory (tusd's filestore). Nodes that
	// share it (one host, or a shared file system) continue each other's
	// uploads. Default none: uploads are off (upload.* frames answer 404,
	// /v1/uploads/ is not served), except with Dev, which uses a new
	// temporary directory.
	Dir string `yaml:"dir"`
	// MaxSize caps one upload's size in bytes (413 above). Default 1 GiB.
	MaxSize int64 `yaml:"max_size"`
	// MaxActivePerUser caps one user's unfinished uploads (429 for one
	// more). Default 4.
	MaxActivePerUser int `yaml:"max_active_per_user"`
	// MaxBytesPerUser caps the sizes of one user's unfinished uploads
	// added up (413 for one that would pass it). Default 4 GiB.
	MaxBytesPerUser int64 `yaml:"max_bytes_per_user"`
	// TTL is how long an unfinished upload is kept without receiving a
	// byte (then 410/404 and removed). Default 24h.
	TTL time.Duration `yaml:"ttl"`
	// Keep is how long a complete upload stays in Dir after its last byte.
	// Default 168h.
	Keep time.Duration `yaml:"keep"`
	// NoSync skips the fsync after each chunk (a checkpoint may then be
	// lost when the machine, not the node, crashes). Default false.
	NoSync bool `yaml:"no_sync"`
	// Lock says what serializes the writers of one upload: "broker" (a
	// lease in the cluster's broker, which must implement broker.Locker:
	// Redis, NATS, RabbitMQ, memory), "file" (tusd's lock files in Dir: one host,
	// or hosts whose shared file system has atomic hard links), or ""
	// (auto, the default): "broker" when the broker implements
	// broker.Locker, else "file".
	Lock string `yaml:"lock"`
	// LockTTL is the lease of a broker lock: a node that dies holding one
	// frees it after this long. Default 30s.
	LockTTL time.Duration `yaml:"lock_ttl"`
	// Channel, when set, gets an "upload.done" message (id, name, size,
	// sha256, user, url) for every verified upload; "{user}" in it stands
	// for the uploader's user id. Its namespace must exist. Default none.
	Channel string `yaml:"channel"`
}

// AdminConfig turns on the admin page (/admin, see docs/operations.md).
type AdminConfig struct {
	// Secret unlocks the admin page (FERRY_ADMIN_SECRET); at least
	// MinAdminSecretBytes long. Default none: the page is off and /admin
	// answers 404.
	Secret string `yaml:"secret"`
	// SessionTTL is how long a login lasts before the secret is asked
	// again. Default 15m.
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// MinAdminSecretBytes is the shortest admin.secret Validate accepts.
const MinAdminSecretBytes = 16

// TokenConfig says how connection tokens (JWT) are verified.
type TokenConfig struct {
	// HMACSecret verifies HS256 tokens (FERRY_TOKEN_HMAC_SECRET); at least
	// MinHMACSecretBytes long outside Dev. Default: none.
	HMACSecret string `yaml:"hmac_secret"`
	// PublicKeyFile is a PEM file with an RSA, ECDSA or Ed25519 public key.
	PublicKeyFile string `yaml:"public_key_file"`
	// JWKSURL is fetched (and cached by key id) for RS256/ES256/EdDSA keys.
	JWKSURL string `yaml:"jwks_url"`
	// Audience and Issuer, when set, must match the token's aud and iss.
	Audience string `yaml:"audience"`
	Issuer   string `yaml:"issuer"`
	// Leeway tolerates clock skew on exp/nbf/iat. Default 5s.
	Leeway time.Duration `yaml:"leeway"`
}

// AuthConfig holds handshake authentication policy.
type AuthConfig struct {
	// AllowQueryToken accepts a raw JWT in ?token= (discouraged: URLs end
	// up in logs). Default false: such requests get HTTP 400.
	AllowQueryToken bool `yaml:"allow_query_token"`
	// CookieName is the cookie a token may come in. Default "ferry_token".
	CookieName string `yaml:"cookie_name"`
	// Anonymous lets connections without a token in, with an empty user
	// id. Default false.
	Anonymous bool `yaml:"anonymous"`
}

// HandshakeConfig limits handshakes per client IP.
type HandshakeConfig struct {
	// Rate is handshakes per second per IP. 0 disables the limit.
	// Default() sets 20.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket size. Default() sets 50.
	Burst int `yaml:"burst"`
}

// APIConfig limits failed authentications (missing or wrong API key) on
// the server API per client IP (IPv6 by /64); an address over the limit
// gets HTTP 429 with Retry-After on every API call, even with the right
// key, until its bucket refills.
type APIConfig struct {
	// AuthFailureRate is how many failed authentications per second an
	// address regains. Default 1; negative turns the limit off.
	AuthFailureRate float64 `yaml:"auth_failure_rate"`
	// AuthFailureBurst is how many failures in a row are allowed before
	// the limit applies. Default 20.
	AuthFailureBurst int `yaml:"auth_failure_burst"`
}

// HeartbeatConfig sets liveness checks.
type HeartbeatConfig struct {
	// Interval between server pings. Default 25s.
	Interval time.Duration `yaml:"interval"`
	// Timeout after a ping with nothing heard before the connection is
	// closed with 4012. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// ShutdownConfig sets the graceful drain.
type ShutdownConfig struct {
	// Timeout is how long Shutdown waits for connections to close after
	// sending 4013. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// SessionConfig sets session resumption.
type SessionConfig struct {
	// TTL is how long a session can be resumed after its connection ends.
	// Default 2m.
	TTL time.Duration `yaml:"ttl"`
	// BindNetwork binds an HTTP-fallback session_token to the network it
	// was issued to (IPv4 /24, IPv6 /48, as logs truncate them; behind
	// trusted_proxies the forwarded address): a request with the token
	// from another network gets 401 and the client opens a new session.
	// A stolen token is then useless elsewhere, but a mobile client that
	// moves between networks (Wi-Fi to cellular) loses its session and
	// recovers from history with a new one. Default false.
	BindNetwork bool `yaml:"bind_network"`
}

// IdempotencyConfig sets publish deduplication.
type IdempotencyConfig struct {
	// Window is how long a publish key is remembered. Default 5m.
	Window time.Duration `yaml:"window"`
}

// QueueConfig bounds each connection's outbound queue.
type QueueConfig struct {
	// MaxMessages queued per connection. Default 1024.
	MaxMessages int `yaml:"max_messages"`
	// MaxBytes queued per connection. Default 1 MiB.
	MaxBytes int `yaml:"max_bytes"`
}

// SlowConsumerConfig sets how long a connection may hold a full queue of
// critical messages before it is closed with 4010.
type SlowConsumerConfig struct {
	// Grace. Default 5s.
	Grace time.Duration `yaml:"grace"`
}

// BatchConfig sets outbound batching.
type BatchConfig struct {
	// Delay gathers messages for this long into one WebSocket message.
	// Default 0: off (the writer still coalesces what is queued).
	Delay time.Duration `yaml:"delay"`
	// WriteBudget is the writes per second per CPU above which the writer
	// pool gathers a busy connection's messages into fewer writes
	// (adaptive coalescing; no delay while the node writes less). Default
	// 15000; 0 turns adaptive coalescing off.
	WriteBudget int `yaml:"write_budget"`
	// MaxWindow is the most adaptive coalescing holds a message back.
	// Default 40ms; 0 turns adaptive coalescing off.
	MaxWindow time.Duration `yaml:"max_window"`
}

// ClientPublishConfig limits publishes from one connection.
type ClientPublishConfig struct {
	// Rate is publishes per second per connection; excess gets error 429.
	// Default() sets 100; 0 turns the limit off.
	Rate float64 `yaml:"rate"`
	// Burst is the bucket size. Default 200.
	Burst int `yaml:"burst"`
	// CloseAfter rate-limited publishes in a row close the connection with
	// 4008. Default 50.
	CloseAfter int `yaml:"close_after"`
}

// Namespace holds the rules for channels named "NAME:..." (channels without
// ":" belong to the namespace "default").
type Namespace struct {
	// HistorySize is how many messages each channel keeps. Default 0.
	HistorySize int `yaml:"history_size"`
	// HistoryTTL is how long they are kept. Default 0 (until pushed out).
	HistoryTTL time.Duration `yaml:"history_ttl"`
	// Presence tracks who is subscribed. Default false.
	Presence bool `yaml:"presence"`
	// JoinLeave sends join/leave events to subscribers that asked for
	// presence. Default false.
	JoinLeave bool `yaml:"join_leave"`
	// Publish lets clients publish (where their token permits). Default
	// false: only the server API publishes.
	Publish bool `yaml:"publish"`
	// Subscribe lets clients subscribe without a channels claim naming the
	// channel. Default false.
	Subscribe bool `yaml:"subscribe"`
	// Priority is the default class of messages: critical, normal
	// (default), droppable.
	Priority string `yaml:"priority"`
	// Rate limits messages per second to each connection (0: no limit);
	// with conflation a throttled client still gets the latest value per key.
	Rate float64 `yaml:"rate"`
	// SubscribeHook is the URL asked before a client subscribes to a
	// channel of the namespace (docs/hooks.md). Default none.
	SubscribeHook string `yaml:"subscribe_hook"`
	// PublishHook is the URL asked before a client's publish to a channel
	// of the namespace reaches the broker (docs/hooks.md). Default none.
	PublishHook string `yaml:"publish_hook"`
}

// TLSConfig serves https and wss directly.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// LogsConfig sets logging.
type LogsConfig struct {
	// Level: debug, info (default), warn, error.
	Level string `yaml:"level"`
	// IP: "truncate" (default: IPv4 /24, IPv6 /48) or "full".
	IP string `yaml:"ip"`
	// IPRetention is how long full IPs may stay in log files. Default 24h.
	IPRetention time.Duration `yaml:"ip_retention"`
}

// Default returns the production defaults, written out.
func Default() Config {
	c := Config{}
	c.Handshake = HandshakeConfig{Rate: 20, Burst: 50}
	c.Batch = BatchConfig{WriteBudget: 15000, MaxWindow: 40 * time.Millisecond}
	// Set here, not in applyDefaults: 0 is the "no cap" / "no limit" a
	// user may write.
	c.MaxConnectionsPerUser = 5
	c.ClientPublish.Rate = 100
	c.applyDefaults()
	return c
}

// DevNamespace is the rule every namespace gets with Dev on.
var DevNamespace = Namespace{
	HistorySize: 1000,
	HistoryTTL:  10 * time.Minute,
	Presence:    true,
	JoinLeave:   true,
	Publish:     true,
	Subscribe:   true,
}

// WithDefaults returns c with every zero field set to its default, as New
// applies them.
func (c Config) WithDefaults() Config {
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	setDefault(&c.Addr, ":8080")
	setDefault(&c.Broker, "memory")
	setDefault(&c.API.AuthFailureRate, 1)
	setDefault(&c.API.AuthFailureBurst, 20)
	setDefault(&c.MaxSubscriptions, 1000)
	setDefault(&c.MaxFrameBytes, 65536)
	setDefault(&c.ConnectTimeout, 5*time.Second)
	setDefault(&c.Token.Leeway, 5*time.Second)
	setDefault(&c.Auth.CookieName, "ferry_token")
	setDefault(&c.Heartbeat.Interval, 25*time.Second)
	setDefault(&c.Heartbeat.Timeout, 10*time.Second)
	setDefault(&c.Shutdown.Timeout, 10*time.Second)
	setDefault(&c.Session.TTL, 2*time.Minute)
	setDefault(&c.Idempotency.Window, 5*time.Minute)
	setDefault(&c.Queue.MaxMessages, 1024)
	setDefault(&c.Queue.MaxBytes, 1<<20)
	setDefault(&c.SlowConsumer.Grace, 5*time.Second)
	setDefault(&c.ClientPublish.Burst, 200)
	setDefault(&c.ClientPublish.CloseAfter, 50)
	setDefault(&c.Logs.Level, "info")
	setDefault(&c.Logs.IP, "truncate")
	setDefault(&c.Logs.IPRetention, 24*time.Hour)
	setDefault(&c.Admin.SessionTTL, 15*time.Minute)
	setDefault(&c.Hooks.Timeout, 2*time.Second)
	setDefault(&c.Hooks.MaxConcurrent, 256)
	setDefault(&c.Hooks.BreakerFailures, 5)
	setDefault(&c.Hooks.BreakerCooldown, 5*time.Second)
	setDefault(&c.Hooks.MaxAnswerBytes, 65536)
	setDefault(&c.Hooks.RetryAfter, 5*time.Second)
	setDefault(&c.Hooks.WebhookQueue, 1024)
	setDefault(&c.Hooks.WebhookAttempts, 5)
	setDefault(&c.Hooks.WebhookBackoff, 500*time.Millisecond)
	setDefault(&c.Uploads.MaxSize, 1<<30)
	setDefault(&c.Uploads.MaxActivePerUser, 4)
	setDefault(&c.Uploads.MaxBytesPerUser, 4<<30)
	setDefault(&c.Uploads.TTL, 24*time.Hour)
	setDefault(&c.Uploads.Keep, 7*24*time.Hour)
	setDefault(&c.Uploads.LockTTL, 30*time.Second)
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// MinHMACSecretBytes is the shortest token.hmac_secret Validate accepts
// outside Dev: the size of the HS256 hash, as RFC 7518 section 3.2 asks.
const MinHMACSecretBytes = 32

// FieldError is one problem Validate found, with the setting's yaml path
// (a section such as "tls" when the problem spans several settings), so
// that a loader can say in which file and line the setting was written.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Validate checks the configuration and reports every bad field by its
// yaml path, each as a *FieldError (joined).
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Path: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Broker != "" && c.Broker != "memory" && !hasAnyPrefix(c.Broker, "redis://", "rediss://", "redis+sentinel://", "rediss+sentinel://", "nats://", "amqp://", "amqps://") {
		bad("broker", "%q: want memory, a redis:// or rediss:// URL (comma-separated for shards), redis+sentinel://, nats:// (comma-separated servers), or an amqp:// or amqps:// URL (RabbitMQ)", c.Broker)
	}
	type intField struct {
		name string
		v    int
	}
	for _, f := range []intField{
		{"max_connections", c.MaxConnections}, {"max_connections_per_user", c.MaxConnectionsPerUser},
		{"max_subscriptions", c.MaxSubscriptions}, {"max_frame_bytes", c.MaxFrameBytes},
		{"handshake.burst", c.Handshake.Burst}, {"queue.max_messages", c.Queue.MaxMessages},
		{"queue.max_bytes", c.Queue.MaxBytes}, {"client_publish.burst", c.ClientPublish.Burst},
		{"client_publish.close_after", c.ClientPublish.CloseAfter}, {"api.auth_failure_burst", c.API.AuthFailureBurst},
		{"uploads.max_active_per_user", c.Uploads.MaxActivePerUser},
	} {
		if f.v < 0 {
			bad(f.name, "%d: must not be negative", f.v)
		}
	}
	if c.Handshake.Rate < 0 {
		bad("handshake.rate", "%v: must not be negative (0 disables)", c.Handshake.Rate)
	}
	if c.Batch.WriteBudget < 0 {
		bad("batch.write_budget", "%v: must not be negative (0 disables)", c.Batch.WriteBudget)
	}
	if c.ClientPublish.Rate < 0 {
		bad("client_publish.rate", "%v: must not be negative (0 disables)", c.ClientPublish.Rate)
	}
	type durField struct {
		name string
		v    time.Duration
	}
	for _, f := range []durField{
		{"connect_timeout", c.ConnectTimeout}, {"heartbeat.interval", c.Heartbeat.Interval},
		{"heartbeat.timeout", c.Heartbeat.Timeout}, {"shutdown.timeout", c.Shutdown.Timeout},
		{"session.ttl", c.Session.TTL}, {"idempotency.window", c.Idempotency.Window},
		{"slow_consumer.grace", c.SlowConsumer.Grace}, {"batch.delay", c.Batch.Delay}, {"batch.max_window", c.Batch.MaxWindow},
		{"token.leeway", c.Token.Leeway}, {"logs.ip_retention", c.Logs.IPRetention},
		{"admin.session_ttl", c.Admin.SessionTTL},
		{"uploads.ttl", c.Uploads.TTL}, {"uploads.keep", c.Uploads.Keep},
		{"uploads.lock_ttl", c.Uploads.LockTTL},
	} {
		if f.v < 0 {
			bad(f.name, "%v: must not be negative", f.v)
		}
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err2 := netip.ParseAddr(p); err2 != nil {
				bad("trusted_proxies", "%q: not a CIDR or IP address", p)
			}
		}
	}
	names := make([]string, 0, len(c.Namespaces))
	for name := range c.Namespaces {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ns := c.Namespaces[name]
		if strings.Contains(name, ":") {
			bad("namespaces."+name, "a namespace name cannot contain ':'")
		}
		if name == node.ReservedNamespace {
			bad("namespaces."+name, "the namespace %q is reserved for the nodes' own channels", name)
		}
		if _, err := protocol.ParsePriority(ns.Priority); err != nil {
			bad("namespaces."+name+".priority", "%q: want critical, normal or droppable", ns.Priority)
		}
		if ns.HistorySize < 0 {
			bad("namespaces."+name+".history_size", "%d: must not be negative", ns.HistorySize)
		}
		if ns.HistoryTTL < 0 {
			bad("namespaces."+name+".history_ttl", "%v: must not be negative", ns.HistoryTTL)
		}
		if ns.Rate < 0 {
			bad("namespaces."+name+".rate", "%v: must not be negative", ns.Rate)
		}
	}
	c.validateHooks(bad)
	if c.Uploads.MaxSize < 0 {
		bad("uploads.max_size", "%d: must not be negative", c.Uploads.MaxSize)
	}
	if c.Uploads.MaxBytesPerUser < 0 {
		bad("uploads.max_bytes_per_user", "%d: must not be negative", c.Uploads.MaxBytesPerUser)
	}
	switch c.Uploads.Lock {
	case "", UploadLockBroker, UploadLockFile:
	default:
		bad("uploads.lock", "%q: want %q, %q or empty (auto)", c.Uploads.Lock, UploadLockBroker, UploadLockFile)
	}
	if ch := c.Uploads.Channel; ch != "" {
		if err := protocol.ValidChannel(strings.ReplaceAll(ch, "{user}", "u")); err != nil {
			bad("uploads.channel", "%q: %v", ch, err)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	switch c.Logs.IP {
	case "", "truncate", "full":
	default:
		bad("logs.ip", "%q: want truncate or full", c.Logs.IP)
	}
	switch c.Logs.Level {
	case "", "debug", "info", "warn", "error":
	default:
		bad("logs.level", "%q: want debug, info, warn or error", c.Logs.Level)
	}
	// A short HMAC secret can be guessed offline from one token; --dev
	// (which generates a long one unless given) is exempt for local trials.
	if !c.Dev && c.Token.HMACSecret != "" && len(c.Token.HMACSecret) < MinHMACSecretBytes {
		bad("token.hmac_secret", "%d bytes: must be at least %d (HS256 keys shorter than the hash can be brute-forced from one token; generate one with `openssl rand -hex 32`)", len(c.Token.HMACSecret), MinHMACSecretBytes)
	}
	if c.Admin.Secret != "" && len(c.Admin.Secret) < MinAdminSecretBytes {
		bad("admin.secret", "%d bytes: must be at least %d (the admin page can disconnect users and read history; generate one with `openssl rand -hex 16`)", len(c.Admin.Secret), MinAdminSecretBytes)
	}
	if !c.Dev && c.Token.HMACSecret == "" && c.Token.PublicKeyFile == "" && c.Token.JWKSURL == "" && !c.Auth.Anonymous {
		bad("token", "no way to verify tokens: set FERRY_TOKEN_HMAC_SECRET (token.hmac_secret), token.public_key_file or token.jwks_url, or run with --dev")
	}
	return errors.Join(errs...)
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
