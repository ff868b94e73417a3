package fallback

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// A poll that must wait answers the same whether it waits in net/http (no
// handoff) or off it (poll.go): [] when the hold runs out, the frames that
// came while it was held, and nothing (a detach) when the client goes
// away; off net/http the connection is handed back after each answer and
// never after the client left.
func TestHeldPollOnBothPaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		handoff   bool
		wantHands int
	}{
		{name: "in-net-http"},
		{name: "off-net-http", handoff: true, wantHands: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := testSessions(t)
			tr, sess := openSession(t, ss, ModePoll)
			handed := make(chan net.Conn, 4)
			var handoff Handoff
			if tc.handoff {
				handoff = func(c net.Conn) { handed <- c }
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hold := 50 * time.Millisecond
				if r.URL.Query().Has("long") {
					hold = 10 * time.Second
				}
				tr.Poll(w, r, -1, hold, handoff)
			}))
			defer srv.Close()
			// Each poll on a connection of its own: a connection handed
			// back goes to the handed channel, where nothing serves it.
			poll := func(ctx context.Context, query string) ([]map[string]any, error) {
				client := &http.Client{Transport: &http.Transport{}}
				defer client.CloseIdleConnections()
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+query, nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					return nil, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return nil, err
				}
				var frames []map[string]any
				if err := json.Unmarshal(b, &frames); err != nil {
					t.Fatalf("answer %q: %v", b, err)
				}
				return frames, nil
			}

			// held: a poll waits (off net/http when it can).
			held := func() bool {
				return tr.active.Load() == 1 && (!tc.handoff || tr.parked.Load() != nil)
			}
			if frames, err := poll(context.Background(), ""); err != nil || len(frames) != 0 {
				t.Fatalf("poll with nothing ready: %v %v, want []", frames, err)
			}
			got := make(chan []map[string]any, 1)
			go func() {
				frames, err := poll(context.Background(), "?long")
				if err != nil {
					t.Error(err)
				}
				got <- frames
			}()
			wait.For(t, "the poll to be held", held)
			if err := sess.HandleRequest([]byte(`{"type":"subscribe","id":2,"channel":"c1"}`)); err != nil {
				t.Fatal(err)
			}
			if frames := <-got; len(frames) != 1 || frames[0]["type"] != "subscribed" {
				t.Fatalf("held poll: %v, want the subscribed reply", frames)
			}

			// The client goes away while its poll is held.
			ctx, cancel := context.WithCancel(context.Background())
			gone := make(chan error, 1)
			go func() {
				_, err := poll(ctx, "?long")
				gone <- err
			}()
			wait.For(t, "the poll to be held", held)
			cancel()
			<-gone
			wait.For(t, "the held poll to notice its client left", func() bool { return tr.active.Load() == 0 })

			// The two answered polls hand their connections back (after
			// they detached); the one whose client left never does.
			for i := range tc.wantHands {
				select {
				case c := <-handed:
					_ = c.Close()
				case <-time.After(10 * time.Second):
					t.Fatalf("%d connections handed back, want %d", i, tc.wantHands)
				}
			}
			select {
			case c := <-handed:
				_ = c.Close()
				t.Fatalf("more than %d connections handed back", tc.wantHands)
			default:
			}
		})
	}
}
