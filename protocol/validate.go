package protocol

// MaxChannelLen is the longest channel name, in bytes.
const MaxChannelLen = 255

// MaxMethodLen is the longest rpc method name, in bytes.
const MaxMethodLen = 255

// MaxWindow is the largest credit window a client may ask for in connect.
// (The server may grant less: see Limits.Window in connected.)
const MaxWindow = 1 << 16

// ValidChannel checks a channel name: 1 to MaxChannelLen bytes of printable
// ASCII without spaces and without '*', '{' and '}' (which are pattern
// syntax in token claims). It returns nil or an *Error with code 400.
func ValidChannel(name string) error {
	if name == "" {
		return Errorf(CodeBadRequest, "channel name is empty")
	}
	if len(name) > MaxChannelLen {
		return Errorf(CodeBadRequest, "channel name is %d bytes long, more than %d", len(name), MaxChannelLen)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '*' || c == '{' || c == '}':
			return Errorf(CodeBadRequest, "channel %q: %q is not allowed", name, c)
		case c <= ' ' || c >= 0x7f:
			return Errorf(CodeBadRequest, "channel %q: byte %d is not printable ASCII", name, i)
		}
	}
	return nil
}

// Validate checks that f carries what its type needs. It returns nil when
// the frame is usable, else an *Error with code 400 and the reason (a frame
// a codec could not read, Invalid set, gives that reason).
//
// Rules: type is one of the client types; id is required (non-zero) for
// every type that has a reply except connect; channel is required and valid
// (ValidChannel) for subscribe, unsubscribe, publish, history and presence;
// publish needs data and a known priority; ack needs seq > 0; refresh needs
// a token; history needs limit >= 0; connect's window is at most MaxWindow,
// and its resume needs both session and token; upload.begin needs name,
// size > 0, a sha256 of 64 hex digits and chunk_size >= 0; upload.chunk
// needs upload, offset >= 0 and data as a base64 string; upload.commit needs
// upload; rpc needs a method of 1 to MaxMethodLen bytes (data is optional).
func (f *ClientFrame) Validate() *Error {
	if f.Invalid != "" {
		return &Error{Code: CodeBadRequest, Reason: f.Invalid}
	}
	switch f.Type {
	case "":
		return Errorf(CodeBadRequest, `frame has no "type"`)
	case TypeConnect:
		if f.Window > MaxWindow {
			return f.bad("window %d is more than %d", f.Window, MaxWindow)
		}
		if f.Resume != nil && (f.Resume.Session == "" || f.Resume.Token == "") {
			return f.bad(`"resume" needs "session" and "token"`)
		}
		return nil
	case TypeAck:
		if f.Seq == 0 {
			return f.bad(`needs "seq" > 0`)
		}
		return nil
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypePing, TypeRefresh,
		TypeHistory, TypePresence, TypeUploadBegin, TypeUploadChunk, TypeUploadCommit, TypeRPC:
		if f.ID == 0 {
			return f.bad(`needs an "id" (a non-zero integer)`)
		}
	default:
		return Errorf(CodeBadRequest, "unknown frame type %q", f.Type)
	}

	switch f.Type {
	case TypeSubscribe, TypeUnsubscribe, TypePublish, TypeHistory, TypePresence:
		if err := ValidChannel(f.Channel); err != nil {
			return f.bad("%s", AsError(err).Reason)
		}
	}

	switch f.Type {
	case TypePublish:
		if len(f.Data) == 0 {
			return f.bad(`needs "data"`)
		}
		if _, err := ParsePriority(f.Priority); err != nil {
			return f.bad("%s", AsError(err).Reason)
		}
	case TypeRefresh:
		if f.Token == "" {
			return f.bad(`needs a "token"`)
		}
	case TypeHistory:
		if f.Limit < 0 {
			return f.bad(`"limit" %d is negative`, f.Limit)
		}
	case TypeUploadBegin:
		switch {
		case f.Name == "":
			return f.bad(`needs a "name"`)
		case f.Size <= 0:
			return f.bad(`needs a "size" > 0`)
		case !isSHA256Hex(f.SHA256):
			return f.bad(`"sha256" must be 64 hex digits`)
		case f.ChunkSize < 0:
			return f.bad(`"chunk_size" %d is negative`, f.ChunkSize)
		}
	case TypeUploadChunk:
		switch {
		case f.Upload == "":
			return f.bad(`needs an "upload"`)
		case f.Offset < 0:
			return f.bad(`"offset" %d is negative`, f.Offset)
		case len(f.Data) == 0:
			return f.bad(`needs "data"`)
		case f.Data[0] != '"':
			return f.bad(`"data" must be a base64 string (bin in MessagePack)`)
		}
	case TypeUploadCommit:
		if f.Upload == "" {
			return f.bad(`needs an "upload"`)
		}
	case TypeRPC:
		if f.Method == "" {
			return f.bad(`needs a "method"`)
		}
		if len(f.Method) > MaxMethodLen {
			return f.bad(`"method" is %d bytes long, more than %d`, len(f.Method), MaxMethodLen)
		}
	}
	return nil
}

// bad returns a 400 whose reason starts with the frame's type.
func (f *ClientFrame) bad(format string, args ...any) *Error {
	e := Errorf(CodeBadRequest, format, args...)
	e.Reason = f.Type + ": " + e.Reason
	return e
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}
