package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Hook names: the label values of HookRequest (docs/hooks.md).
const (
	HookConnect   = "connect"
	HookRefresh   = "refresh"
	HookSubscribe = "subscribe"
	HookPublish   = "publish"
	HookRPC       = "rpc"
	HookWebhook   = "webhook"
)

// Results of a hook call: the label values of HookRequest.
const (
	HookOK          = "ok"           // the back end answered (allowing or refusing)
	HookTimeout     = "timeout"      // no answer within the hook's timeout
	HookUnavailable = "unavailable"  // connection refused, or a 5xx status
	HookBadAnswer   = "bad_answer"   // malformed, too large, or an unexpected status
	HookBusy        = "busy"         // over the concurrency bound: not sent
	HookBreakerOpen = "breaker_open" // the circuit breaker is open: not sent
)

// Reasons a webhook event is dropped: the label values of WebhookDropped.
const (
	WebhookQueueFull = "queue_full" // the retry queue was full
	WebhookGaveUp    = "gave_up"    // every attempt failed
	WebhookRejected  = "rejected"   // the back end answered 4xx: not retried
	WebhookShutdown  = "shutdown"   // the node stopped with the event queued
)

var (
	hookNames    = []string{HookConnect, HookRefresh, HookSubscribe, HookPublish, HookRPC, HookWebhook}
	hookResults  = []string{HookOK, HookTimeout, HookUnavailable, HookBadAnswer, HookBusy, HookBreakerOpen}
	webhookDrops = []string{WebhookQueueFull, WebhookGaveUp, WebhookRejected, WebhookShutdown}
)

// hookSeries are the series of the back-end hooks: requests by hook and
// result, their duration by hook, and webhook events dropped by reason.
// Every label set is fixed (unknown values count as "other").
type hookSeries struct {
	hookRequests [][]prometheus.Counter // [hook][result], "other" last in both
	hookDuration []prometheus.Observer  // by hook, "other" last
	webhookDrops []prometheus.Counter   // by reason, "other" last
}

func newHookSeries(r registrar) hookSeries {
	var h hookSeries
	reqs := register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_hook_requests_total",
		Help: "Calls of back-end hooks, by hook and result (ok, timeout, unavailable, bad_answer, busy, breaker_open).",
	}, []string{"hook", "result"}))
	dur := register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ferry_hook_duration_seconds",
		Help:    "Time from sending a hook request to reading its answer, by hook.",
		Buckets: latencyBuckets,
	}, []string{"hook"}))
	for _, name := range withOther(hookNames, labelOther) {
		var row []prometheus.Counter
		for _, res := range withOther(hookResults, labelOther) {
			row = append(row, reqs.WithLabelValues(name, res))
		}
		h.hookRequests = append(h.hookRequests, row)
		h.hookDuration = append(h.hookDuration, dur.WithLabelValues(name))
	}
	h.webhookDrops = children(register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ferry_webhook_dropped_total",
		Help: "Webhook events given up, by reason (queue_full, gave_up, rejected, shutdown).",
	}, []string{"reason"})), withOther(webhookDrops, labelOther))
	return h
}

// HookRequest counts one hook call and, when it was sent, its duration.
func (m *Metrics) HookRequest(hook, result string, d time.Duration) {
	if m == nil {
		return
	}
	i := indexOf(hookNames, hook)
	m.hookRequests[i][indexOf(hookResults, result)].Inc()
	if result != HookBusy && result != HookBreakerOpen {
		m.hookDuration[i].Observe(d.Seconds())
	}
}

// WebhookDropped counts a webhook event given up.
func (m *Metrics) WebhookDropped(reason string) {
	if m == nil {
		return
	}
	m.webhookDrops[indexOf(webhookDrops, reason)].Inc()
}
