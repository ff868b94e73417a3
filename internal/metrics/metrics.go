package metrics

import (
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records a node's metrics. Build it with New; a nil *Metrics is a
// valid no-op recorder. Its methods are safe for concurrent use.
//
// Counting methods that take a number n ignore n <= 0 (a Prometheus counter
// cannot go down).
type Metrics struct {
	own *prometheus.Registry

	conns        []prometheus.Gauge   // by transport, then "other"
	opened       []prometheus.Counter // by transport, then "other"
	disconnects  []prometheus.Counter // by closeCodes, then "other"
	rejected     []prometheus.Counter // by rejectReasons, then "other"
	framesIn     []prometheus.Counter // by clientFrameTypes, then "invalid"
	framesOut    prometheus.Counter
	published    []prometheus.Counter // by sources, then "other"
	duplicates   prometheus.Counter
	errorsSent   []prometheus.Counter // by errorCodes, then "other"
	delivered    prometheus.Counter
	dropped      [][]prometheus.Counter // [priority][reason], each with "other" last
	conflated    prometheus.Counter
	slowCloses   prometheus.Counter
	batch        prometheus.Histogram
	queueDepth   *funcGauge
	brokerErrors []prometheus.Counter // by brokerOps, then "other"
	recoveries   [2]prometheus.Counter
	resumes      [2]prometheus.Counter

	operations // build, capacity, readiness, latencies (ops.go)
	hookSeries // back-end hooks and webhooks (hooks.go)
	uploads    // resumable uploads (uploads.go)
}

// New builds the node's metrics and registers them on a registry of their
// own, which Handler serves together with the Go runtime and process
// collectors. When reg is not nil the same metrics are registered on reg
// as well, for a program that embeds the server and serves its own
// registry; a second Metrics built on the same reg shares the first one's
// series. New panics if reg holds a different collector under one of the
// ferry_ names (a programming error, as with prometheus.MustRegister).
//
// namespaces are the configured namespaces, the label values of
// ferry_namespace_publishes_total besides "default" and "other": a fixed
// set, so a client cannot add series by publishing to new names.
func New(reg prometheus.Registerer, namespaces ...string) *Metrics {
	m := &Metrics{own: prometheus.NewRegistry()}
	m.own.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	r := registrar{own: m.own, ext: reg}

	conns := register(r, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ferry_connections",
		Help: "Open client connections on this node, by transport.",
	}, []string{"transport"}))
	opened := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_connections_opened_total",
		Help: "Client connections opened on this node, by transport.",
	}, []string{"transport"}))
	for _, t := range withOther(transports, labelOther) {
		m.conns = append(m.conns, conns.WithLabelValues(t))
		m.opened = append(m.opened, opened.WithLabelValues(t))
	}

	m.disconnects = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_disconnects_total",
		Help: "Client connections closed, by WebSocket close code (\"other\" for codes outside the protocol's set).",
	}, []string{"code"})), codeLabels(closeCodes))

	m.rejected = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_handshakes_rejected_total",
		Help: "Handshakes refused before a connection was opened, by reason.",
	}, []string{"reason"})), withOther(rejectReasons, labelOther))

	m.framesIn = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_frames_in_total",
		Help: "Frames received from clients, by frame type (\"invalid\" for unknown types).",
	}, []string{"type"})), withOther(clientFrameTypes, labelInvalid))

	m.framesOut = register(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_frames_out_total",
		Help: "Frames written to clients.",
	}))

	m.published = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_publishes_total",
		Help: "Messages published through this node, by source (client or api).",
	}, []string{"source"})), withOther(sources, labelOther))

	m.duplicates = register(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_publish_duplicates_total",
		Help: "Publishes answered as duplicates of an earlier one with the same idempotency key.",
	}))

	m.errorsSent = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_errors_sent_total",
		Help: "Error frames sent to clients, by error code.",
	}, []string{"code"})), codeLabels(errorCodes))

	m.delivered = register(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_messages_delivered_total",
		Help: "Channel messages written to clients.",
	}))

	dropped := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_messages_dropped_total",
		Help: "Queued messages dropped before they were written, by priority and reason.",
	}, []string{"priority", "reason"}))
	for _, p := range withOther(priorities, labelOther) {
		var row []prometheus.Counter
		for _, why := range withOther(dropReasons, labelOther) {
			row = append(row, dropped.WithLabelValues(p, why))
		}
		m.dropped = append(m.dropped, row)
	}

	m.conflated = register(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_messages_conflated_total",
		Help: "Queued messages replaced by a newer one with the same conflation key.",
	}))

	m.slowCloses = register(r, prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ferry_slow_consumer_closes_total",
		Help: "Connections closed with 4010 because their queue stayed full of critical messages.",
	}))

	m.batch = register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "ferry_write_batch_frames",
		Help:    "Frames written to a client per write (one syscall).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256
	}))

	m.queueDepth = register(r, &funcGauge{desc: prometheus.NewDesc(
		"ferry_queued_frames",
		"Frames waiting in the outbound queues of this node's connections.",
		nil, nil,
	)})

	m.brokerErrors = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_broker_errors_total",
		Help: "Failed broker calls, by operation.",
	}, []string{"op"})), withOther(brokerOps, labelOther))

	recoveries := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_history_recoveries_total",
		Help: "Subscriptions that asked to recover from history, by result: recovered (every missed message was retained) or incomplete.",
	}, []string{"result"}))
	m.recoveries = [2]prometheus.Counter{recoveries.WithLabelValues("incomplete"), recoveries.WithLabelValues("recovered")}

	resumes := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_session_resumes_total",
		Help: "Attempts to resume a session, by result (ok or failed).",
	}, []string{"result"}))
	m.resumes = [2]prometheus.Counter{resumes.WithLabelValues("failed"), resumes.WithLabelValues("ok")}

	m.operations = newOperations(r, namespaces)
	m.hookSeries = newHookSeries(r)
	m.uploads = newUploads(r)
	return m
}

// Handler serves the metrics in the Prometheus exposition format, for
// GET /metrics. On a nil *Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.own, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ConnOpened counts a connection that completed its handshake on transport
// (TransportWS, TransportSSE or TransportPoll).
func (m *Metrics) ConnOpened(transport string) {
	if m == nil {
		return
	}
	i := indexOf(transports, transport)
	m.conns[i].Inc()
	m.opened[i].Inc()
}

// ConnClosed counts the end of a connection that ConnOpened counted, with
// the WebSocket close code it ended with.
func (m *Metrics) ConnClosed(transport string, code int) {
	if m == nil {
		return
	}
	m.conns[indexOf(transports, transport)].Dec()
	m.disconnects[indexOf(closeCodes, code)].Inc()
}

// HandshakeRejected counts a handshake refused before a connection opened;
// reason is one of the Reject* constants.
func (m *Metrics) HandshakeRejected(reason string) {
	if m == nil {
		return
	}
	m.rejected[indexOf(rejectReasons, reason)].Inc()
}

// FrameIn counts one frame received from a client, by its type; a type
// that is not a client frame type is counted as "invalid".
func (m *Metrics) FrameIn(frameType string) {
	if m == nil {
		return
	}
	m.framesIn[indexOf(clientFrameTypes, frameType)].Inc()
}

// FrameOut counts n frames written to a client.
func (m *Metrics) FrameOut(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.framesOut.Add(float64(n))
}

// Published counts a message published through this node; source is
// SourceClient or SourceAPI.
func (m *Metrics) Published(source string) {
	if m == nil {
		return
	}
	m.published[indexOf(sources, source)].Inc()
}

// PublishDuplicate counts a publish recognised as a duplicate by its
// idempotency key.
func (m *Metrics) PublishDuplicate() {
	if m == nil {
		return
	}
	m.duplicates.Inc()
}

// ErrorSent counts an error frame sent to a client, by its code.
func (m *Metrics) ErrorSent(code int) {
	if m == nil {
		return
	}
	m.errorsSent[indexOf(errorCodes, code)].Inc()
}

// Delivered counts n channel messages written to clients.
func (m *Metrics) Delivered(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.delivered.Add(float64(n))
}

// Dropped counts n queued messages of the given priority ("critical",
// "normal" or "droppable"; "" means normal) dropped for reason (e.g.
// DropQueueFull).
func (m *Metrics) Dropped(priority, reason string, n int) {
	if m == nil || n <= 0 {
		return
	}
	if priority == "" {
		priority = "normal"
	}
	m.dropped[indexOf(priorities, priority)][indexOf(dropReasons, reason)].Add(float64(n))
}

// Conflated counts n queued messages replaced by a newer one with the same
// conflation key.
func (m *Metrics) Conflated(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.conflated.Add(float64(n))
}

// SlowConsumerClose counts a connection closed with 4010 (slow consumer).
func (m *Metrics) SlowConsumerClose() {
	if m == nil {
		return
	}
	m.slowCloses.Inc()
}

// Batch records how many frames went out in one write to a client.
func (m *Metrics) Batch(frames int) {
	if m == nil || frames <= 0 {
		return
	}
	m.batch.Observe(float64(frames))
}

// SetQueueDepthFunc sets the function that ferry_queued_frames reports:
// the number of frames waiting in the node's outbound queues. It is called
// at each scrape, so it must be safe for concurrent use and cheap; nil (the
// default) reports 0. Keeping the sum in the server costs the hot path
// nothing; the drops and slow-consumer counters show where it comes from.
func (m *Metrics) SetQueueDepthFunc(fn func() float64) {
	if m == nil {
		return
	}
	if fn == nil {
		m.queueDepth.fn.Store(nil)
		return
	}
	m.queueDepth.fn.Store(&fn)
}

// BrokerError counts a failed broker call; op is one of the Op* constants.
func (m *Metrics) BrokerError(op string) {
	if m == nil {
		return
	}
	m.brokerErrors[indexOf(brokerOps, op)].Inc()
}

// Recovery counts a subscription that asked to recover from history;
// recovered says whether every missed message could be replayed.
func (m *Metrics) Recovery(recovered bool) {
	if m == nil {
		return
	}
	m.recoveries[b2i(recovered)].Inc()
}

// Resume counts an attempt to resume a session and whether it worked.
func (m *Metrics) Resume(ok bool) {
	if m == nil {
		return
	}
	m.resumes[b2i(ok)].Inc()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// registrar registers collectors on the Metrics' own registry and, when
// set, on the caller's registerer too.
type registrar struct {
	own *prometheus.Registry
	ext prometheus.Registerer
}

// register registers c and returns the collector to use: c itself, or the
// one already registered on the caller's registerer under the same name.
func register[C prometheus.Collector](r registrar, c C) C {
	if r.ext != nil {
		if err := r.ext.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if !errors.As(err, &dup) {
				panic(err)
			}
			existing, ok := dup.ExistingCollector.(C)
			if !ok {
				panic(err)
			}
			c = existing
		}
	}
	r.own.MustRegister(c)
	return c
}

// funcGauge is a gauge whose value a function supplies at scrape time;
// unlike prometheus.GaugeFunc the function can be set after registration.
type funcGauge struct {
	desc *prometheus.Desc
	fn   atomic.Pointer[func() float64]
}

// Describe implements prometheus.Collector.
func (g *funcGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *funcGauge) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	if fn := g.fn.Load(); fn != nil {
		v = (*fn)()
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, v)
}

// children resolves one child of vec per label value, in order.
func children(vec *prometheus.CounterVec, values []string) []prometheus.Counter {
	out := make([]prometheus.Counter, len(values))
	for i, v := range values {
		out[i] = vec.WithLabelValues(v)
	}
	return out
}
