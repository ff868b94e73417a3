package session

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/protocol"
)

// lockedBuffer is a bytes.Buffer for a logger that goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConnectClientNameClippedInLogs: the connect frame's client name is
// the client's own text; the "connection opened" line keeps only
// auth.ClipLimit bytes of it, as it does for origins.
func TestConnectClientNameClippedInLogs(t *testing.T) {
	env, done := idleEnv(t)
	defer done()
	var logs lockedBuffer
	env.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	long := strings.Repeat("x", 60<<10)
	s := New(env, &sinkTransport{}, Handshake{Codec: protocol.JSON, RemoteAddr: "127.0.0.1", Claims: &auth.Claims{Subject: "alice"}, ResumeSeq: -1})
	s.HandleMessage(fmt.Appendf(nil, `{"type":"connect","id":1,"client":%q}`, long))
	waitUntil(t, func() bool { return strings.Contains(logs.String(), "connection opened") })
	got := logs.String()
	if strings.Contains(got, strings.Repeat("x", auth.ClipLimit+1)) {
		t.Fatalf("the log holds more than %d bytes of the client name (%d bytes of log)", auth.ClipLimit, len(got))
	}
	if !strings.Contains(got, strings.Repeat("x", auth.ClipLimit)+"...") {
		t.Fatalf("the log lacks the clipped client name:\n%.400s", got)
	}
}
