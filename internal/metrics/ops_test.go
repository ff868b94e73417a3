package metrics_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/metrics"
)

func TestOperationsSeries(t *testing.T) {
	m := metrics.New(nil, "chat", "prices")
	got := scrape(t, m.Handler())
	if _, ok := got["ferry_tls_cert_expiry_timestamp_seconds"]; ok {
		t.Error("certificate expiry served without TLS")
	}
	if got["ferry_ready"] != 0 || got["ferry_broker_up"] != 0 {
		t.Errorf("fresh node: ready %v, broker_up %v", got["ferry_ready"], got["ferry_broker_up"])
	}
	build := 0
	for k, v := range got {
		if strings.HasPrefix(k, "ferry_build_info{") && v == 1 && strings.Contains(k, `goversion="go1.`) {
			build++
		}
	}
	if build != 1 {
		t.Errorf("ferry_build_info: %d series with value 1 and a Go version", build)
	}

	expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ready := true
	m.SetMaxConnections(500)
	m.SetBrokerUp(true)
	m.SetReadyFunc(func() bool { return ready })
	m.SetCertExpiry(expiry)
	m.Handshake(3 * time.Millisecond)
	m.BrokerLatency(metrics.OpPing, time.Millisecond)
	m.BrokerLatency("nonsense", time.Millisecond)
	m.QueueToWrite(300 * time.Millisecond)
	for _, ch := range []string{"chat:a", "chat:b", "prices:x", "lobby", "junk1:x", "junk2:y"} {
		m.PublishedTo(ch)
	}
	got = scrape(t, m.Handler())
	for series, want := range map[string]float64{
		"ferry_max_connections":                                   500,
		"ferry_broker_up":                                         1,
		"ferry_ready":                                             1,
		"ferry_tls_cert_expiry_timestamp_seconds":                 float64(expiry.Unix()),
		"ferry_handshake_duration_seconds_count":                  1,
		`ferry_broker_request_duration_seconds_count{op="ping"}`:  1,
		`ferry_broker_request_duration_seconds_count{op="other"}`: 1,
		"ferry_queue_to_write_seconds_count":                      1,
		`ferry_queue_to_write_seconds_bucket{le="0.256"}`:         0,
		`ferry_queue_to_write_seconds_bucket{le="0.512"}`:         1,
		`ferry_namespace_publishes_total{namespace="chat"}`:       2,
		`ferry_namespace_publishes_total{namespace="prices"}`:     1,
		`ferry_namespace_publishes_total{namespace="default"}`:    1,
		`ferry_namespace_publishes_total{namespace="other"}`:      2,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", series, v, ok, want)
		}
	}
	if n := seriesOf(got, "ferry_namespace_publishes_total"); n != 4 {
		t.Errorf("ferry_namespace_publishes_total: %d series, want 4 (chat, prices, default, other)", n)
	}
	ready = false
	m.SetCertExpiry(time.Time{})
	got = scrape(t, m.Handler())
	if got["ferry_ready"] != 0 {
		t.Error("ferry_ready stayed 1")
	}
	if _, ok := got["ferry_tls_cert_expiry_timestamp_seconds"]; ok {
		t.Error("certificate expiry still served after it was cleared")
	}
}

// TestNamespaceLabelsStayFixed: publishing to many namespaces that are
// not configured adds no series.
func TestNamespaceLabelsStayFixed(t *testing.T) {
	m := metrics.New(nil, "chat")
	for i := range 100 {
		m.PublishedTo(fmt.Sprintf("ns%d:x", i))
	}
	if n := seriesOf(scrape(t, m.Handler()), "ferry_namespace_publishes_total"); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}
