package hooks

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/metrics"
	"github.com/ferry-io/ferry/internal/testutil/wait"
)

// TestWebhookRetriesThenDrops: a back end answering 503 gets the event
// Attempts times, then the drop is counted; a back end that recovers gets
// the event signed, and the test back end verifies the signature.
func TestWebhookRetriesThenDrops(t *testing.T) {
	const secret = "webhook-secret"
	var mu sync.Mutex
	status := http.StatusServiceUnavailable
	attempts := 0
	var got []Event
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(secret, r.Header.Get(HeaderSignature), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		var ev Event
		if err := json.Unmarshal(body, &ev); err != nil || r.Header.Get(HeaderEvent) != ev.Kind {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		got = append(got, ev)
	})
	m := metrics.New(nil)
	w := NewWebhooks(WebhookConfig{URL: srv.URL, Secret: secret, Attempts: 3, Backoff: 5 * time.Millisecond, Node: "n1", Metrics: m})
	defer w.Close()

	w.Send(Event{Kind: EventConnectionOpened, Conn: "c1", User: "alice"})
	wait.For(t, "the drop after 3 attempts", func() bool {
		return dropped(t, m, metrics.WebhookGaveUp) == "1"
	})
	mu.Lock()
	if attempts != 3 {
		t.Errorf("%d attempts, want 3", attempts)
	}
	status = http.StatusOK
	mu.Unlock()

	w.Send(Event{Kind: EventSubscribed, Conn: "c1", User: "alice", Channel: "chat:a"})
	wait.For(t, "the event delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if ev := got[0]; ev.Kind != EventSubscribed || ev.Channel != "chat:a" || ev.Node != "n1" || ev.Time == 0 {
		t.Errorf("delivered %+v", ev)
	}
}

// TestWebhookQueueBound: with the back end stalled, events beyond the
// queue are dropped at once (Send never blocks) and counted.
func TestWebhookQueueBound(t *testing.T) {
	release := make(chan struct{})
	srv := backend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	m := metrics.New(nil)
	w := NewWebhooks(WebhookConfig{URL: srv.URL, Queue: 4, Senders: 1, Metrics: m})
	for range 10 {
		w.Send(Event{Kind: EventConnectionClosed})
	}
	if n := dropped(t, m, metrics.WebhookQueueFull); n != "6" {
		t.Errorf("%v dropped as queue_full, want 6", n)
	}
	close(release)
	w.Close()
}

// dropped scrapes m for ferry_webhook_dropped_total{reason}.
func dropped(t *testing.T, m *metrics.Metrics, reason string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	prefix := `ferry_webhook_dropped_total{reason="` + reason + `"} `
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	t.Fatalf("no %s in the metrics", prefix)
	return ""
}
