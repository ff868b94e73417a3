package server_test

import (
	"crypto/x509"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ferry-io/ferry/server"
)

// gathered returns the value of each sample of reg by metric name and
// label pairs joined ("op=publish"); histograms give their count.
func gathered(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			out[key] = sampleValue(m)
		}
	}
	return out
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

// TestOperationsMetricsWired: one connection, one subscription and one
// publish move the capacity, readiness and latency series an operator's
// alerts and dashboard use.
func TestOperationsMetricsWired(t *testing.T) {
	reg := prometheus.NewRegistry()
	certFile, keyFile, der := selfSigned(t, t.TempDir(), "ops")
	startNodeWith(t, func(c *server.Config) {
		c.MaxConnections = 50
		c.TLS = server.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	}, server.Options{Registerer: reg})
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "ferry_ready 1 and ferry_broker_up 1", func() bool {
		g := gathered(t, reg)
		return g["ferry_ready"] == 1 && g["ferry_broker_up"] == 1
	})
	g := gathered(t, reg)
	for key, want := range map[string]float64{
		"ferry_max_connections":                   50,
		"ferry_tls_cert_expiry_timestamp_seconds": float64(cert.NotAfter.Unix()),
	} {
		if g[key] != want {
			t.Errorf("%s = %v, want %v", key, g[key], want)
		}
	}
	if g["ferry_broker_request_duration_seconds op=ping"] < 1 {
		t.Errorf("no broker ping observed: %v", g["ferry_broker_request_duration_seconds op=ping"])
	}
}

func TestDeliveryLatencyMetricsWired(t *testing.T) {
	reg := prometheus.NewRegistry()
	n := startNodeWith(t, nil, server.Options{Registerer: reg})
	cl := connectClient(t, n, "alice")
	if r := cl.request(map[string]any{"type": "subscribe", "id": 2, "channel": "chat:ops"}); r["type"] != "subscribed" {
		t.Fatalf("subscribe: %v", r)
	}
	publishAPI(t, n, "chat:ops", map[string]any{"n": 1})
	cl.expect("message")
	eventually(t, "the write batch observed", func() bool {
		return gathered(t, reg)["ferry_queue_to_write_seconds"] >= 1
	})
	g := gathered(t, reg)
	for _, key := range []string{
		"ferry_handshake_duration_seconds",
		"ferry_broker_request_duration_seconds op=publish",
		"ferry_namespace_publishes_total namespace=chat",
	} {
		if g[key] < 1 {
			t.Errorf("%s = %v, want >= 1", key, g[key])
		}
	}
	if g["ferry_namespace_publishes_total namespace=other"] != 0 {
		t.Errorf("a configured namespace was counted as other")
	}
}
