package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// ClientLibrary connections are opened the way an ordinary application
// opens them, to measure the server under a client it does not choose: a
// general WebSocket library (github.com/coder/websocket, the independent
// client the project's tests use too), one goroutine per connection that
// dials, upgrades with the subprotocol ferry.v1.json and the token in
// "Authorization: Bearer", sends one message holding the JSON array
// [connect, subscribe], waits for "subscribed", then keeps reading (the
// library answers pings) until the run closes it. Nothing is written in the
// same packet as the upgrade, and every frame is parsed whole with
// encoding/json.

// libConn is one ClientLibrary connection.
type libConn struct {
	ws   *websocket.Conn
	node int16
	ch   int32
	// acct counts the connection's deliveries as the bench's own
	// clients do (offsets, latency, wire bytes); only its reading
	// goroutine touches it until the run closes the connection.
	acct *conn
}

// libFrame is the part of a server frame the library client looks at.
type libFrame struct {
	Type    string `json:"type"`
	ID      uint32 `json:"id"`
	Code    int    `json:"code"`
	Message string `json:"message"`
	Offset  uint64 `json:"offset"`
}

// dialLibrary opens connection i with the library, subscribed to its
// channel.
func (g *group) dialLibrary(ctx context.Context, i int) (*libConn, error) {
	c := &libConn{}
	c.node, c.ch = g.place(i)
	t := g.targets[c.node]
	ctx, cancel := context.WithTimeout(ctx, g.spec.ConnectTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+g.tokens[i])
	ws, _, err := websocket.Dial(ctx, "ws://"+t.Host+t.WSPath, &websocket.DialOptions{
		HTTPClient:   g.lib[i%len(g.lib)],
		HTTPHeader:   h,
		Subprotocols: []string{g.wire.codec.Name()},
	})
	if err != nil {
		return nil, failure("handshake", err)
	}
	fail := func(kind string, err error) (*libConn, error) {
		ws.CloseNow()
		return nil, failure(kind, err)
	}
	if got := ws.Subprotocol(); got != g.wire.codec.Name() {
		return fail("handshake", fmt.Errorf("%w: subprotocol %q", ErrHandshake, got))
	}
	hello, err := json.Marshal([]map[string]any{
		{"type": "connect", "id": 1, "client": "ferry-bench-library/1"},
		{"type": "subscribe", "id": 2, "channel": g.spec.Channels[c.ch]},
	})
	if err != nil {
		return fail("encode", err)
	}
	if err := ws.Write(ctx, websocket.MessageText, hello); err != nil {
		return fail("write", err)
	}
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != -1 {
				return fail("closed", fmt.Errorf("%w: code %d", ErrClosed, code))
			}
			return fail("read", err)
		}
		frames, err := libFrames(msg)
		if err != nil {
			return fail("protocol", err)
		}
		for _, f := range frames {
			switch {
			case f.Type == "error":
				return fail("refused", fmt.Errorf("%w: %d %s", ErrRefused, f.Code, f.Message))
			case f.Type == "subscribed" && f.ID == 2:
				c.ws = ws
				c.acct = &conn{g: g, idx: int32(i), node: c.node, ch: c.ch, fd: -1, base: f.Offset,
					state: stConnected | stSubscribed, rc: g.shards[i%len(g.shards)]}
				return c, nil
			}
		}
	}
}

// libFrames decodes one server message: a frame or an array of frames.
func libFrames(msg []byte) ([]libFrame, error) {
	if s := strings.TrimSpace(string(msg)); strings.HasPrefix(s, "[") {
		var fs []libFrame
		err := json.Unmarshal(msg, &fs)
		return fs, err
	}
	var f libFrame
	err := json.Unmarshal(msg, &f)
	return []libFrame{f}, err
}

// attachLibrary keeps c open with its own reading goroutine, as an
// application does: every message is decoded with encoding/json, then
// counted (deliveries, latency) as the bench's own clients count them. The
// goroutine ends when the run closes c or the server does.
func (g *group) attachLibrary(i int, c *libConn) {
	g.open.Add(1)
	g.libConns[i].Store(c)
	g.readers.Add(1)
	go func() {
		defer g.readers.Done()
		for {
			_, msg, err := c.ws.Read(context.Background())
			if err == nil {
				c.acct.now = time.Now().UnixNano()
				if _, derr := libFrames(msg); derr != nil {
					err = derr // not a frame: the server broke the protocol
				} else {
					c.acct.message(msg)
				}
			}
			if err != nil {
				if !g.stopping.Load() {
					g.open.Add(-1)
					code := int(websocket.CloseStatus(err))
					g.lostMu.Lock()
					g.lost[fmt.Sprint(code)]++
					g.lostMu.Unlock()
				}
				return
			}
		}
	}()
}

// countLibrary adds the library connections' counts to rep, once their
// goroutines have ended.
func (g *group) countLibrary(rep *closeReport) {
	for i := range g.libConns {
		c := g.libConns[i].Load()
		if c == nil || c.acct == nil || c.ch < 0 || rep.Counts == nil {
			continue
		}
		cc := &rep.Counts[c.node][c.ch]
		cc.Subs++
		cc.Unique += c.acct.unique
		cc.Dups += c.acct.dups
		cc.WireBytes += c.acct.wireBytes
	}
}

// closeLibrary closes every library connection at once (no close
// handshake: the run is over), which ends their goroutines.
func (g *group) closeLibrary() {
	for i := range g.libConns {
		if c := g.libConns[i].Load(); c != nil {
			c.ws.CloseNow()
		}
	}
}
