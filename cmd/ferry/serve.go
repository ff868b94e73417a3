package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ferry-io/ferry/broker/open"
	"github.com/ferry-io/ferry/cmd/ferry/internal/config"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/server"
)

// serveFlags are the settings ferry serve takes as flags, by flag name.
// A flag is named after its setting's yaml path with "-" for "." and "_"
// (logs.level: --logs-level), as its variable is (FERRY_LOGS_LEVEL), so
// one name serves all three.
var serveFlags = []struct{ name, path, usage string }{
	{"addr", "addr", "listen address (default :8080)"},
	{"broker", "broker", "broker: memory (default), redis://host:port/db, nats://host:port or amqp://user:pass@host:port/vhost (RabbitMQ)"},
	{"node-id", "node_id", "node id (default random)"},
	{"logs-level", "logs.level", "debug, info (default), warn or error"},
	{"max-connections", "max_connections", "cap on this node's connections (default: the open-file limit less 256)"},
}

// flagAliases are older flag names still accepted, by the name they stand
// for; they are left out of --help.
var flagAliases = map[string]string{"log-level": "logs-level"}

// notSettings are FERRY_* variables that other commands read (not node
// settings), so serve does not warn about them.
var notSettings = map[string]bool{"FERRY_TOKEN": true, "FERRY_WS_GOROUTINE_READER": true}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	cfgPath := fs.String("config", "", "YAML config file")
	dev := fs.Bool("dev", false, "development mode: memory broker, open namespaces; a token secret and API key are generated unless FERRY_TOKEN_HMAC_SECRET / FERRY_API_KEY are set")
	values := map[string]*string{}
	for _, f := range serveFlags {
		values[f.name] = fs.String(f.name, "", f.usage)
	}
	for alias, name := range flagAliases {
		fs.StringVar(values[name], alias, "", "")
	}
	fs.Usage = func() { serveUsage(fs) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	environ := os.Environ()
	loaded, loadErr := config.LoadSources(*cfgPath, environ)
	if config.IsUnreadable(loadErr) {
		return loadErr
	}
	for _, f := range serveFlags {
		if v := *values[f.name]; v != "" {
			if err := loaded.ApplyFlag("--"+f.name, f.path, v); err != nil {
				return usageError{err.Error()}
			}
		}
	}
	if *dev {
		loaded.Config.Dev = true
	}
	generated := devSecrets(&loaded.Config)
	// Values of the wrong type and values out of range are reported
	// together, each with where it was written.
	if err := errors.Join(loadErr, loaded.Validate()); err != nil {
		return err
	}
	cfg := loaded.Config
	log := newLogger(stderr, cfg.Logs.Level)
	warnUnknownEnv(log, environ)
	if len(generated) > 0 && cfg.Broker != "" && cfg.Broker != "memory" {
		// Nodes on one broker share channels but not generated secrets.
		log.Warn("this --dev node generated its own token secret or API key; other nodes on the same broker reject its tokens unless they are started with the same FERRY_TOKEN_HMAC_SECRET and FERRY_API_KEY (the banner shows the command)",
			slog.Any("generated", generated))
	}
	// The broker is chosen here, not in package server: an embedder links
	// only the engine it uses. The configuration is checked first (above,
	// and once more with its defaults), so that a bad one is reported as
	// such before any broker is dialed.
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	b, err := open.Open(octx, cfg.Broker, open.Config{NodeID: cfg.NodeID, Logger: log})
	cancel()
	if err != nil {
		return err
	}
	srv, err := server.New(cfg, server.Options{Logger: log, Broker: b})
	if err != nil {
		_ = b.Close()
		return err
	}
	cfg = srv.Config()
	if cfg.Dev {
		printDevBanner(stdout, cfg, generated)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := srv.ReloadTLS(); err != nil {
				log.Error("reload TLS certificate", slog.Any("err", err))
			} else {
				log.Info("TLS certificate reloaded")
			}
		}
	}()
	return srv.Run(ctx)
}

// devSecrets fills in, for a Dev node, the token secret and API key that
// neither the file nor the environment gave, and returns the settings it
// generated. Secrets set through FERRY_TOKEN_HMAC_SECRET / FERRY_API_KEY
// (or the file) are kept, which is how several --dev nodes share them.
func devSecrets(cfg *server.Config) []string {
	if !cfg.Dev {
		return nil
	}
	var generated []string
	if cfg.Token.HMACSecret == "" && cfg.Token.PublicKeyFile == "" && cfg.Token.JWKSURL == "" {
		cfg.Token.HMACSecret = randomHex(32)
		generated = append(generated, "token.hmac_secret")
	}
	if cfg.APIKey == "" {
		cfg.APIKey = randomHex(16)
		generated = append(generated, "api_key")
	}
	return generated
}

// warnUnknownEnv logs each FERRY_* variable that names no setting, with
// the closest setting's variable when one is near (a likely typo).
func warnUnknownEnv(log *slog.Logger, environ []string) {
	var known []string
	for _, f := range config.Fields() {
		known = append(known, f.Env)
	}
	for _, name := range config.UnknownEnv(environ) {
		if notSettings[name] {
			continue
		}
		attrs := []any{slog.String("variable", name)}
		if near := closest(name, known); near != "" {
			attrs = append(attrs, slog.String("did_you_mean", near))
		}
		log.Warn("ignoring an environment variable that names no setting (see ferry serve --help)", attrs...)
	}
}

// closest returns the name of names nearest to s by edit distance, or ""
// when none is within a quarter of s's length.
func closest(s string, names []string) string {
	best, bestD := "", len(s)/4+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between two ASCII names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// serveUsage prints serve's flags, then every setting's variable with its
// default, since most settings have no flag.
func serveUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "usage: ferry serve [flags]")
	fmt.Fprintln(w, "\nflags:")
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := flagAliases[f.Name]; alias {
			return
		}
		fmt.Fprintf(w, "  --%s\n    \t%s\n", f.Name, f.Usage)
	})
	fmt.Fprintln(w, "\nSettings come from defaults < the YAML file (--config) < FERRY_* variables < flags.")
	fmt.Fprintln(w, "Every setting has a variable (docs/configuration.md explains each):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VARIABLE\tYAML PATH\tDEFAULT")
	for _, f := range config.Fields() {
		def := f.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Env, f.Path, def)
	}
	_ = tw.Flush()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// printDevBanner shows what a newcomer needs to try the node at once.
func printDevBanner(w io.Writer, cfg server.Config, generated []string) {
	host := cfg.Addr
	if strings.HasPrefix(host, ":") {
		host = "localhost" + host
	}
	tok, err := auth.Mint([]byte(cfg.Token.HMACSecret), "alice", 24*time.Hour, nil)
	if err != nil {
		tok = "(cannot mint: " + err.Error() + ")"
	}
	fmt.Fprintf(w, `
Ferry is running in development mode on http://%[1]s (not for production).
`, host)
	if len(generated) > 0 {
		fmt.Fprintf(w, "Generated for this run (set FERRY_TOKEN_HMAC_SECRET / FERRY_API_KEY to keep them):\n")
	} else {
		fmt.Fprintf(w, "From the environment or the config file:\n")
	}
	fmt.Fprintf(w, `  token secret:  %[2]s
  API key:       %[3]s

A token for user "alice" (24h):
  %[4]s

Subscribe (or use any WebSocket client on ws://%[1]s/v1/ws, see docs/protocol.md):
  ferry sub --url http://%[1]s --token %[4]s chat:lobby

Publish from a back end:
  curl -s -H 'Authorization: Bearer %[3]s' -d '{"channel":"chat:lobby","data":{"text":"hello"}}' http://%[1]s/v1/api/publish

More nodes that accept the same tokens and key (each node needs the same
secret; on one Redis they share channels, history and sessions):
  FERRY_TOKEN_HMAC_SECRET=%[2]s FERRY_API_KEY=%[3]s FERRY_BROKER=redis://127.0.0.1:6379/0 ferry serve --dev --addr :8082

`, host, cfg.Token.HMACSecret, cfg.APIKey, tok)
}
