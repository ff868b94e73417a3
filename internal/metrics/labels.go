package metrics

import "strconv"

// Transports: the label values of ConnOpened and ConnClosed.
const (
	TransportWS   = "ws"
	TransportSSE  = "sse"
	TransportPoll = "poll"
)

// Reasons a handshake is refused: the label values of HandshakeRejected.
const (
	RejectOrigin     = "origin"      // Origin not allowed (HTTP 403)
	RejectRateLimit  = "rate_limit"  // per-IP handshake limit (HTTP 429)
	RejectAuth       = "auth"        // missing, bad or expired token or ticket (HTTP 401)
	RejectCapacity   = "capacity"    // max_connections reached or draining (HTTP 503)
	RejectBadRequest = "bad_request" // malformed request, e.g. ?token= refused (HTTP 400)
)

// Sources of a publish: the label values of Published.
const (
	SourceClient = "client" // a publish frame from a connection
	SourceAPI    = "api"    // POST /v1/api/publish or broadcast
)

// Reasons a queued message is dropped: the label values of Dropped.
// Conflation is counted separately, by Conflated.
const (
	DropQueueFull = "queue_full"
)

// Broker operations: the label values of BrokerError.
const (
	OpPublish     = "publish"
	OpSubscribe   = "subscribe"
	OpUnsubscribe = "unsubscribe"
	OpHistory     = "history"
	OpControl     = "control"
	OpPing        = "ping"
	OpPresence    = "presence"
	OpUsers       = "users"
	OpKV          = "kv"
)

// labelOther is where a value outside a fixed set is counted.
const labelOther = "other"

// labelInvalid is the frame type label of a frame whose type is unknown.
const labelInvalid = "invalid"

// The fixed label sets. Each slice's order is the order of the children in
// Metrics; the child at len(set) is "other" (or "invalid").
var (
	transports    = []string{TransportWS, TransportSSE, TransportPoll}
	rejectReasons = []string{RejectOrigin, RejectRateLimit, RejectAuth, RejectCapacity, RejectBadRequest}
	sources       = []string{SourceClient, SourceAPI}
	dropReasons   = []string{DropQueueFull}
	priorities    = []string{"critical", "normal", "droppable"}
	brokerOps     = []string{OpPublish, OpSubscribe, OpUnsubscribe, OpHistory, OpControl, OpPing, OpPresence, OpUsers, OpKV}
	// clientFrameTypes are the protocol's client frame types
	// (PROTOCOL.md section 3).
	clientFrameTypes = []string{
		"connect", "subscribe", "unsubscribe", "publish", "ack", "ping",
		"refresh", "history", "presence",
		"upload.begin", "upload.chunk", "upload.commit", "rpc",
	}
	// closeCodes are the WebSocket close codes a connection can end with:
	// the standard ones a server sees (normal, going away, abnormal,
	// internal error) and the protocol's own (PROTOCOL.md section 4).
	closeCodes = []int{
		1000, 1001, 1006, 1011,
		4001, 4003, 4008, 4009, 4010, 4011, 4012, 4013, 4014, 4015, 4016, 4017,
	}
	// errorCodes are the protocol's error frame codes.
	errorCodes = []int{400, 401, 403, 404, 409, 413, 429, 500, 502, 503, 504}
)

// indexOf returns v's position in set, or len(set) (the "other" child) when
// v is not in it. The sets are short, so a scan beats a map and never
// allocates.
func indexOf[T comparable](set []T, v T) int {
	for i, s := range set {
		if s == v {
			return i
		}
	}
	return len(set)
}

// withOther returns the label values of set followed by last.
func withOther(set []string, last string) []string {
	out := make([]string, 0, len(set)+1)
	out = append(out, set...)
	return append(out, last)
}

// codeLabels returns the label values of a code set followed by "other".
func codeLabels(codes []int) []string {
	out := make([]string, 0, len(codes)+1)
	for _, c := range codes {
		out = append(out, strconv.Itoa(c))
	}
	return append(out, labelOther)
}
