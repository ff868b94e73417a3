package metrics

import "github.com/prometheus/client_golang/prometheus"

// uploads are the series of resumable uploads (internal/upload), for both
// paths (session frames and tus over HTTP), which share one store.
type uploads struct {
	uploadBytes     prometheus.Counter
	uploadsActive   prometheus.Gauge
	uploadsDone     prometheus.Counter
	uploadsExpired  prometheus.Counter
	uploadResumes   prometheus.Counter
	uploadsRejected prometheus.Counter
}

func newUploads(r registrar) uploads {
	counter := func(name, help string) prometheus.Counter {
		return register(r, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
	}
	return uploads{
		uploadBytes: counter("ferry_upload_bytes_total",
			"Upload bytes written to the upload store by this node (session chunks and tus PATCH bodies)."),
		uploadsActive: register(r, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ferry_uploads_active",
			Help: "Uploads in the store that are not complete yet, as of this node's last sweep of the store.",
		})),
		uploadsDone: counter("ferry_uploads_completed_total",
			"Uploads completed with a verified sha256 on this node."),
		uploadsExpired: counter("ferry_uploads_expired_total",
			"Partial uploads removed by this node because they saw no bytes for uploads.ttl."),
		uploadResumes: counter("ferry_upload_resumes_total",
			"Uploads continued from a non-zero offset (upload.begin finding a partial upload, or a tus HEAD on one)."),
		uploadsRejected: counter("ferry_uploads_rejected_total",
			"Uploads whose bytes did not match their declared sha256 (removed)."),
	}
}

// UploadBytes counts n upload bytes written to the store.
func (m *Metrics) UploadBytes(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.uploadBytes.Add(float64(n))
}

// SetUploadsActive sets ferry_uploads_active.
func (m *Metrics) SetUploadsActive(n int) {
	if m == nil {
		return
	}
	m.uploadsActive.Set(float64(n))
}

// UploadCompleted counts an upload whose hash was verified.
func (m *Metrics) UploadCompleted() {
	if m == nil {
		return
	}
	m.uploadsDone.Inc()
}

// UploadExpired counts a partial upload removed after uploads.ttl.
func (m *Metrics) UploadExpired() {
	if m == nil {
		return
	}
	m.uploadsExpired.Inc()
}

// UploadResumed counts an upload continued from a non-zero offset.
func (m *Metrics) UploadResumed() {
	if m == nil {
		return
	}
	m.uploadResumes.Inc()
}

// UploadRejected counts an upload removed for a wrong sha256.
func (m *Metrics) UploadRejected() {
	if m == nil {
		return
	}
	m.uploadsRejected.Inc()
}
