package metrics

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-io/ferry/internal/version"
)

// operations are the series an operator watches a node by rather than
// its traffic: which build runs, how close the node is to its limits,
// whether it is ready, how long handshakes, broker calls and writes take,
// when its certificate expires, and publishes per configured namespace.
type operations struct {
	maxConns       prometheus.Gauge
	brokerUp       prometheus.Gauge
	ready          *funcGauge
	certExpiry     *optionalGauge
	handshake      prometheus.Histogram
	brokerLatency  []prometheus.Observer // by brokerOps, then "other"
	queueToWrite   prometheus.Histogram
	nsPublishes    map[string]prometheus.Counter // configured namespaces and "default"
	nsPublishOther prometheus.Counter
}

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms: 0.5 ms to about 8 s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 15)

func newOperations(r registrar, namespaces []string) operations {
	var o operations
	info := version.Get()
	register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_build_info",
		Help: "Always 1; the labels say which build of Ferry runs (module version, VCS revision, Go version).",
	}, []string{"version", "revision", "goversion"})).WithLabelValues(info.Version, info.ShortRevision(), info.GoVersion).Set(1)

	o.maxConns = register(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_max_connections",
		Help: "The connection cap in force on this node: max_connections, or the open-file limit less a reserve when that is lower (process_max_fds is the limit itself).",
	}))
	o.brokerUp = register(r, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ferry_broker_up",
		Help: "1 when the broker answered the node's last ping (every few seconds), 0 when it did not.",
	}))
	o.ready = register(r, &funcGauge{desc: prometheus.NewDesc(
		"ferry_ready",
		"1 when the node takes new connections (what /readyz answers 200 for), 0 while it drains or its broker is down.",
		nil, nil,
	)})
	o.certExpiry = register(r, &optionalGauge{desc: prometheus.NewDesc(
		"ferry_tls_cert_expiry_timestamp_seconds",
		"When the TLS certificate the node serves expires (Unix time); absent when the node serves no TLS.",
		nil, nil,
	)})
	o.handshake = register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferry_handshake_duration_seconds",
		Help:    "From a connection's transport being set up (after the HTTP upgrade) to its connected reply: token check, resume, registration.",
		Buckets: latencyBuckets,
	}))
	brokerLatency := register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_broker_request_duration_seconds",
		Help:    "Broker round trips that succeeded, by operation (publish, history, ping).",
		Buckets: latencyBuckets,
	}, []string{"op"}))
	for _, op := range withOther(brokerOps, labelOther) {
		o.brokerLatency = append(o.brokerLatency, brokerLatency.WithLabelValues(op))
	}
	o.queueToWrite = register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferry_queue_to_write_seconds",
		Help:    "Per write batch: from the first message entering an idle connection's outbound queue to the write that carried it (queueing, coalescing, writer wait on this node).",
		Buckets: latencyBuckets,
	}))
	nsPublishes := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_namespace_publishes_total",
		Help: "Messages published through this node, by namespace: the configured ones and \"default\"; any other (open in --dev) is \"other\".",
	}, []string{"namespace"}))
	o.nsPublishes = map[string]prometheus.Counter{"default": nsPublishes.WithLabelValues("default")}
	for _, ns := range namespaces {
		o.nsPublishes[ns] = nsPublishes.WithLabelValues(ns)
	}
	o.nsPublishOther = nsPublishes.WithLabelValues(labelOther)
	return o
}

// SetMaxConnections sets ferry_max_connections, the node's connection cap
// in force (0: none).
func (m *Metrics) SetMaxConnections(n int) {
	if m == nil {
		return
	}
	m.maxConns.Set(float64(n))
}

// SetBrokerUp records whether the broker answered the node's last ping.
func (m *Metrics) SetBrokerUp(up bool) {
	if m == nil {
		return
	}
	m.brokerUp.Set(float64(b2i(up)))
}

// SetReadyFunc sets the function ferry_ready reports (1 ready, 0 not),
// called at each scrape; nil reports 0.
func (m *Metrics) SetReadyFunc(fn func() bool) {
	if m == nil {
		return
	}
	if fn == nil {
		m.ready.fn.Store(nil)
		return
	}
	f := func() float64 { return float64(b2i(fn())) }
	m.ready.fn.Store(&f)
}

// SetCertExpiry sets when the served TLS certificate expires; the zero
// time removes the series (no TLS).
func (m *Metrics) SetCertExpiry(t time.Time) {
	if m == nil {
		return
	}
	if t.IsZero() {
		m.certExpiry.v.Store(nil)
		return
	}
	v := float64(t.Unix())
	m.certExpiry.v.Store(&v)
}

// Handshake records how long a connection took from its transport being
// set up to its connected reply.
func (m *Metrics) Handshake(d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.handshake.Observe(d.Seconds())
}

// BrokerLatency records a successful broker call of op (an Op* constant)
// that took d.
func (m *Metrics) BrokerLatency(op string, d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.brokerLatency[indexOf(brokerOps, op)].Observe(d.Seconds())
}

// QueueToWrite records, once per write batch, how long the batch's first
// message waited between entering an idle queue and the write.
func (m *Metrics) QueueToWrite(d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.queueToWrite.Observe(d.Seconds())
}

// PublishedTo counts a message published to channel under its namespace
// (the part before ':', "default" without one). The map is fixed after
// New, so the lookup needs no lock and, with a substring key, no
// allocation.
func (m *Metrics) PublishedTo(channel string) {
	if m == nil {
		return
	}
	ns := "default"
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		ns = channel[:i]
	}
	if c, ok := m.nsPublishes[ns]; ok {
		c.Inc()
		return
	}
	m.nsPublishOther.Inc()
}

// optionalGauge is a gauge that exists only once a value is set.
type optionalGauge struct {
	desc *prometheus.Desc
	v    atomic.Pointer[float64]
}

// Describe implements prometheus.Collector.
func (g *optionalGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *optionalGauge) Collect(ch chan<- prometheus.Metric) {
	if v := g.v.Load(); v != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, *v)
	}
}
