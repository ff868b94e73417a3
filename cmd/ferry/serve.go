package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-io/ferry/broker/open"
	"github.com/ferry-io/ferry/cmd/ferry/internal/config"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/server"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	cfgPath := fs.String("config", "", "YAML config file")
	dev := fs.Bool("dev", false, "development mode: memory broker, open namespaces, generated secrets")
	addr := fs.String("addr", "", "listen address (default :8080)")
	brokerURL := fs.String("broker", "", "broker: memory (default), redis://host:port/db, nats://host:port or amqp://user:pass@host:port/vhost (RabbitMQ)")
	nodeID := fs.String("node-id", "", "node id (default random)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath, os.Environ())
	if err != nil {
		return err
	}
	flags := map[string]string{"addr": *addr, "broker": *brokerURL, "node_id": *nodeID, "logs.level": *logLevel}
	for path, v := range flags {
		if v != "" {
			if err := config.ApplyFlag(&cfg, path, v); err != nil {
				return usageError{err.Error()}
			}
		}
	}
	if *dev {
		cfg.Dev = true
	}
	var generated []string
	if cfg.Dev {
		if cfg.Token.HMACSecret == "" && cfg.Token.PublicKeyFile == "" && cfg.Token.JWKSURL == "" {
			cfg.Token.HMACSecret = randomHex(32)
			generated = append(generated, "token.hmac_secret")
		}
		if cfg.APIKey == "" {
			cfg.APIKey = randomHex(16)
			generated = append(generated, "api_key")
		}
	}
	log := newLogger(stderr, cfg.Logs.Level)
	// The broker is chosen here, not in package server: an embedder links
	// only the engine it uses. The configuration is checked first, so that
	// a bad one is reported as such before any broker is dialed.
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
	}
	fmt.Fprintf(w, `  token secret:  %[2]s
  API key:       %[3]s

A token for user "alice" (24h):
  %[4]s

Subscribe (or use any WebSocket client on ws://%[1]s/v1/ws, see docs/protocol.md):
  ferry sub --url http://%[1]s --token %[4]s chat:lobby

Publish from a back end:
  curl -s -H 'Authorization: Bearer %[3]s' -d '{"channel":"chat:lobby","data":{"text":"hello"}}' http://%[1]s/v1/api/publish

`, host, cfg.Token.HMACSecret, cfg.APIKey, tok)
}
