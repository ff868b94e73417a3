package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Result is what a run measured. Server figures need the API key; they are
// zero (and a warning says why) without it.
type Result struct {
	Mode     Mode       `json:"mode"`
	URLs     []string   `json:"urls"`
	Conns    int        `json:"conns"`
	Channels int        `json:"channels"`
	Workers  int        `json:"workers"`
	Client   ClientKind `json:"client"`
	// Transport is ws, or sse / poll (HTTP-fallback sessions).
	Transport Transport `json:"transport,omitempty"`
	// OneUser says every connection's token named one user.
	OneUser      bool      `json:"one_user,omitempty"`
	Rate         float64   `json:"rate,omitempty"`
	Duration     float64   `json:"duration_s"`
	PayloadBytes int       `json:"payload_bytes,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	// LoadAvg is the machine's 1, 5 and 15 minute load average at the start
	// and at the end of the run (other work on the machine skews figures).
	LoadAvgStart [3]float64 `json:"load_avg_start"`
	LoadAvgEnd   [3]float64 `json:"load_avg_end"`

	// Connect is the opening of the connections (every mode has one).
	Connect ConnectResult `json:"connect"`
	// Idle is set in idle mode (and cluster mode without a rate).
	Idle *IdleResult `json:"idle,omitempty"`
	// Fanout is set in fanout mode (and cluster mode with a rate).
	Fanout *FanoutResult `json:"fanout,omitempty"`
	// Nodes has one entry per URL.
	Nodes []NodeResult `json:"nodes"`
	// ClientSide is what the load generator itself cost.
	ClientSide ClientResult `json:"client_side"`
	// Lost counts connections the server ended during the run, by close
	// code (4012 heartbeat timeout, 4010 slow consumer, 1006 no close).
	Lost     map[string]int `json:"lost,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// ConnectResult is the opening phase.
type ConnectResult struct {
	Opened int            `json:"opened"`
	Failed int            `json:"failed"`
	Errors map[string]int `json:"errors,omitempty"`
	// Seconds is from the first dial to the last connection ready.
	Seconds float64 `json:"seconds"`
	// PerSecond is Opened / Seconds: TCP, upgrade with the token checked,
	// connect frame answered (and subscribe, except in connect mode).
	PerSecond float64 `json:"per_second"`
	// Handshake is the time of one connection from dial to ready.
	Handshake Percentiles `json:"handshake"`
	// ServerCPUPerConnUS is server CPU time per opened connection, in µs
	// (connect mode).
	ServerCPUPerConnUS float64 `json:"server_cpu_per_conn_us,omitempty"`
}

// IdleResult is memory per connection once the server's RSS has settled.
type IdleResult struct {
	// Settled is false when the RSS was still moving at SettleTimeout.
	Settled     bool    `json:"settled"`
	HeldSeconds float64 `json:"held_s"`
	// Per connection, over all nodes: (after - before) / connections.
	RSSPerConn        float64 `json:"rss_per_conn_bytes"`
	HeapPerConn       float64 `json:"heap_per_conn_bytes"`
	StackPerConn      float64 `json:"stack_per_conn_bytes"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// Pings answered by the bench (the server's heartbeats).
	Pings uint64 `json:"pings"`
	// ServerCPUCores is the nodes' CPU while holding the connections
	// (heartbeats, sweeps, record refreshes), in cores: CPU seconds over
	// wall seconds, from the first stats sample after the opening to the
	// last one.
	ServerCPUCores float64 `json:"server_cpu_cores"`
	// ClientRSSPerConn is the load generator's own RSS growth per
	// connection.
	ClientRSSPerConn float64 `json:"client_rss_per_conn_bytes"`
}

// FanoutResult is the publishing phase.
type FanoutResult struct {
	Published     int64          `json:"published"`
	PublishErrors map[string]int `json:"publish_errors,omitempty"`
	PublishLate   int64          `json:"publish_late"`
	// PublishUnsent counts scheduled publishes dropped because the
	// publishers were still behind after the duration (and 5 s).
	PublishUnsent  int64   `json:"publish_unsent,omitempty"`
	PublishSeconds float64 `json:"publish_s"`
	// Expected is every subscriber times the publishes on its channel.
	Expected   int64 `json:"expected"`
	Deliveries int64 `json:"deliveries"`
	Missing    int64 `json:"missing"`
	Duplicates int64 `json:"duplicates"`
	// DeliveriesPerSec is Deliveries / PublishSeconds.
	DeliveriesPerSec float64 `json:"deliveries_per_s"`
	// Latency is publish (the payload's timestamp, taken just before the
	// request) to delivery (the read that brought the frame).
	Latency Percentiles `json:"latency"`
	// ServerCPUSeconds is the CPU time of every node over the publishing
	// phase (publishing requests included).
	ServerCPUSeconds float64 `json:"server_cpu_s"`
	CPUPerDeliveryUS float64 `json:"server_cpu_per_delivery_us"`
	// Codec is the subscribers' encoding; WireBytesPerDelivery is the
	// bytes of the WebSocket messages they received (frame headers
	// included) over Deliveries.
	Codec                string  `json:"codec"`
	WireBytesPerDelivery float64 `json:"wire_bytes_per_delivery"`
	// ClientCPUPerDeliveryUS is the load generator's CPU per delivery.
	ClientCPUPerDeliveryUS float64 `json:"client_cpu_per_delivery_us"`
}

// NodeResult is one node's share.
type NodeResult struct {
	URL    string       `json:"url"`
	Conns  int          `json:"conns"`
	Before *ServerStats `json:"before,omitempty"`
	After  *ServerStats `json:"after,omitempty"`
	// RSSPerConn is this node's RSS growth per connection (idle).
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
	// CPUSeconds is this node's CPU time over the measured phase.
	CPUSeconds float64 `json:"cpu_s"`
	Expected   int64   `json:"expected,omitempty"`
	Deliveries int64   `json:"deliveries,omitempty"`
	Missing    int64   `json:"missing,omitempty"`
	Duplicates int64   `json:"duplicates,omitempty"`
}

// ClientResult is the load generator's own cost, over all its processes.
type ClientResult struct {
	Processes  int     `json:"processes"`
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_s"`
}

// WriteText writes a human-readable summary.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "ferry bench: %s, %d connections over %d node(s), %d channel(s), %d worker process(es), %s client\n",
		r.Mode, r.Conns, len(r.URLs), r.Channels, r.Workers, r.Client)
	if r.OneUser {
		b.WriteString("every connection's token names one user\n")
	}
	if r.Transport == TransportSSE || r.Transport == TransportPoll {
		fmt.Fprintf(&b, "transport: %s (HTTP-fallback sessions, a goroutine each)\n", r.Transport)
	}
	fmt.Fprintf(&b, "load average: %.2f %.2f %.2f at start, %.2f %.2f %.2f at end\n",
		r.LoadAvgStart[0], r.LoadAvgStart[1], r.LoadAvgStart[2], r.LoadAvgEnd[0], r.LoadAvgEnd[1], r.LoadAvgEnd[2])
	c := r.Connect
	fmt.Fprintf(&b, "connections: %d opened, %d failed in %.2fs = %.0f conn/s; handshake p50 %.2fms p99 %.2fms max %.2fms",
		c.Opened, c.Failed, c.Seconds, c.PerSecond, c.Handshake.P50, c.Handshake.P99, c.Handshake.Max)
	if c.ServerCPUPerConnUS > 0 {
		fmt.Fprintf(&b, "; server CPU %.0f µs/conn", c.ServerCPUPerConnUS)
	}
	b.WriteString("\n")
	writeCounts(&b, "  errors", c.Errors)
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "idle: held %.0fs (settled: %v); server per connection: RSS %s, heap %s, stack %s, %.2f goroutines; client RSS %s/conn; %d pings answered; server CPU while holding %.4f cores\n",
			i.HeldSeconds, i.Settled, kib(i.RSSPerConn), kib(i.HeapPerConn), kib(i.StackPerConn), i.GoroutinesPerConn, kib(i.ClientRSSPerConn), i.Pings, i.ServerCPUCores)
	}
	if f := r.Fanout; f != nil {
		fmt.Fprintf(&b, "fanout: %d published in %.1fs (%d late), %d/%d delivered (missing %d, duplicates %d) = %.0f deliveries/s\n",
			f.Published, f.PublishSeconds, f.PublishLate, f.Deliveries, f.Expected, f.Missing, f.Duplicates, f.DeliveriesPerSec)
		l := f.Latency
		fmt.Fprintf(&b, "latency: p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms (mean %.2fms)\n", l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
		fmt.Fprintf(&b, "CPU: server %.2fs = %.2f µs/delivery; client %.2f µs/delivery\n", f.ServerCPUSeconds, f.CPUPerDeliveryUS, f.ClientCPUPerDeliveryUS)
		fmt.Fprintf(&b, "wire: %s, %.1f bytes/delivery\n", f.Codec, f.WireBytesPerDelivery)
		if f.PublishUnsent > 0 {
			fmt.Fprintf(&b, "unsent: %d scheduled publishes dropped (the publishers were behind after the duration)\n", f.PublishUnsent)
		}
		writeCounts(&b, "  publish errors", f.PublishErrors)
	}
	for _, n := range r.Nodes {
		fmt.Fprintf(&b, "node %s: %d conns", n.URL, n.Conns)
		if n.After != nil {
			fmt.Fprintf(&b, ", server conns %d, RSS %s, goroutines %d, CPU %.2fs", n.After.Connections, mib(n.After.RSSBytes), n.After.Goroutines, n.CPUSeconds)
		}
		if n.RSSPerConn != 0 {
			fmt.Fprintf(&b, ", RSS/conn %s", kib(n.RSSPerConn))
		}
		if n.Expected > 0 {
			fmt.Fprintf(&b, ", delivered %d/%d (missing %d, dup %d)", n.Deliveries, n.Expected, n.Missing, n.Duplicates)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "client: %d process(es), RSS %s, CPU %.2fs\n", r.ClientSide.Processes, mib(r.ClientSide.RSSBytes), r.ClientSide.CPUSeconds)
	writeCounts(&b, "connections ended by the server (close code)", r.Lost)
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCounts(b *strings.Builder, title string, m map[string]int) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(b, "%s:", title)
	for _, k := range keys {
		fmt.Fprintf(b, " %s=%d", k, m[k])
	}
	b.WriteString("\n")
}

func kib(v float64) string { return fmt.Sprintf("%.2f KiB", v/1024) }
func mib(v int64) string   { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
