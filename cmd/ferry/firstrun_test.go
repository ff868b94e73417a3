package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferry-io/ferry/server"
)

// The traps a newcomer met on a first run, one test each.

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"token", "-h"}} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if code := exitCode(err); err != nil && code != 0 {
			t.Errorf("ferry %v: exit %d (%v), want 0", args, code, err)
		}
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Errorf("ferry %v: %v", args, err)
		}
	}
	if code := exitCode(usageError{"x"}); code != 2 {
		t.Errorf("usage error: exit %d, want 2", code)
	}
}

func TestServeHelpListsVariables(t *testing.T) {
	var out, errOut bytes.Buffer
	_ = run(context.Background(), []string{"serve", "--help"}, &out, &errOut)
	help := out.String() + errOut.String()
	for _, want := range []string{"FERRY_LOGS_LEVEL", "logs.level", "FERRY_TOKEN_HMAC_SECRET", "FERRY_HEARTBEAT_INTERVAL", "25s", "--logs-level", "--max-connections"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve --help lacks %q:\n%s", want, help)
		}
	}
	if strings.Contains(help, "--log-level") {
		t.Errorf("serve --help shows the old alias --log-level:\n%s", help)
	}
}

func TestTokenDefaultTTLIsAnHour(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "--sub", "alice", "--secret", subPubSecret}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	claims := jwt.MapClaims{}
	if _, err := jwt.ParseWithClaims(strings.TrimSpace(out.String()), claims, func(*jwt.Token) (any, error) { return []byte(subPubSecret), nil }); err != nil {
		t.Fatal(err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		t.Fatalf("token without expiry (%v)", err)
	}
	if left := time.Until(exp.Time); left < 55*time.Minute || left > 61*time.Minute {
		t.Errorf("token expires in %v, want about 1h", left)
	}
}

func TestServeRefusesShortSecret(t *testing.T) {
	t.Setenv("FERRY_TOKEN_HMAC_SECRET", "x")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "must be at least 32") {
		t.Fatalf("serve with a 1-byte secret: %v", err)
	}
}

// TestServeReportsEveryConfigProblem: a type error and a range error in
// one file come back together, each with file:line.
func TestServeReportsEveryConfigProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte("dev: true\nmax_connections: -1\nheartbeat:\n  interval: soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--config", path, "--logs-level", "loud"}, &out, &errOut)
	if err == nil {
		t.Fatal("serve started")
	}
	for _, want := range []string{path + ":2: max_connections", path + ":4: heartbeat.interval", "--logs-level: logs.level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestDevNodesShareSecretsFromEnv: --dev keeps the secret and key of the
// environment, so a token minted for one dev node works on the next.
func TestDevNodesShareSecretsFromEnv(t *testing.T) {
	const secret = "shared-dev-secret-0123456789abcdef0123"
	var nodes [2]server.Config
	for i := range nodes {
		nodes[i] = server.Config{Dev: true, Token: server.TokenConfig{HMACSecret: secret}, APIKey: "shared-key"}
		if gen := devSecrets(&nodes[i]); len(gen) != 0 {
			t.Fatalf("node %d generated %v despite the environment", i, gen)
		}
	}
	if nodes[0].Token.HMACSecret != nodes[1].Token.HMACSecret || nodes[0].APIKey != nodes[1].APIKey {
		t.Fatal("dev nodes disagree")
	}
	var blank server.Config
	blank.Dev = true
	if gen := devSecrets(&blank); len(gen) != 2 || len(blank.Token.HMACSecret) < server.MinHMACSecretBytes {
		t.Fatalf("generated %v, secret %d bytes", gen, len(blank.Token.HMACSecret))
	}
	var banner bytes.Buffer
	printDevBanner(&banner, blank, []string{"token.hmac_secret", "api_key"})
	if want := "FERRY_TOKEN_HMAC_SECRET=" + blank.Token.HMACSecret + " FERRY_API_KEY=" + blank.APIKey; !strings.Contains(banner.String(), want) {
		t.Errorf("banner does not tell how to start another node with %q:\n%s", want, banner.String())
	}
}

func TestUnknownVariableWarned(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	warnUnknownEnv(log, []string{"FERRY_LOG_LEVEL=debug", "FERRY_TOKEN=abc", "FERRY_LOGS_LEVEL=info", "FERRY_ZZZZZZZZZZZZZZZZZZZZ=1"})
	got := logs.String()
	if !strings.Contains(got, `"variable":"FERRY_LOG_LEVEL"`) || !strings.Contains(got, `"did_you_mean":"FERRY_LOGS_LEVEL"`) {
		t.Errorf("no warning with a suggestion for FERRY_LOG_LEVEL:\n%s", got)
	}
	if !strings.Contains(got, "FERRY_ZZZZ") {
		t.Errorf("no warning for an unrelated unknown variable:\n%s", got)
	}
	if strings.Contains(got, `"variable":"FERRY_TOKEN"`) || strings.Contains(got, `"variable":"FERRY_LOGS_LEVEL"`) {
		t.Errorf("warned about a known variable:\n%s", got)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "ferry ") || !strings.Contains(got, "go1.") {
		t.Errorf("ferry version = %q", got)
	}
}

func TestHealth(t *testing.T) {
	base := startSubPubNode(t)
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"health", "--url", base + "/healthz"}, &out, &errOut); err != nil {
		t.Fatalf("health of a running node: %v", err)
	}
	if err := run(context.Background(), []string{"health", "--url", base + "/no-such-endpoint"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("health of a missing endpoint: %v", err)
	}
}
