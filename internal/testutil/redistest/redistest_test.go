package redistest

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustDo(t *testing.T, s *Server, args ...string) any {
	t.Helper()
	v, err := s.Do(args...)
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}

func TestRestartKeepsOrDropsData(t *testing.T) {
	s := Start(t)
	addr := s.Addr
	mustDo(t, s, "SET", "k", "v")

	s.Restart(false)
	if s.Addr != addr {
		t.Fatalf("address changed from %s to %s", addr, s.Addr)
	}
	if got := mustDo(t, s, "GET", "k"); got != "v" {
		t.Fatalf("after Restart(false) GET = %v, want v", got)
	}

	s.Restart(true)
	if got := mustDo(t, s, "GET", "k"); got != nil {
		t.Fatalf("after Restart(true) GET = %v, want nil", got)
	}
}

func TestKillAndStop(t *testing.T) {
	s := Start(t)
	s.Kill()
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart(true)
	if !s.Running() {
		t.Fatal("not running after Restart")
	}
	s.Stop()
	s.Stop() // twice is harmless
	if s.Running() {
		t.Fatal("Running after Stop")
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t)
	s.Pause()
	if !s.Running() {
		t.Fatal("a paused server should count as running")
	}
	s.Resume()
	if got := mustDo(t, s, "PING"); got != "PONG" {
		t.Fatalf("PING after Resume = %v", got)
	}
}

func TestTLS(t *testing.T) {
	s := StartWith(t, Options{TLS: true})
	if !strings.HasPrefix(s.URL(), "rediss://") || s.TLSConfig() == nil {
		t.Fatalf("URL %s, TLSConfig %v: want rediss and a config", s.URL(), s.TLSConfig())
	}
	if got := mustDo(t, s, "PING"); got != "PONG" {
		t.Fatalf("PING over TLS = %v", got)
	}
	// A plain client gets no PONG from a TLS-only port.
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(encodeCommand([]string{"PING"})); err == nil {
		if v, err := readReply(bufio.NewReader(conn)); err == nil {
			t.Fatalf("plain PING on a TLS port answered %v", v)
		}
	}
}

func TestSentinel(t *testing.T) {
	master := Start(t)
	sen := StartSentinel(t, master, "m1")
	got := mustDo(t, sen, "SENTINEL", "get-master-addr-by-name", "m1")
	parts, ok := got.([]any)
	if !ok || len(parts) != 2 || parts[0].(string)+":"+parts[1].(string) != master.Addr {
		t.Fatalf("sentinel reports %v, want %s", got, master.Addr)
	}
}

func TestReplyParsing(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"+OK\r\n", "OK"},
		{":42\r\n", "42"},
		{"$3\r\nfoo\r\n", "foo"},
		{"$-1\r\n", "<nil>"},
		{"*2\r\n$1\r\na\r\n:1\r\n", "[a 1]"},
	}
	for _, tc := range tests {
		v, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		if got := strings.TrimSpace(fmtAny(v)); got != tc.want {
			t.Errorf("%q parsed as %s, want %s", tc.in, got, tc.want)
		}
	}
	if _, err := readReply(bufio.NewReader(strings.NewReader("-ERR bad\r\n"))); err == nil || err.Error() != "ERR bad" {
		t.Fatalf("error reply gave %v", err)
	}
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmtAny(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case int64:
		return strconv.FormatInt(x, 10)
	default:
		return x.(string)
	}
}
