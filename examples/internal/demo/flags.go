package demo

import (
	"errors"
	"flag"
	"os"
	"time"

	"github.com/ferry-io/ferry/internal/auth"
)

// Options are the flags every example app takes. Each field's default is
// stated on its flag; secrets default to the environment variables that
// `ferry serve` itself reads, so one shell can start both.
type Options struct {
	// Addr is where the page server listens. Default 127.0.0.1:8090
	// (127.0.0.1:0 picks a free port; the chosen URL is printed).
	Addr string
	// Ferry is the node's base URL. Default http://127.0.0.1:8080.
	Ferry string
	// APIKey authenticates server API calls. Default $FERRY_API_KEY.
	APIKey string
	// Secret signs the visitors' HS256 tokens. Default $FERRY_TOKEN_HMAC_SECRET.
	Secret string
	// Web is the app's page directory (index.html and dist/).
	Web string
	// BlockWebSocket makes the page server refuse WebSocket upgrades, as a
	// proxy that does not forward Upgrade would: the SDK falls back to SSE
	// or long-poll. Default false.
	BlockWebSocket bool
}

// Register adds the shared flags to fs; web is the app's default page dir.
func Register(fs *flag.FlagSet, web string) *Options {
	o := &Options{}
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8090", "page server listen address (127.0.0.1:0: a free port)")
	fs.StringVar(&o.Ferry, "ferry", "http://127.0.0.1:8080", "base URL of the Ferry node (or of the proxy in front of the nodes)")
	fs.StringVar(&o.APIKey, "api-key", os.Getenv("FERRY_API_KEY"), "server API key (default $FERRY_API_KEY)")
	fs.StringVar(&o.Secret, "secret", os.Getenv("FERRY_TOKEN_HMAC_SECRET"), "HS256 secret for visitors' tokens (default $FERRY_TOKEN_HMAC_SECRET)")
	fs.StringVar(&o.Web, "web", web, "directory of the page (index.html, dist/)")
	fs.BoolVar(&o.BlockWebSocket, "block-websocket", false, "refuse WebSocket upgrades (the page falls back to SSE / long-poll)")
	return o
}

// Check reports the first missing required option.
func (o *Options) Check() error {
	switch {
	case o.Secret == "":
		return errors.New("no token secret: set FERRY_TOKEN_HMAC_SECRET or --secret (the same the node verifies with)")
	case o.APIKey == "":
		return errors.New("no API key: set FERRY_API_KEY or --api-key (the same the node was started with)")
	case o.Ferry == "":
		return errors.New("--ferry: empty node URL")
	}
	return nil
}

// BackendToken mints the app's own token: user "backend-NAME", allowed to
// publish on the given channel patterns (and subscribe to them).
func (o *Options) BackendToken(name string, patterns ...string) (string, error) {
	return auth.Mint([]byte(o.Secret), "backend-"+name, 24*time.Hour, &auth.ChannelsClaim{Publish: patterns, Subscribe: patterns})
}
