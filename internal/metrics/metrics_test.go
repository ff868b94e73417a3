package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ferry-io/ferry/internal/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// scrape fetches h's /metrics output and returns every sample by its
// series name as printed (name{label="value",...}).
func scrape(tb testing.TB, h http.Handler) map[string]float64 {
	tb.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET /metrics: status %d, body %q", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		tb.Fatalf("GET /metrics: Content-Type %q, want text/plain", ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			tb.Fatalf("bad exposition line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			tb.Fatalf("bad value in %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// seriesOf returns how many series of the metric family name s holds.
func seriesOf(s map[string]float64, name string) int {
	n := 0
	for k := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			n++
		}
	}
	return n
}

func TestCountersMove(t *testing.T) {
	tests := []struct {
		name string
		do   func(m *metrics.Metrics)
		want map[string]float64
	}{
		{
			name: "connection opened",
			do:   func(m *metrics.Metrics) { m.ConnOpened(metrics.TransportWS) },
			want: map[string]float64{
				`ferry_connections{transport="ws"}`:              1,
				`ferry_connections_opened_total{transport="ws"}`: 1,
				`ferry_connections{transport="sse"}`:             0,
			},
		},
		{
			name: "connection opened and closed",
			do: func(m *metrics.Metrics) {
				m.ConnOpened(metrics.TransportSSE)
				m.ConnOpened(metrics.TransportSSE)
				m.ConnClosed(metrics.TransportSSE, 4012)
			},
			want: map[string]float64{
				`ferry_connections{transport="sse"}`:              1,
				`ferry_connections_opened_total{transport="sse"}`: 2,
				`ferry_disconnects_total{code="4012"}`:            1,
				`ferry_disconnects_total{code="other"}`:           0,
			},
		},
		{
			name: "unknown transport and close code",
			do: func(m *metrics.Metrics) {
				m.ConnOpened("quic")
				m.ConnClosed(metrics.TransportPoll, 4999)
			},
			want: map[string]float64{
				`ferry_connections{transport="other"}`:  1,
				`ferry_connections{transport="poll"}`:   -1,
				`ferry_disconnects_total{code="other"}`: 1,
				`ferry_disconnects_total{code="1000"}`:  0,
			},
		},
		{
			name: "handshake rejected",
			do: func(m *metrics.Metrics) {
				m.HandshakeRejected(metrics.RejectOrigin)
				m.HandshakeRejected(metrics.RejectRateLimit)
				m.HandshakeRejected(metrics.RejectRateLimit)
				m.HandshakeRejected("teapot")
			},
			want: map[string]float64{
				`ferry_handshakes_rejected_total{reason="origin"}`:     1,
				`ferry_handshakes_rejected_total{reason="rate_limit"}`: 2,
				`ferry_handshakes_rejected_total{reason="other"}`:      1,
				`ferry_handshakes_rejected_total{reason="auth"}`:       0,
			},
		},
		{
			name: "frames in by type",
			do: func(m *metrics.Metrics) {
				m.FrameIn("publish")
				m.FrameIn("upload.chunk")
				m.FrameIn("no-such-type")
			},
			want: map[string]float64{
				`ferry_frames_in_total{type="publish"}`:      1,
				`ferry_frames_in_total{type="upload.chunk"}`: 1,
				`ferry_frames_in_total{type="invalid"}`:      1,
			},
		},
		{
			name: "frames out ignores non-positive counts",
			do: func(m *metrics.Metrics) {
				m.FrameOut(3)
				m.FrameOut(2)
				m.FrameOut(0)
				m.FrameOut(-4)
			},
			want: map[string]float64{`ferry_frames_out_total`: 5},
		},
		{
			name: "publishes and duplicates",
			do: func(m *metrics.Metrics) {
				m.Published(metrics.SourceClient)
				m.Published(metrics.SourceAPI)
				m.Published(metrics.SourceAPI)
				m.PublishDuplicate()
			},
			want: map[string]float64{
				`ferry_publishes_total{source="client"}`: 1,
				`ferry_publishes_total{source="api"}`:    2,
				`ferry_publish_duplicates_total`:         1,
			},
		},
		{
			name: "errors sent",
			do: func(m *metrics.Metrics) {
				m.ErrorSent(429)
				m.ErrorSent(418)
			},
			want: map[string]float64{
				`ferry_errors_sent_total{code="429"}`:   1,
				`ferry_errors_sent_total{code="other"}`: 1,
				`ferry_errors_sent_total{code="400"}`:   0,
			},
		},
		{
			name: "delivered",
			do: func(m *metrics.Metrics) {
				m.Delivered(7)
				m.Delivered(-1)
			},
			want: map[string]float64{`ferry_messages_delivered_total`: 7},
		},
		{
			name: "dropped and conflated",
			do: func(m *metrics.Metrics) {
				m.Dropped("droppable", metrics.DropQueueFull, 2)
				m.Dropped("", metrics.DropQueueFull, 1)
				m.Dropped("urgent", "cosmic_ray", 5)
				m.Conflated(4)
			},
			want: map[string]float64{
				`ferry_messages_dropped_total{priority="droppable",reason="queue_full"}`: 2,
				`ferry_messages_dropped_total{priority="normal",reason="queue_full"}`:    1,
				`ferry_messages_dropped_total{priority="other",reason="other"}`:          5,
				`ferry_messages_dropped_total{priority="critical",reason="queue_full"}`:  0,
				`ferry_messages_conflated_total`:                                         4,
			},
		},
		{
			name: "slow consumer",
			do:   func(m *metrics.Metrics) { m.SlowConsumerClose() },
			want: map[string]float64{`ferry_slow_consumer_closes_total`: 1},
		},
		{
			name: "batch histogram",
			do: func(m *metrics.Metrics) {
				m.Batch(3)
				m.Batch(1)
				m.Batch(0)
			},
			want: map[string]float64{
				`ferry_write_batch_frames_count`:          2,
				`ferry_write_batch_frames_sum`:            4,
				`ferry_write_batch_frames_bucket{le="1"}`: 1,
				`ferry_write_batch_frames_bucket{le="2"}`: 1,
				`ferry_write_batch_frames_bucket{le="4"}`: 2,
			},
		},
		{
			name: "queue depth from the server",
			do:   func(m *metrics.Metrics) { m.SetQueueDepthFunc(func() float64 { return 42 }) },
			want: map[string]float64{`ferry_queued_frames`: 42},
		},
		{
			name: "queue depth function removed",
			do: func(m *metrics.Metrics) {
				m.SetQueueDepthFunc(func() float64 { return 42 })
				m.SetQueueDepthFunc(nil)
			},
			want: map[string]float64{`ferry_queued_frames`: 0},
		},
		{
			name: "broker errors",
			do: func(m *metrics.Metrics) {
				m.BrokerError(metrics.OpPublish)
				m.BrokerError("reticulate")
			},
			want: map[string]float64{
				`ferry_broker_errors_total{op="publish"}`: 1,
				`ferry_broker_errors_total{op="other"}`:   1,
				`ferry_broker_errors_total{op="history"}`: 0,
			},
		},
		{
			name: "recovery and resume",
			do: func(m *metrics.Metrics) {
				m.Recovery(true)
				m.Recovery(true)
				m.Recovery(false)
				m.Resume(true)
				m.Resume(false)
				m.Resume(false)
			},
			want: map[string]float64{
				`ferry_history_recoveries_total{result="recovered"}`:  2,
				`ferry_history_recoveries_total{result="incomplete"}`: 1,
				`ferry_session_resumes_total{result="ok"}`:            1,
				`ferry_session_resumes_total{result="failed"}`:        2,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := metrics.New(nil)
			tt.do(m)
			got := scrape(t, m.Handler())
			for series, want := range tt.want {
				v, ok := got[series]
				if !ok {
					t.Errorf("%s: missing from /metrics", series)
					continue
				}
				if v != want {
					t.Errorf("%s = %v, want %v", series, v, want)
				}
			}
		})
	}
}

func TestHandlerServesRuntimeCollectorsAndPreinitialisedSeries(t *testing.T) {
	got := scrape(t, metrics.New(nil).Handler())
	for _, series := range []string{
		"go_goroutines",
		"process_start_time_seconds",
		`ferry_disconnects_total{code="4010"}`,
		`ferry_frames_in_total{type="connect"}`,
		`ferry_connections{transport="poll"}`,
		`ferry_messages_dropped_total{priority="critical",reason="queue_full"}`,
	} {
		if _, ok := got[series]; !ok {
			t.Errorf("%s: missing from a fresh /metrics", series)
		}
	}
	for k := range got {
		if strings.HasPrefix(k, "ferry_") && got[k] != 0 && !strings.Contains(k, "_bucket") && !strings.HasPrefix(k, "ferry_build_info{") {
			t.Errorf("%s = %v on a fresh node, want 0", k, got[k])
		}
	}
}

// TestLabelSetsStayFixed feeds arbitrary label values and checks that the
// number of series does not grow.
func TestLabelSetsStayFixed(t *testing.T) {
	m := metrics.New(nil)
	before := scrape(t, m.Handler())
	for i := range 200 {
		s := fmt.Sprintf("junk-%d", i)
		m.FrameIn(s)
		m.ConnOpened(s)
		m.ConnClosed(s, 5000+i)
		m.HandshakeRejected(s)
		m.Published(s)
		m.ErrorSent(600 + i)
		m.Dropped(s, s, 1)
		m.BrokerError(s)
	}
	after := scrape(t, m.Handler())
	for _, family := range []string{
		"ferry_frames_in_total", "ferry_connections", "ferry_connections_opened_total",
		"ferry_disconnects_total", "ferry_handshakes_rejected_total", "ferry_publishes_total",
		"ferry_errors_sent_total", "ferry_messages_dropped_total", "ferry_broker_errors_total",
	} {
		if b, a := seriesOf(before, family), seriesOf(after, family); a != b || a == 0 {
			t.Errorf("%s: %d series before, %d after", family, b, a)
		}
	}
	if got := after[`ferry_frames_in_total{type="invalid"}`]; got != 200 {
		t.Errorf(`ferry_frames_in_total{type="invalid"} = %v, want 200`, got)
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *metrics.Metrics
	m.ConnOpened(metrics.TransportWS)
	m.ConnClosed(metrics.TransportWS, 1000)
	m.HandshakeRejected(metrics.RejectAuth)
	m.FrameIn("ping")
	m.FrameOut(1)
	m.Published(metrics.SourceAPI)
	m.PublishDuplicate()
	m.ErrorSent(400)
	m.Delivered(1)
	m.Dropped("normal", metrics.DropQueueFull, 1)
	m.Conflated(1)
	m.SlowConsumerClose()
	m.Batch(1)
	m.SetQueueDepthFunc(func() float64 { return 1 })
	m.BrokerError(metrics.OpPing)
	m.Recovery(true)
	m.Resume(true)
	m.SetMaxConnections(10)
	m.SetBrokerUp(true)
	m.SetReadyFunc(func() bool { return true })
	m.SetCertExpiry(time.Now())
	m.Handshake(time.Millisecond)
	m.BrokerLatency(metrics.OpPublish, time.Millisecond)
	m.QueueToWrite(time.Millisecond)
	m.PublishedTo("chat:x")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Metrics Handler: status %d, want 404", rec.Code)
	}
}

func TestSharedRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := metrics.New(reg)
	b := metrics.New(reg) // same names: shares a's series instead of panicking
	a.Delivered(1)
	b.Delivered(2)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got float64
	found := false
	for _, f := range families {
		if f.GetName() == "ferry_messages_delivered_total" {
			found = true
			got = f.GetMetric()[0].GetCounter().GetValue()
		}
		if strings.HasPrefix(f.GetName(), "go_") {
			t.Errorf("caller's registry got %s: runtime collectors belong to the Metrics' own registry", f.GetName())
		}
	}
	if !found || got != 3 {
		t.Errorf("caller's registry: ferry_messages_delivered_total = %v (found %v), want 3", got, found)
	}
	if v := scrape(t, a.Handler())["ferry_messages_delivered_total"]; v != 3 {
		t.Errorf("a.Handler: ferry_messages_delivered_total = %v, want 3", v)
	}
	// The queue depth gauge is shared too: the last function set wins.
	b.SetQueueDepthFunc(func() float64 { return 7 })
	if v := scrape(t, a.Handler())["ferry_queued_frames"]; v != 7 {
		t.Errorf("a.Handler: ferry_queued_frames = %v after b.SetQueueDepthFunc, want 7", v)
	}
}

func TestConflictingRegistrationPanics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "ferry_connections", Help: "not ours"}))
	defer func() {
		if recover() == nil {
			t.Error("New on a registry with a conflicting ferry_connections did not panic")
		}
	}()
	metrics.New(reg)
}

func TestConcurrentUse(t *testing.T) {
	m := metrics.New(nil)
	const workers, each = 8, 500
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				m.Delivered(1)
				m.ConnOpened(metrics.TransportWS)
				m.ConnClosed(metrics.TransportWS, 1000)
			}
		}()
	}
	// Scrapes and SetQueueDepthFunc run alongside the counters.
	go func() {
		defer func() { done <- struct{}{} }()
		for i := range 5 {
			m.SetQueueDepthFunc(func() float64 { return float64(i) })
			rec := httptest.NewRecorder() // not scrape: no Fatal off the test goroutine
			m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("concurrent scrape: status %d", rec.Code)
			}
		}
	}()
	for range workers + 1 {
		<-done
	}
	got := scrape(t, m.Handler())
	if v := got["ferry_messages_delivered_total"]; v != workers*each {
		t.Errorf("delivered = %v, want %d", v, workers*each)
	}
	if v := got[`ferry_connections{transport="ws"}`]; v != 0 {
		t.Errorf("open ws connections = %v, want 0", v)
	}
	if v := got[`ferry_disconnects_total{code="1000"}`]; v != workers*each {
		t.Errorf("disconnects 1000 = %v, want %d", v, workers*each)
	}
}

// hotPath is what a writer does per batch.
func hotPath(m *metrics.Metrics) {
	m.Delivered(3)
	m.FrameOut(3)
	m.Batch(3)
	m.FrameIn("publish")
	m.Dropped("droppable", metrics.DropQueueFull, 1)
	m.ConnOpened(metrics.TransportWS)
	m.ConnClosed(metrics.TransportWS, 4010)
	m.QueueToWrite(3 * time.Millisecond)
	m.BrokerLatency(metrics.OpPublish, time.Millisecond)
	m.PublishedTo("chat:lobby")
	m.PublishedTo("unknown:ns")
	m.Handshake(2 * time.Millisecond)
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	m := metrics.New(nil)
	if n := testing.AllocsPerRun(1000, func() { hotPath(m) }); n != 0 {
		t.Errorf("hot path: %v allocations per run, want 0", n)
	}
	var nilM *metrics.Metrics
	if n := testing.AllocsPerRun(1000, func() { hotPath(nilM) }); n != 0 {
		t.Errorf("nil hot path: %v allocations per run, want 0", n)
	}
}

func BenchmarkHotPath(b *testing.B) {
	m := metrics.New(nil)
	b.Run("Delivered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Delivered(1)
		}
	})
	b.Run("FrameOut", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.FrameOut(4)
		}
	})
	b.Run("FrameIn", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.FrameIn("upload.commit") // last of the set: the longest scan
		}
	})
	b.Run("Batch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Batch(8)
		}
	})
	b.Run("DeliveredParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.Delivered(1)
			}
		})
	})
	b.Run("Nil", func(b *testing.B) {
		var nilM *metrics.Metrics
		b.ReportAllocs()
		for b.Loop() {
			nilM.Delivered(1)
			nilM.FrameOut(1)
		}
	})
}

// TestDocListsEveryMetric keeps the list in doc.go in step with what
// Handler serves.
func TestDocListsEveryMetric(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(src), "\n") {
		rest, ok := strings.CutPrefix(line, "//\tferry_")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut("ferry_"+rest, " ")
		name, _, _ = strings.Cut(name, "{")
		documented[name] = true
	}
	served := map[string]bool{}
	m := metrics.New(nil)
	m.SetCertExpiry(time.Now()) // served only with TLS
	for series := range scrape(t, m.Handler()) {
		if !strings.HasPrefix(series, "ferry_") {
			continue
		}
		name, _, _ := strings.Cut(series, "{")
		if base, ok := strings.CutSuffix(name, "_bucket"); ok {
			name = base
		} else if base, ok := strings.CutSuffix(name, "_sum"); ok {
			name = base
		} else if base, ok := strings.CutSuffix(name, "_count"); ok {
			name = base
		}
		served[name] = true
	}
	for name := range served {
		if !documented[name] {
			t.Errorf("%s is served but not listed in doc.go", name)
		}
	}
	for name := range documented {
		if !served[name] {
			t.Errorf("%s is listed in doc.go but not served", name)
		}
	}
}
