package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferry-io/ferry/cmd/ferry/internal/config"
	"github.com/ferry-io/ferry/internal/auth"
)

func runToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token", stderr)
	sub := fs.String("sub", "", "user id (the token's sub claim); required")
	ttl := fs.Duration("ttl", time.Hour, "lifetime, e.g. 30m or 24h (0: never expires, not recommended)")
	channels := fs.String("channels", "", "comma-separated channel patterns the user may subscribe and publish to (e.g. 'room:*,user:{sub}')")
	subscribe := fs.String("subscribe", "", "comma-separated patterns for subscribe only")
	publish := fs.String("publish", "", "comma-separated patterns for publish only")
	cfgPath := fs.String("config", "", "YAML config file with token.hmac_secret")
	secret := fs.String("secret", "", "HMAC secret (default: from --config or FERRY_TOKEN_HMAC_SECRET)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sub == "" {
		return usageError{"token: --sub is required"}
	}
	if *ttl < 0 {
		return usageError{"token: --ttl must not be negative"}
	}
	key := *secret
	if key == "" {
		cfg, err := config.Load(*cfgPath, os.Environ())
		if err != nil {
			return err
		}
		key = cfg.Token.HMACSecret
	}
	if key == "" {
		return errors.New("token: no HMAC secret: set FERRY_TOKEN_HMAC_SECRET, token.hmac_secret in --config, or --secret")
	}
	var claim *auth.ChannelsClaim
	if *channels != "" || *subscribe != "" || *publish != "" {
		claim = &auth.ChannelsClaim{
			Subscribe: append(splitList(*channels), splitList(*subscribe)...),
			Publish:   append(splitList(*channels), splitList(*publish)...),
		}
	}
	tok, err := auth.Mint([]byte(key), *sub, *ttl, claim)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "check" {
		return usageError{"usage: ferry config check FILE"}
	}
	if len(args) != 2 {
		return usageError{"usage: ferry config check FILE"}
	}
	if err := config.Check(args[1], os.Environ()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[1])
	return nil
}
