package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

// checkFanout asserts what every sane fanout run shows.
func checkFanout(t *testing.T, res *Result, subs int) {
	t.Helper()
	f := res.Fanout
	if f == nil {
		t.Fatal("no fanout result")
	}
	if res.Connect.Opened != subs || res.Connect.Failed != 0 {
		t.Fatalf("opened %d, failed %d (%v), want %d, 0", res.Connect.Opened, res.Connect.Failed, res.Connect.Errors, subs)
	}
	if f.Published == 0 {
		t.Fatalf("nothing published (errors %v)", f.PublishErrors)
	}
	if len(f.PublishErrors) != 0 {
		t.Errorf("publish errors: %v", f.PublishErrors)
	}
	if want := int64(subs) * f.Published; f.Expected != want || f.Deliveries != want {
		t.Errorf("expected %d, delivered %d; want both %d (subs %d x published %d)", f.Expected, f.Deliveries, want, subs, f.Published)
	}
	if f.Missing != 0 || f.Duplicates != 0 {
		t.Errorf("missing %d, duplicates %d; want 0, 0", f.Missing, f.Duplicates)
	}
	l := f.Latency
	if l.Count != f.Deliveries {
		t.Errorf("latency count %d, want %d", l.Count, f.Deliveries)
	}
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("percentiles out of order: %+v", l)
	}
	if f.DeliveriesPerSec <= 0 || f.ServerCPUSeconds <= 0 || f.CPUPerDeliveryUS <= 0 {
		t.Errorf("missing rates: %+v", f)
	}
	if len(res.Lost) != 0 {
		t.Errorf("connections lost: %v", res.Lost)
	}
}

func TestFanout(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	for _, client := range []ClientKind{ClientReactor, ClientGoroutine, ClientLibrary} {
		t.Run(string(client), func(t *testing.T) {
			cfg := baseConfig(ModeFanout, url)
			cfg.Client = client
			res := runBench(t, cfg)
			checkFanout(t, res, cfg.Conns)
			if res.Nodes[0].After == nil || res.Nodes[0].After.Connections < cfg.Conns {
				t.Errorf("server stats: %+v, want %d connections", res.Nodes[0].After, cfg.Conns)
			}
		})
	}
}

func TestFanoutWebSocketURLAndChannels(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeFanout, strings.Replace(url, "http://", "ws://", 1)+"/v1/ws")
	cfg.Channels = 3
	cfg.Payload = 300
	res := runBench(t, cfg)
	f := res.Fanout
	if res.Connect.Opened != cfg.Conns || f == nil || f.Published == 0 {
		t.Fatalf("opened %d, fanout %+v", res.Connect.Opened, f)
	}
	// 200 subscribers over 3 channels and publishes round-robin: each
	// subscriber expects the publishes of its own channel only.
	if f.Expected == 0 || f.Expected >= int64(cfg.Conns)*f.Published {
		t.Errorf("expected %d: channels not taken into account", f.Expected)
	}
	if f.Deliveries != f.Expected || f.Missing != 0 || f.Duplicates != 0 {
		t.Errorf("delivered %d of %d, missing %d, duplicates %d", f.Deliveries, f.Expected, f.Missing, f.Duplicates)
	}
}

func TestFanoutPublishWS(t *testing.T) {
	t.Parallel()
	url := startNode(t, func(c *server.Config) {
		c.ClientPublish = server.ClientPublishConfig{Rate: 1000, Burst: 1000}
	})
	cfg := baseConfig(ModeFanout, url)
	cfg.PublishVia = PublishWS
	cfg.Publishers = 2
	res := runBench(t, cfg)
	checkFanout(t, res, cfg.Conns)
}

func TestFanoutWorkers(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeFanout, url)
	cfg.Workers = 2
	cfg.WorkerCommand = []string{os.Args[0]}
	cfg.WorkerEnv = []string{workerEnv}
	res := runBench(t, cfg)
	checkFanout(t, res, cfg.Conns)
	if res.ClientSide.Processes != 3 {
		t.Errorf("client processes %d, want 3", res.ClientSide.Processes)
	}
}

func TestConnect(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeConnect, url)
	cfg.Conns = 300
	res := runBench(t, cfg)
	c := res.Connect
	if c.Opened != 300 || c.Failed != 0 {
		t.Fatalf("opened %d failed %d (%v)", c.Opened, c.Failed, c.Errors)
	}
	if c.PerSecond <= 0 || c.Handshake.Count != 300 || c.Handshake.P50 > c.Handshake.Max {
		t.Errorf("connect figures: %+v", c)
	}
	if after := res.Nodes[0].After; after == nil || after.Connections != 300 {
		t.Errorf("server saw %+v, want 300 connections", after)
	}
}

// TestConnectLibrary: the library client (coder/websocket, one goroutine
// per connection, [connect, subscribe] in one message) opens and
// subscribes every connection, with a user per connection and with one
// user for all of them on a server whose per-user limit is off.
func TestConnectLibrary(t *testing.T) {
	t.Parallel()
	url := startNode(t, func(c *server.Config) { c.MaxConnectionsPerUser = 0 })
	for _, oneUser := range []bool{false, true} {
		t.Run(fmt.Sprint("one user ", oneUser), func(t *testing.T) {
			cfg := baseConfig(ModeConnect, url)
			cfg.Conns = 200
			cfg.Client = ClientLibrary
			cfg.Concurrency = 64
			cfg.OneUser = oneUser
			cfg.SourceAddrs = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
			res := runBench(t, cfg)
			c := res.Connect
			if c.Opened != 200 || c.Failed != 0 {
				t.Fatalf("opened %d failed %d (%v)", c.Opened, c.Failed, c.Errors)
			}
			if res.Client != ClientLibrary || res.OneUser != oneUser || c.Handshake.Count != 200 {
				t.Errorf("client %q, one user %v, handshakes %d", res.Client, res.OneUser, c.Handshake.Count)
			}
			after := res.Nodes[0].After
			if after == nil || after.Connections != 200 || after.Channels != 1 {
				t.Errorf("server saw %+v, want 200 connections on 1 channel", after)
			}
			if res.Lost != nil {
				t.Errorf("connections lost during the run: %v", res.Lost)
			}
		})
	}
}

// TestLibraryClientJSONOnly: the library client refuses other codecs.
func TestLibraryClientJSONOnly(t *testing.T) {
	cfg := baseConfig(ModeConnect, "http://127.0.0.1:1")
	cfg.Client, cfg.Codec = ClientLibrary, CodecMsgpack
	if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("Run = %v, want ErrConfig", err)
	}
}

func TestConnectRefusedToken(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeConnect, url)
	cfg.Conns = 20
	cfg.Secret = "not-the-server-secret-0123456789ab"
	res := runBench(t, cfg)
	if res.Connect.Opened != 0 || res.Connect.Failed != 20 {
		t.Fatalf("opened %d failed %d, want 0 and 20", res.Connect.Opened, res.Connect.Failed)
	}
	if res.Connect.Errors["handshake: bench: handshake refused: HTTP 401 Unauthorized"] != 20 {
		t.Errorf("errors %v, want 20 HTTP 401", res.Connect.Errors)
	}
}

func TestIdleAnswersPings(t *testing.T) {
	// Pings every 300ms, so that every connection is pinged within the
	// run; the timeout leaves a loaded 2-core machine (where a process can
	// stall for longer than a ping interval) room to answer: a connection
	// that does not answer at all is still closed with 4012 and shows in
	// Lost.
	url := startNode(t, func(c *server.Config) {
		c.Heartbeat = server.HeartbeatConfig{Interval: 300 * time.Millisecond, Timeout: 5 * time.Second}
	})
	for _, client := range []ClientKind{ClientReactor, ClientGoroutine} {
		t.Run(string(client), func(t *testing.T) {
			cfg := baseConfig(ModeIdle, url)
			cfg.Client = client
			cfg.Duration = 2 * time.Second
			cfg.SettleTimeout = time.Second
			res := runBench(t, cfg)
			i := res.Idle
			if i == nil || res.Connect.Opened != cfg.Conns {
				// Say why: the errors of the connections that failed to
				// open, and those lost while idle.
				t.Fatalf("opened %d of %d, failed %d: errors %v; lost %v; idle %+v",
					res.Connect.Opened, cfg.Conns, res.Connect.Failed, res.Connect.Errors, res.Lost, i)
			}
			if i.Pings < uint64(cfg.Conns) {
				t.Errorf("%d pings answered, want at least one per connection", i.Pings)
			}
			// Heartbeat timeouts (4012) would show here.
			if len(res.Lost) != 0 {
				t.Errorf("connections lost: %v", res.Lost)
			}
			// The node runs in this process, so per-connection figures mix
			// server and client; only check that they were measured.
			if n := res.Nodes[0]; n.Before == nil || n.After == nil || n.After.Connections != cfg.Conns {
				t.Errorf("server stats before %+v after %+v, want %d connections", n.Before, n.After, cfg.Conns)
			}
			if res.Channels != 2 {
				t.Errorf("channels %d, want conns/100 = 2", res.Channels)
			}
			// Heartbeats every 300 ms cost the node some CPU.
			if i.ServerCPUCores <= 0 {
				t.Errorf("server CPU while holding: %v cores, want > 0", i.ServerCPUCores)
			}
		})
	}
}

// TestIdleFallbacks: SSE streams and long-poll sessions are opened,
// subscribed, counted by the server and held without loss.
func TestIdleFallbacks(t *testing.T) {
	for _, tr := range []Transport{TransportSSE, TransportPoll} {
		t.Run(string(tr), func(t *testing.T) {
			// A node each: closed sessions stay until their liveness
			// timeout.
			url := startNode(t, func(c *server.Config) {
				c.Heartbeat = server.HeartbeatConfig{Interval: 300 * time.Millisecond, Timeout: 5 * time.Second}
			})
			cfg := baseConfig(ModeIdle, url)
			cfg.Transport = tr
			cfg.Conns = 50
			cfg.Duration = 2 * time.Second
			cfg.SettleTimeout = time.Second
			res := runBench(t, cfg)
			if res.Transport != tr || res.Idle == nil || res.Connect.Opened != cfg.Conns {
				t.Fatalf("transport %q: opened %d of %d, failed %d: errors %v; lost %v; idle %+v",
					res.Transport, res.Connect.Opened, cfg.Conns, res.Connect.Failed, res.Connect.Errors, res.Lost, res.Idle)
			}
			if len(res.Lost) != 0 {
				t.Errorf("sessions lost: %v", res.Lost)
			}
			if n := res.Nodes[0]; n.After == nil || n.After.Connections != cfg.Conns {
				t.Errorf("server stats after %+v, want %d connections", n.After, cfg.Conns)
			}
			// The server writes ": hb" on a quiet stream at each sweep.
			if tr == TransportSSE && res.Idle.Pings < uint64(cfg.Conns) {
				t.Errorf("%d heartbeat comments read, want at least one per stream", res.Idle.Pings)
			}
		})
	}
}

// TestPublishersBehindStopAtTheDuration: one publisher cannot keep a
// rate far above what it can send; it stops after the duration (and its
// grace) instead of sending the whole schedule, and counts the rest.
func TestPublishersBehindStopAtTheDuration(t *testing.T) {
	url := startNode(t, nil)
	cfg := baseConfig(ModeFanout, url)
	cfg.Conns = 10
	cfg.Publishers = 1
	cfg.Rate = 1e6 // a million scheduled in one second
	cfg.Duration = time.Second
	res := runBench(t, cfg)
	f := res.Fanout
	if f == nil || f.Published == 0 || f.PublishUnsent == 0 {
		t.Fatalf("fanout %+v: want some published and the rest unsent", f)
	}
	failed := int64(0)
	for _, n := range f.PublishErrors {
		failed += int64(n)
	}
	if got := f.Published + f.PublishUnsent + failed; got != 1e6 {
		t.Errorf("published %d + unsent %d + failed %d = %d: want the 1,000,000 scheduled", f.Published, f.PublishUnsent, failed, got)
	}
}

func TestClusterSpreadsConnections(t *testing.T) {
	t.Parallel()
	a, b := startNode(t, nil), startNode(t, nil)
	cfg := baseConfig(ModeCluster, a, b)
	cfg.PublishTo = PublishAll // independent memory nodes: publish to each
	cfg.Workers = 2
	cfg.WorkerCommand = []string{os.Args[0]}
	cfg.WorkerEnv = []string{workerEnv}
	res := runBench(t, cfg)
	if len(res.Nodes) != 2 {
		t.Fatalf("%d nodes", len(res.Nodes))
	}
	for _, n := range res.Nodes {
		if n.Conns != cfg.Conns/2 {
			t.Errorf("node %s: %d conns, want %d", n.URL, n.Conns, cfg.Conns/2)
		}
		if n.After == nil || n.After.Connections != cfg.Conns/2 {
			t.Errorf("node %s saw %+v", n.URL, n.After)
		}
		if n.Expected == 0 || n.Deliveries != n.Expected || n.Missing != 0 || n.Duplicates != 0 {
			t.Errorf("node %s: %+v", n.URL, n)
		}
	}
	f := res.Fanout
	if f == nil || f.Deliveries != f.Expected || f.Expected != int64(cfg.Conns)*f.Published/2 {
		t.Errorf("fanout %+v: want every subscriber to get its node's publishes", f)
	}
}

func TestResultJSON(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeFanout, url)
	cfg.Conns = 20
	cfg.Duration = time.Second
	res := runBench(t, cfg)
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("result JSON does not parse: %v", err)
	}
	fan, _ := back["fanout"].(map[string]any)
	lat, _ := fan["latency"].(map[string]any)
	if back["mode"] != "fanout" || fan["deliveries"] == nil || lat["p99_ms"] == nil {
		t.Errorf("result JSON lacks fields: %s", b)
	}
	var txt bytes.Buffer
	if err := res.WriteText(&txt); err != nil || !strings.Contains(txt.String(), "deliveries/s") {
		t.Errorf("text summary: %v\n%s", err, txt.String())
	}
}

func TestProgressLines(t *testing.T) {
	t.Parallel()
	url := startNode(t, nil)
	cfg := baseConfig(ModeFanout, url)
	cfg.Conns = 10
	var out syncBuffer
	cfg.Progress = &out
	runBench(t, cfg)
	if !strings.Contains(out.String(), "delivered") {
		t.Errorf("no progress line: %q", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFanoutCodecs runs fanout with each codec, publishing over WebSocket
// in that codec too, and checks that every delivery arrives and that the
// bytes on the wire are counted.
func TestFanoutCodecs(t *testing.T) {
	t.Parallel()
	url := startNode(t, func(c *server.Config) {
		c.ClientPublish = server.ClientPublishConfig{Rate: 1000, Burst: 1000}
	})
	for _, codec := range []string{CodecJSON, CodecMsgpack, CodecProtobuf} {
		t.Run(codec, func(t *testing.T) {
			cfg := baseConfig(ModeFanout, url)
			cfg.Conns = 50
			cfg.Codec = codec
			cfg.PublishVia = PublishWS
			cfg.Publishers = 1
			cfg.Payload = 200
			res := runBench(t, cfg)
			checkFanout(t, res, cfg.Conns)
			f := res.Fanout
			// Each delivery carries at least the payload and a frame header.
			if f.Codec != codec || f.WireBytesPerDelivery < float64(cfg.Payload) {
				t.Errorf("codec %q, %.1f wire bytes per delivery of a %d-byte payload", f.Codec, f.WireBytesPerDelivery, cfg.Payload)
			}
		})
	}
}
