package fallback

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/broker/memory"
	"github.com/ferry-io/ferry/internal/auth"
	"github.com/ferry-io/ferry/internal/flow"
	"github.com/ferry-io/ferry/internal/hub"
	"github.com/ferry-io/ferry/internal/node"
	"github.com/ferry-io/ferry/internal/session"
	"github.com/ferry-io/ferry/internal/testutil/wait"
	"github.com/ferry-io/ferry/protocol"
)

// testSessions is a node's HTTP sessions on the memory broker, with every
// channel open to subscribe and publish.
func testSessions(tb testing.TB) *Sessions {
	tb.Helper()
	b := memory.New(memory.Config{NodeID: "sse-test"})
	w := flow.NewWriters(1)
	env := &session.Env{
		NodeID: "sse-test",
		Broker: b,
		KV:     b,
		Hub:    hub.New(b),
		Limits: session.Limits{
			MaxSubscriptions:  16,
			QueueMessages:     64,
			QueueBytes:        1 << 20,
			SlowConsumerGrace: 10 * time.Second,
			HeartbeatInterval: 25 * time.Second,
			HeartbeatTimeout:  10 * time.Second,
			SessionTTL:        time.Minute,
		},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: node.NewRegistry[*session.Session](),
		Writers:  w,
	}
	rules := node.Rules{Subscribe: true, Publish: true}
	env.Node = node.New(node.Config{ID: "sse-test", Broker: b, Hub: env.Hub, Namespaces: node.Namespaces{Fallback: &rules}, Local: env.Registry})
	env.Presence, _ = broker.Broker(b).(broker.Presence)
	env.Users, _ = broker.Broker(b).(broker.Users)
	tb.Cleanup(func() { w.Close(); _ = b.Close() })
	return NewSessions(SessionsConfig{Env: env, SessionTTL: time.Minute, Heartbeat: 35 * time.Second, Logger: env.Logger})
}

// openSession opens a connected session read in mode and returns its
// transport, the connected reply already taken (as POST /v1/sessions does).
func openSession(t *testing.T, ss *Sessions, mode Mode) (*Transport, *session.Session) {
	t.Helper()
	tr, sess := ss.Open("tok-"+t.Name(), mode, session.Handshake{
		Codec: protocol.JSON, Claims: &auth.Claims{Subject: "u"}, ResumeSeq: -1,
	}, "")
	if err := sess.HandleRequest([]byte(`{"type":"connect","id":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, frames := sess.Pull(nil, nil, 1); len(frames) != 1 || frames[0].Type != protocol.TypeConnected {
		t.Fatalf("connect: got %+v", frames)
	}
	t.Cleanup(func() { sess.Close(protocol.CloseNormal, "test over") })
	return tr, sess
}

// sseStream is the client's side of one stream.
type sseStream struct {
	resp *http.Response
	rd   *bufio.Reader
}

// next returns the next event's type, or "comment: TEXT" for a comment.
func (s *sseStream) next(t *testing.T) string {
	t.Helper()
	var ev string
	for {
		line, err := s.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (so far %q)", err, ev)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if ev != "" {
				return ev
			}
		case strings.HasPrefix(line, ":"):
			ev = "comment:" + line[1:]
		case strings.HasPrefix(line, "event: "):
			ev = line[len("event: "):]
		}
	}
}

// ends waits for the stream's end (EOF) within a few seconds.
func (s *sseStream) ends(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s.rd)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("stream ended with %v, want EOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not end")
	}
}

// The two paths of an SSE stream (sse.go) behave the same: the opening
// comment, events, heartbeats, a replaced stream ends, a client that goes
// away is noticed at once, and the session's end is written last. Plain
// HTTP/1.1 takes the connection from net/http (Connection: close, no
// chunking); HTTP/2 over TLS stays on net/http.
func TestSSEStreamOnBothPaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tls       bool
		hijacked  bool
		wantProto int
	}{
		{name: "http1-hijacked", hijacked: true, wantProto: 1},
		{name: "h2-tls", tls: true, wantProto: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := testSessions(t)
			tr, sess := openSession(t, ss, ModeSSE)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Access-Control-Allow-Origin", "*") // as the server's CORS does
				tr.ServeSSE(w, r, -1, 5*time.Second)
			}))
			if tc.tls {
				srv.EnableHTTP2 = true
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			client := srv.Client()
			defer client.CloseIdleConnections()

			open := func() (*sseStream, context.CancelFunc) {
				t.Helper()
				ctx, cancel := context.WithCancel(context.Background())
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = resp.Body.Close() })
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != tc.wantProto {
					t.Fatalf("got %s over %s, want 200 over HTTP/%d", resp.Status, resp.Proto, tc.wantProto)
				}
				for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*"} {
					if got := resp.Header.Get(k); got != want {
						t.Fatalf("%s: %q, want %q", k, got, want)
					}
				}
				if tc.hijacked && (!resp.Close || len(resp.TransferEncoding) > 0) {
					t.Fatalf("hijacked stream: close %v, transfer encoding %v; want a body that ends with the connection", resp.Close, resp.TransferEncoding)
				}
				s := &sseStream{resp: resp, rd: bufio.NewReader(resp.Body)}
				if ev := s.next(t); ev != "comment: ferry" {
					t.Fatalf("first event %q, want the opening comment", ev)
				}
				return s, cancel
			}

			first, cancelFirst := open()
			defer cancelFirst()
			if err := sess.HandleRequest([]byte(`{"type":"subscribe","id":2,"channel":"c1"}`)); err != nil {
				t.Fatal(err)
			}
			if ev := first.next(t); ev != "subscribed" {
				t.Fatalf("got %q, want subscribed", ev)
			}
			_ = tr.Ping()
			if ev := first.next(t); ev != "comment: hb" {
				t.Fatalf("got %q, want a heartbeat comment", ev)
			}

			// A second stream replaces the first, which ends.
			second, cancelSecond := open()
			first.ends(t)
			if err := sess.HandleRequest([]byte(`{"type":"subscribe","id":3,"channel":"c2"}`)); err != nil {
				t.Fatal(err)
			}
			if ev := second.next(t); ev != "subscribed" {
				t.Fatalf("got %q, want subscribed on the new stream", ev)
			}

			// The client goes away: the stream detaches without any write.
			cancelSecond()
			_ = second.resp.Body.Close()
			wait.For(t, "the stream to notice its client left", func() bool { return tr.active.Load() == 0 })

			// The session's end is the last thing a stream gets.
			third, cancelThird := open()
			defer cancelThird()
			sess.Close(protocol.CloseNormal, "bye")
			if ev := third.next(t); ev != "disconnect" {
				t.Fatalf("got %q, want disconnect", ev)
			}
			third.ends(t)
			wait.For(t, "the last stream to detach", func() bool { return tr.active.Load() == 0 })
			if tc.hijacked && tr.parked.Load() != nil {
				t.Fatal("the transport still holds an ended stream")
			}
		})
	}
}
