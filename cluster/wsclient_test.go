package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// frame is a server frame as the tests read it: the fields of every type
// they use, decoded independently of Ferry's own protocol package.
type frame struct {
	Type         string          `json:"type"`
	ID           uint32          `json:"id"`
	Session      string          `json:"session"`
	ResumeToken  string          `json:"resume_token"`
	Node         string          `json:"node"`
	User         string          `json:"user"`
	Resumed      bool            `json:"resumed"`
	Channel      string          `json:"channel"`
	Offset       uint64          `json:"offset"`
	Epoch        string          `json:"epoch"`
	Seq          uint64          `json:"seq"`
	Recovered    bool            `json:"recovered"`
	Missed       uint64          `json:"missed"`
	Data         json.RawMessage `json:"data"`
	Code         int             `json:"code"`
	Reason       string          `json:"reason"`
	Reconnect    bool            `json:"reconnect"`
	RetryAfterMS int             `json:"retry_after_ms"`
	SessionToken string          `json:"session_token"`
}

// wsConn is a raw protocol connection over coder/websocket, a WebSocket
// implementation independent of Ferry's.
type wsConn struct {
	c      *websocket.Conn
	frames chan frame
	done   chan struct{}

	mu  sync.Mutex
	err error // why the read loop ended
}

// dialWS opens a WebSocket to url (ws://host/v1/ws) with the JSON
// subprotocol.
func dialWS(ctx context.Context, url string, header http.Header) (*wsConn, error) {
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader:   header,
		Subprotocols: []string{"ferry.v1.json"},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: HTTP %d: %w", url, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.SetReadLimit(4 << 20)
	w := &wsConn{c: c, frames: make(chan frame, 8192), done: make(chan struct{})}
	go w.readLoop()
	return w, nil
}

func (w *wsConn) readLoop() {
	defer close(w.done)
	defer close(w.frames)
	for {
		_, b, err := w.c.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		var fs []frame
		if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
			err = json.Unmarshal(b, &fs)
		} else {
			var f frame
			err = json.Unmarshal(b, &f)
			fs = []frame{f}
		}
		if err != nil {
			w.mu.Lock()
			w.err = fmt.Errorf("undecodable message from the server: %v: %s", err, b)
			w.mu.Unlock()
			_ = w.c.CloseNow()
			return
		}
		for _, f := range fs {
			w.frames <- f
		}
	}
}

// send writes one frame.
func (w *wsConn) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.c.Write(ctx, websocket.MessageText, b)
}

// next returns the next frame, or an error when the connection ended or ctx
// did.
func (w *wsConn) next(ctx context.Context) (frame, error) {
	select {
	case f, ok := <-w.frames:
		if !ok {
			return frame{}, w.closeErr()
		}
		return f, nil
	case <-ctx.Done():
		return frame{}, ctx.Err()
	}
}

// expect skips frames until one of type typ; an error or disconnect frame
// on the way is an error.
func (w *wsConn) expect(ctx context.Context, typ string) (frame, error) {
	for {
		f, err := w.next(ctx)
		if err != nil {
			return f, fmt.Errorf("waiting for %s: %w", typ, err)
		}
		if f.Type == typ {
			return f, nil
		}
		if f.Type == "error" || f.Type == "disconnect" {
			return f, fmt.Errorf("waiting for %s: got %s %d %q", typ, f.Type, f.Code, f.Reason)
		}
	}
}

// closeErr is why the connection ended (nil while it is open).
func (w *wsConn) closeErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// closeCode returns the close code the server sent, -1 when the connection
// ended without one (or has not ended).
func (w *wsConn) closeCode() int {
	var ce websocket.CloseError
	if errors.As(w.closeErr(), &ce) {
		return int(ce.Code)
	}
	return -1
}

// waitClosed waits for the connection to end (draining the frames) and
// returns the close code, -1 without one.
func (w *wsConn) waitClosed(ctx context.Context) (int, error) {
	for {
		select {
		case _, ok := <-w.frames:
			if !ok {
				return w.closeCode(), nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// close ends the connection and waits for the read loop.
func (w *wsConn) close() {
	_ = w.c.Close(websocket.StatusNormalClosure, "")
	<-w.done
}

// connectWS dials url and completes connect with token; it returns the
// connection and its connected frame.
func connectWS(ctx context.Context, url string, header http.Header, token string, extra map[string]any) (*wsConn, frame, error) {
	w, err := dialWS(ctx, url, header)
	if err != nil {
		return nil, frame{}, err
	}
	f := map[string]any{"type": "connect", "id": 1, "token": token, "client": "cluster-test/1"}
	for k, v := range extra {
		f[k] = v
	}
	if err := w.send(ctx, f); err != nil {
		w.close()
		return nil, frame{}, err
	}
	conn, err := w.expect(ctx, "connected")
	if err != nil {
		w.close()
		return nil, frame{}, err
	}
	return w, conn, nil
}

// mustConnect is connectWS that fails the test on error and closes the
// connection when the test ends.
func mustConnect(t testing.TB, url string, header http.Header, token string) (*wsConn, frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	w, f, err := connectWS(ctx, url, header, token, nil)
	if err != nil {
		t.Fatalf("connect through %s: %v", url, err)
	}
	t.Cleanup(w.close)
	return w, f
}

// subscribe subscribes w to ch (after since, when not nil) and returns the
// subscribed frame.
func subscribe(ctx context.Context, w *wsConn, id int, ch string, since *position) (frame, error) {
	f := map[string]any{"type": "subscribe", "id": id, "channel": ch}
	if since != nil {
		f["since"] = map[string]any{"offset": since.Offset, "epoch": since.Epoch}
	}
	if err := w.send(ctx, f); err != nil {
		return frame{}, err
	}
	return w.expect(ctx, "subscribed")
}

// position is a place in a channel's stream.
type position struct {
	Offset uint64
	Epoch  string
}

// withTimeout is a context bounded by the hang guard.
func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), hangGuard)
}

// sleepCtx sleeps d unless ctx ends first; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
