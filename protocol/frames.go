package protocol

// Subprotocols offered on GET /v1/ws.
const (
	SubprotocolJSON    = "ferry.v1.json"
	SubprotocolMsgpack = "ferry.v1.msgpack"
)

// Client frame types.
const (
	TypeConnect      = "connect"
	TypeSubscribe    = "subscribe"
	TypeUnsubscribe  = "unsubscribe"
	TypePublish      = "publish"
	TypeAck          = "ack"
	TypePing         = "ping"
	TypeRefresh      = "refresh"
	TypeHistory      = "history"  // also the reply's type
	TypePresence     = "presence" // also the reply's type
	TypeUploadBegin  = "upload.begin"
	TypeUploadChunk  = "upload.chunk"
	TypeUploadCommit = "upload.commit"
	TypeRPC          = "rpc"
)

// Server frame types.
const (
	TypeConnected      = "connected"
	TypeSubscribed     = "subscribed"
	TypeUnsubscribed   = "unsubscribed"
	TypeMessage        = "message"
	TypePublished      = "published"
	TypePong           = "pong"
	TypeRefreshed      = "refreshed"
	TypeJoin           = "join"
	TypeLeave          = "leave"
	TypeError          = "error"
	TypeDisconnect     = "disconnect"
	TypeUploadReady    = "upload.ready"
	TypeUploadProgress = "upload.progress"
	TypeUploadDone     = "upload.done"
	TypeRPCResult      = "rpc.result"
)

// StreamPosition is a place in a channel's stream: the offset of the last
// message seen and the epoch it belonged to.
type StreamPosition struct {
	Offset uint64 `json:"offset" msgpack:"offset"`
	Epoch  string `json:"epoch" msgpack:"epoch"`
}

// Resume asks the server to restore an earlier session.
type Resume struct {
	Session string `json:"session" msgpack:"session"`
	Token   string `json:"token" msgpack:"token"`
}

// ClientFrame is any frame a client sends: one struct holds the fields of
// every client frame type, and Type says which apply. Validate checks that a
// frame carries what its type needs.
type ClientFrame struct {
	Type string `json:"type" msgpack:"type"`
	// ID is chosen by the client and echoed in the reply.
	ID uint32 `json:"id,omitempty" msgpack:"id,omitempty"`

	// connect, refresh
	Token  string  `json:"token,omitempty" msgpack:"token,omitempty"`
	Client string  `json:"client,omitempty" msgpack:"client,omitempty"`
	Resume *Resume `json:"resume,omitempty" msgpack:"resume,omitempty"`
	Window uint32  `json:"window,omitempty" msgpack:"window,omitempty"`

	// subscribe, unsubscribe, publish, history, presence
	Channel  string          `json:"channel,omitempty" msgpack:"channel,omitempty"`
	Since    *StreamPosition `json:"since,omitempty" msgpack:"since,omitempty"`
	Presence bool            `json:"presence,omitempty" msgpack:"presence,omitempty"`
	Limit    int             `json:"limit,omitempty" msgpack:"limit,omitempty"`

	// publish (Data is also the chunk of upload.chunk)
	Data     RawJSON `json:"data,omitempty" msgpack:"data,omitempty"`
	Key      string  `json:"key,omitempty" msgpack:"key,omitempty"`
	Priority string  `json:"priority,omitempty" msgpack:"priority,omitempty"`
	Conflate string  `json:"conflate,omitempty" msgpack:"conflate,omitempty"`

	// ack
	Seq uint64 `json:"seq,omitempty" msgpack:"seq,omitempty"`

	// upload.begin, upload.chunk, upload.commit
	Name      string `json:"name,omitempty" msgpack:"name,omitempty"`
	Size      int64  `json:"size,omitempty" msgpack:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty" msgpack:"sha256,omitempty"`
	ChunkSize int64  `json:"chunk_size,omitempty" msgpack:"chunk_size,omitempty"`
	Upload    string `json:"upload,omitempty" msgpack:"upload,omitempty"`
	Offset    int64  `json:"offset,omitempty" msgpack:"offset,omitempty"`

	// rpc (its payload is Data)
	Method string `json:"method,omitempty" msgpack:"method,omitempty"`

	// Invalid is set by a codec when this element of a message was
	// well-formed but could not be read as a frame (a field of the wrong
	// type, say); ID is filled when it could still be read. The receiver
	// answers with an error frame (code 400) and keeps the connection.
	Invalid string `json:"-" msgpack:"-"`
}

// ServerFrame is implemented by every frame the server sends. stamp sets the
// frame's type field, so a frame can never go out with the wrong type.
type ServerFrame interface {
	FrameType() string
	stamp()
}

// Heartbeat tells the client how the server checks liveness.
type Heartbeat struct {
	IntervalMS int64 `json:"interval_ms" msgpack:"interval_ms"`
	TimeoutMS  int64 `json:"timeout_ms" msgpack:"timeout_ms"`
}

// Limits tells the client what the server enforces on this connection.
type Limits struct {
	MaxFrameBytes int     `json:"max_frame_bytes" msgpack:"max_frame_bytes"`
	Window        uint32  `json:"window" msgpack:"window"`
	Rate          float64 `json:"rate" msgpack:"rate"` // client publishes per second, 0 = unlimited
}

// Connected answers connect.
type Connected struct {
	Type        string    `json:"type" msgpack:"type"`
	ID          uint32    `json:"id,omitempty" msgpack:"id,omitempty"`
	Session     string    `json:"session" msgpack:"session"`
	ResumeToken string    `json:"resume_token" msgpack:"resume_token"`
	Node        string    `json:"node" msgpack:"node"`
	User        string    `json:"user" msgpack:"user"`
	Heartbeat   Heartbeat `json:"heartbeat" msgpack:"heartbeat"`
	Limits      Limits    `json:"limits" msgpack:"limits"`
	Resumed     bool      `json:"resumed" msgpack:"resumed"`
	ExpiresAt   int64     `json:"expires_at,omitempty" msgpack:"expires_at,omitempty"` // token expiry, unix seconds
	// SessionToken and StreamTicket are set for HTTP-fallback sessions only.
	SessionToken string `json:"session_token,omitempty" msgpack:"session_token,omitempty"`
	StreamTicket string `json:"stream_ticket,omitempty" msgpack:"stream_ticket,omitempty"`
}

// Subscribed answers subscribe; it is also sent without ID for every channel
// restored by a resumed session.
type Subscribed struct {
	Type      string `json:"type" msgpack:"type"`
	ID        uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Channel   string `json:"channel" msgpack:"channel"`
	Offset    uint64 `json:"offset" msgpack:"offset"`
	Epoch     string `json:"epoch" msgpack:"epoch"`
	Recovered bool   `json:"recovered" msgpack:"recovered"`
	Missed    uint64 `json:"missed" msgpack:"missed"`
}

// Unsubscribed answers unsubscribe (or, without ID, tells the client the
// server ended a subscription, with a reason).
type Unsubscribed struct {
	Type    string `json:"type" msgpack:"type"`
	ID      uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Channel string `json:"channel" msgpack:"channel"`
	Reason  string `json:"reason,omitempty" msgpack:"reason,omitempty"`
}

// Message is a publication delivered to a subscriber. On the fan-out path it
// is never encoded through this struct: see PreparedMessage.
type Message struct {
	Type     string  `json:"type" msgpack:"type"`
	Channel  string  `json:"channel" msgpack:"channel"`
	Offset   uint64  `json:"offset" msgpack:"offset"`
	Epoch    string  `json:"epoch" msgpack:"epoch"`
	Data     RawJSON `json:"data" msgpack:"data"`
	Priority string  `json:"priority,omitempty" msgpack:"priority,omitempty"`
	From     string  `json:"from,omitempty" msgpack:"from,omitempty"`
	Seq      uint64  `json:"seq" msgpack:"seq"`
}

// Published answers publish.
type Published struct {
	Type      string `json:"type" msgpack:"type"`
	ID        uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Offset    uint64 `json:"offset" msgpack:"offset"`
	Epoch     string `json:"epoch" msgpack:"epoch"`
	Duplicate bool   `json:"duplicate" msgpack:"duplicate"`
}

// Pong answers ping.
type Pong struct {
	Type string `json:"type" msgpack:"type"`
	ID   uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
}

// Refreshed answers refresh.
type Refreshed struct {
	Type      string `json:"type" msgpack:"type"`
	ID        uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	ExpiresAt int64  `json:"expires_at" msgpack:"expires_at"` // unix seconds, 0 = never
}

// HistoryMessage is one retained message in a history reply.
type HistoryMessage struct {
	Offset   uint64  `json:"offset" msgpack:"offset"`
	Epoch    string  `json:"epoch" msgpack:"epoch"`
	Data     RawJSON `json:"data" msgpack:"data"`
	Priority string  `json:"priority,omitempty" msgpack:"priority,omitempty"`
	From     string  `json:"from,omitempty" msgpack:"from,omitempty"`
	Time     int64   `json:"time,omitempty" msgpack:"time,omitempty"` // unix milliseconds
}

// History answers history.
type History struct {
	Type     string           `json:"type" msgpack:"type"`
	ID       uint32           `json:"id,omitempty" msgpack:"id,omitempty"`
	Channel  string           `json:"channel" msgpack:"channel"`
	Messages []HistoryMessage `json:"messages" msgpack:"messages"`
	Offset   uint64           `json:"offset" msgpack:"offset"` // the channel's latest offset
	Epoch    string           `json:"epoch" msgpack:"epoch"`
}

// ClientInfo names one connection present in a channel.
type ClientInfo struct {
	User string `json:"user" msgpack:"user"`
	Conn string `json:"conn" msgpack:"conn"`
}

// Presence answers presence.
type Presence struct {
	Type    string       `json:"type" msgpack:"type"`
	ID      uint32       `json:"id,omitempty" msgpack:"id,omitempty"`
	Channel string       `json:"channel" msgpack:"channel"`
	Clients []ClientInfo `json:"clients" msgpack:"clients"`
	Count   int          `json:"count" msgpack:"count"`
}

// PresenceEvent is a join or leave event (type "join" or "leave").
type PresenceEvent struct {
	Type    string `json:"type" msgpack:"type"`
	Channel string `json:"channel" msgpack:"channel"`
	User    string `json:"user" msgpack:"user"`
	Conn    string `json:"conn" msgpack:"conn"`
	Leave   bool   `json:"-" msgpack:"-"`
}

// ErrorFrame reports a failed request (with its ID) or a problem not tied to
// one (without).
type ErrorFrame struct {
	Type   string `json:"type" msgpack:"type"`
	ID     uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Code   int    `json:"code" msgpack:"code"`
	Reason string `json:"reason" msgpack:"reason"`
	Retry  bool   `json:"retry" msgpack:"retry"`
}

// Disconnect is sent just before the server closes a connection.
type Disconnect struct {
	Type         string `json:"type" msgpack:"type"`
	Code         int    `json:"code" msgpack:"code"`
	Reason       string `json:"reason" msgpack:"reason"`
	Reconnect    bool   `json:"reconnect" msgpack:"reconnect"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty" msgpack:"retry_after_ms,omitempty"`
}

// UploadReady answers upload.begin.
type UploadReady struct {
	Type   string `json:"type" msgpack:"type"`
	ID     uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Upload string `json:"upload" msgpack:"upload"`
	Offset int64  `json:"offset" msgpack:"offset"`
}

// UploadProgress is the checkpoint after a chunk is durable.
type UploadProgress struct {
	Type   string `json:"type" msgpack:"type"`
	ID     uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Upload string `json:"upload" msgpack:"upload"`
	Offset int64  `json:"offset" msgpack:"offset"`
}

// UploadDone answers upload.commit.
type UploadDone struct {
	Type   string `json:"type" msgpack:"type"`
	ID     uint32 `json:"id,omitempty" msgpack:"id,omitempty"`
	Upload string `json:"upload" msgpack:"upload"`
	Size   int64  `json:"size" msgpack:"size"`
	SHA256 string `json:"sha256" msgpack:"sha256"`
	URL    string `json:"url,omitempty" msgpack:"url,omitempty"`
}

// RPCResult answers rpc with what the back end returned.
type RPCResult struct {
	Type string  `json:"type" msgpack:"type"`
	ID   uint32  `json:"id,omitempty" msgpack:"id,omitempty"`
	Data RawJSON `json:"data" msgpack:"data"`
}

func (*RPCResult) FrameType() string      { return TypeRPCResult }
func (*Connected) FrameType() string      { return TypeConnected }
func (*Subscribed) FrameType() string     { return TypeSubscribed }
func (*Unsubscribed) FrameType() string   { return TypeUnsubscribed }
func (*Message) FrameType() string        { return TypeMessage }
func (*Published) FrameType() string      { return TypePublished }
func (*Pong) FrameType() string           { return TypePong }
func (*Refreshed) FrameType() string      { return TypeRefreshed }
func (*History) FrameType() string        { return TypeHistory }
func (*Presence) FrameType() string       { return TypePresence }
func (*ErrorFrame) FrameType() string     { return TypeError }
func (*Disconnect) FrameType() string     { return TypeDisconnect }
func (*UploadReady) FrameType() string    { return TypeUploadReady }
func (*UploadProgress) FrameType() string { return TypeUploadProgress }
func (*UploadDone) FrameType() string     { return TypeUploadDone }
func (f *PresenceEvent) FrameType() string {
	if f.Leave {
		return TypeLeave
	}
	return TypeJoin
}

func (f *RPCResult) stamp()      { f.Type = TypeRPCResult }
func (f *Connected) stamp()      { f.Type = TypeConnected }
func (f *Subscribed) stamp()     { f.Type = TypeSubscribed }
func (f *Unsubscribed) stamp()   { f.Type = TypeUnsubscribed }
func (f *Message) stamp()        { f.Type = TypeMessage }
func (f *Published) stamp()      { f.Type = TypePublished }
func (f *Pong) stamp()           { f.Type = TypePong }
func (f *Refreshed) stamp()      { f.Type = TypeRefreshed }
func (f *History) stamp()        { f.Type = TypeHistory }
func (f *Presence) stamp()       { f.Type = TypePresence }
func (f *ErrorFrame) stamp()     { f.Type = TypeError }
func (f *Disconnect) stamp()     { f.Type = TypeDisconnect }
func (f *UploadReady) stamp()    { f.Type = TypeUploadReady }
func (f *UploadProgress) stamp() { f.Type = TypeUploadProgress }
func (f *UploadDone) stamp()     { f.Type = TypeUploadDone }
func (f *PresenceEvent) stamp()  { f.Type = f.FrameType() }
