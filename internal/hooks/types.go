package hooks

import "encoding/json"

// The request and answer bodies of the hooks (docs/hooks.md). Every
// request carries Meta; every answer may carry Error to refuse.

// Meta says who asks: the connection, its user (empty before connect
// decides it), the transport, the client IP (truncated unless logs.ip is
// full) and the forwarded headers (only those on the allowlist).
type Meta struct {
	Conn      string            `json:"conn"`
	User      string            `json:"user"`
	Transport string            `json:"transport"`
	IP        string            `json:"ip,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	// Info is what the connect hook returned for this connection.
	Info json.RawMessage `json:"info,omitempty"`
}

// Refusal is the back end's no: a code and a reason for the client.
type Refusal struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// ConnectRequest asks whether a connection may open.
type ConnectRequest struct {
	Meta
	// Client is the client's self-description from the connect frame.
	Client string `json:"client,omitempty"`
}

// ConnectAnswer is the connect hook's verdict.
type ConnectAnswer struct {
	// User is the connection's user id ("" = anonymous).
	User string `json:"user"`
	// Channels are subscribed server-side right after connected.
	Channels []string `json:"channels,omitempty"`
	// ExpiresAt (unix seconds, 0 = never) is when the refresh hook is
	// asked whether the connection goes on.
	ExpiresAt int64 `json:"expires_at,omitempty"`
	// Info is kept with the connection and sent with its later hooks.
	Info json.RawMessage `json:"info,omitempty"`
	// Error refuses the connection (Code: a close code 4000-4999).
	Error *Refusal `json:"error,omitempty"`
}

// RefreshRequest asks whether a connection whose expiry came goes on.
type RefreshRequest struct {
	Meta
	ExpiresAt int64 `json:"expires_at"`
}

// RefreshAnswer extends the connection to ExpiresAt, or ends it (Error,
// or an ExpiresAt that is not in the future).
type RefreshAnswer struct {
	ExpiresAt int64           `json:"expires_at"`
	Info      json.RawMessage `json:"info,omitempty"`
	Error     *Refusal        `json:"error,omitempty"`
}

// SubscribeRequest asks whether the connection may subscribe to Channel.
type SubscribeRequest struct {
	Meta
	Channel string `json:"channel"`
}

// SubscribeAnswer allows (no Error), with optional channel Info that the
// subscribed webhook carries, or denies (Error: a 4xx error code).
type SubscribeAnswer struct {
	Info  json.RawMessage `json:"info,omitempty"`
	Error *Refusal        `json:"error,omitempty"`
}

// PublishRequest asks whether a client's publish goes to the broker.
type PublishRequest struct {
	Meta
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	Key     string          `json:"key,omitempty"`
}

// PublishAnswer lets the publish through, with Data instead of the
// client's when set, or refuses it (Error: a 4xx error code).
type PublishAnswer struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Error *Refusal        `json:"error,omitempty"`
}

// RPCRequest is a client's rpc frame.
type RPCRequest struct {
	Meta
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// RPCAnswer is the result for the client (Data, sent in rpc.result) or an
// error frame (Error: a 4xx error code).
type RPCAnswer struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Error *Refusal        `json:"error,omitempty"`
}
