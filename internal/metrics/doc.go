// Package metrics records a Ferry node's Prometheus metrics: connections by
// transport, disconnects by close code, rejected handshakes, frames in and
// out, publishes, deliveries, drops, write batches, broker errors, history
// recovery and session resumption.
//
// Everything goes through one concrete type, *Metrics. A nil *Metrics is
// the no-op default: every method is safe to call on it and records
// nothing, so the parts of the server can hold a *Metrics without checking
// whether metrics are on.
//
// Label values come from small fixed sets (the exported constants below and
// the protocol's frame types, close codes and error codes); anything else is
// counted under "other" (or "invalid" for frame types), so a misbehaving
// client can never grow the number of series. Every labelled child is
// resolved once in New, so a call on the hot path is a scan of a short
// fixed list and one atomic add, with no allocation and no map lookup.
//
// Handler serves, in the Prometheus text format, the Go runtime and process
// collectors and these series (every labelled child exists from the start,
// at 0, so rate() and alerts work before the first event):
//
//	ferry_connections{transport}                  gauge    ws, sse, poll, other
//	ferry_connections_opened_total{transport}     counter
//	ferry_disconnects_total{code}                 counter  1000, 1001, 1006, 1011, 4001, 4003, 4008..4017, other
//	ferry_handshakes_rejected_total{reason}       counter  origin, rate_limit, auth, capacity, bad_request, other
//	ferry_frames_in_total{type}                   counter  client frame types, invalid
//	ferry_frames_out_total                        counter
//	ferry_publishes_total{source}                 counter  client, api, other
//	ferry_publish_duplicates_total                counter
//	ferry_errors_sent_total{code}                 counter  400 .. 504, other
//	ferry_messages_delivered_total                counter
//	ferry_messages_dropped_total{priority,reason} counter  critical/normal/droppable/other x queue_full/other
//	ferry_messages_conflated_total                counter
//	ferry_slow_consumer_closes_total              counter
//	ferry_write_batch_frames                      histogram frames per write, buckets 1..256
//	ferry_queued_frames                           gauge    from SetQueueDepthFunc
//	ferry_broker_errors_total{op}                 counter  publish, subscribe, ..., other
//	ferry_history_recoveries_total{result}        counter  recovered, incomplete
//	ferry_session_resumes_total{result}           counter  ok, failed
//	ferry_build_info{version,revision,goversion}  gauge    always 1 (internal/version)
//	ferry_max_connections                         gauge    the connection cap in force
//	ferry_ready                                   gauge    1 when /readyz would answer 200
//	ferry_broker_up                               gauge    1 when the broker answered the last ping
//	ferry_tls_cert_expiry_timestamp_seconds       gauge    Unix time; only with TLS
//	ferry_handshake_duration_seconds              histogram upgrade done to connected reply
//	ferry_broker_request_duration_seconds{op}     histogram publish, history, ping, ...
//	ferry_queue_to_write_seconds                  histogram per write batch, first queued to written
//	ferry_namespace_publishes_total{namespace}    counter  configured namespaces, default, other
//	ferry_hook_requests_total{hook,result}        counter  connect/refresh/subscribe/publish/rpc/webhook x ok/timeout/unavailable/bad_answer/busy/breaker_open
//	ferry_hook_duration_seconds{hook}             histogram request sent to answer read (not for busy, breaker_open)
//	ferry_webhook_dropped_total{reason}           counter  queue_full, gave_up, rejected, shutdown, other
//	ferry_upload_bytes_total                      counter  upload bytes written to the store (both paths)
//	ferry_uploads_active                          gauge    unfinished uploads at the last sweep
//	ferry_uploads_completed_total                 counter  uploads whose sha256 was verified
//	ferry_uploads_expired_total                   counter  unfinished uploads removed after uploads.ttl
//	ferry_upload_resumes_total                    counter  uploads continued from a non-zero offset
//	ferry_uploads_rejected_total                  counter  uploads removed for a wrong sha256
//
// The open-file limit is the process collector's process_max_fds; the
// capacity alert divides ferry_connections by ferry_max_connections, which
// is never above that limit less a reserve.
//
// ferry_queue_to_write_seconds costs one clock reading per write batch,
// not per message: the session notes the time when its idle queue gets a
// message, and the writer compares it with the pool clock it reads for the
// batch anyway. It covers queueing, coalescing and the writer's wait on
// this node; the broker leg of a publish is
// ferry_broker_request_duration_seconds{op="publish"}.
package metrics
