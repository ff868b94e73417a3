package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/server"
)

const (
	subPubSecret = "cmd-test-secret-0123456789abcdef0123"
	subPubAPIKey = "cmd-test-api-key"
)

// startSubPubNode runs a node in the test process; the test fails if a
// goroutine of the commands outlives it.
func startSubPubNode(t *testing.T) string {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv, err := server.New(server.Config{
		APIKey: subPubAPIKey,
		Token:  server.TokenConfig{HMACSecret: subPubSecret},
		Namespaces: map[string]server.Namespace{
			"chat":    {HistorySize: 100, Publish: true, Subscribe: true},
			"private": {},
		},
	}, server.Options{Logger: slog.New(slog.DiscardHandler), Broker: memory.New(memory.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return ts.URL
}

func subPubToken(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint([]byte(subPubSecret), user, ttl, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expiredToken is a well-signed token that expired a minute ago.
func subPubExpiredToken(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "old", "exp": time.Now().Add(-time.Minute).Unix(),
	}).SignedString([]byte(subPubSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// subPubBuffer is a bytes.Buffer safe for the goroutines of a command.
type subPubBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *subPubBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *subPubBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func subPubWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runCmd runs the command line in the process and returns its outputs and
// exit code.
func runSubPub(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut subPubBuffer
	err := run(context.Background(), args, &out, &errOut)
	if err != nil {
		code = exitCode(err)
	}
	return out.String(), errOut.String(), code
}

func TestSubAndPub(t *testing.T) {
	url := startSubPubNode(t)
	tok := subPubToken(t, "cli", time.Hour)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var subOut, subErr subPubBuffer
	subDone := make(chan error, 1)
	go func() {
		subDone <- run(ctx, []string{"sub", "--url", url, "--token", tok, "chat:a", "chat:b"}, &subOut, &subErr)
	}()
	subPubWait(t, "sub subscribed", func() bool { return strings.Contains(subErr.String(), "subscribed to chat:b") })

	// Over WebSocket, with the full WebSocket URL; DATA is JSON.
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/v1/ws"
	out, errs, code := runSubPub(t, "pub", "--url", wsURL, "--token", tok, "--priority", "critical", "chat:a", `{"x":1}`)
	if code != 0 {
		t.Fatalf("pub over ws: exit %d: %s", code, errs)
	}
	var res pubResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Channel != "chat:a" || res.Offset != 1 || res.Duplicate {
		t.Fatalf("pub over ws printed %q (%v)", out, err)
	}
	// Through the server API; DATA that is not JSON goes as a string; the
	// same key twice is applied once.
	for i, wantDup := range []bool{false, true} {
		out, errs, code := runSubPub(t, "pub", "--url", url, "--api-key", subPubAPIKey, "--key", "k1", "chat:b", "hello world")
		if code != 0 {
			t.Fatalf("pub %d over the API: exit %d: %s", i, code, errs)
		}
		var res pubResult
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Offset != 1 || res.Duplicate != wantDup {
			t.Fatalf("pub %d over the API printed %q (%v)", i, out, err)
		}
	}

	subPubWait(t, "two lines", func() bool { return strings.Count(subOut.String(), "\n") >= 2 })
	lines := strings.Split(strings.TrimSpace(subOut.String()), "\n")
	want := []struct {
		channel string
		data    string
	}{{"chat:a", `{"x":1}`}, {"chat:b", `"hello world"`}}
	if len(lines) != 2 {
		t.Fatalf("sub printed %q", subOut.String())
	}
	for i, line := range lines {
		var got struct {
			Channel string          `json:"channel"`
			Offset  uint64          `json:"offset"`
			Epoch   string          `json:"epoch"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if got.Channel != want[i].channel || got.Offset != 1 || got.Epoch == "" || string(got.Data) != want[i].data {
			t.Fatalf("line %d: %q", i, line)
		}
		if !strings.HasPrefix(line, `{"channel":`) {
			t.Fatalf("line %d does not start with channel: %q", i, line)
		}
	}
	cancel()
	if err := <-subDone; err != nil {
		t.Fatalf("sub: %v", err)
	}
	if !strings.Contains(subErr.String(), "ferry sub: connected") {
		t.Fatalf("sub stderr: %q", subErr.String())
	}
}

func TestSubAndPubExitCodes(t *testing.T) {
	url := startSubPubNode(t)
	tok := subPubToken(t, "cli", time.Hour)
	cases := []struct {
		name string
		args []string
		code int
		msg  string // in stderr or the error
	}{
		{"sub without channels", []string{"sub"}, 2, "channel"},
		{"sub with a bad codec", []string{"sub", "--codec", "xml", "chat:x"}, 2, "codec"},
		{"sub with a bad channel", []string{"sub", "bad channel"}, 2, "channel"},
		{"sub with a bad URL", []string{"sub", "--url", "ftp://x", "chat:x"}, 2, "url"},
		{"pub with one argument", []string{"pub", "chat:x"}, 2, "CHANNEL and DATA"},
		{"pub with a bad priority", []string{"pub", "--priority", "urgent", "chat:x", "1"}, 2, "priority"},
		{"pub with an unknown flag", []string{"pub", "--bogus", "chat:x", "1"}, 2, "bogus"},
		{"pub with a wrong API key", []string{"pub", "--url", url, "--api-key", "wrong", "chat:x", "1"}, 1, "401"},
		{"pub with a bad token", []string{"pub", "--url", url, "--token", "garbage", "chat:x", "1"}, 1, "401"},
		{"pub where it is forbidden", []string{"pub", "--url", url, "--token", tok, "private:x", "1"}, 1, "403"},
		{"pub to a node that is not there", []string{"pub", "--url", "http://127.0.0.1:1", "--token", tok, "chat:x", "1"}, 1, "gave up"},
		{"sub where it is forbidden", []string{"sub", "--url", url, "--token", tok, "private:x"}, 1, "403"},
		{"sub with an expired token", []string{"sub", "--url", url, "--token", subPubExpiredToken(t), "chat:x"}, 1, "expired"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut subPubBuffer
			err := run(context.Background(), tc.args, &out, &errOut)
			code := 0
			if err != nil {
				code = exitCode(err)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d (err %v, stderr %q)", code, tc.code, err, errOut.String())
			}
			text := errOut.String()
			if err != nil {
				text += err.Error()
			}
			if !strings.Contains(text, tc.msg) {
				t.Fatalf("%q does not mention %q", text, tc.msg)
			}
		})
	}
}
