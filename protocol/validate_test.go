package protocol

import (
	"strings"
	"testing"
)

func TestValidChannel(t *testing.T) {
	good := []string{"a", "room:1", "user:42#private", "a.b-c_d/e|f~!", strings.Repeat("x", MaxChannelLen)}
	for _, c := range good {
		if err := ValidChannel(c); err != nil {
			t.Errorf("ValidChannel(%q) = %v", c, err)
		}
	}
	bad := map[string]string{
		"":                                   "empty",
		strings.Repeat("x", MaxChannelLen+1): "more than 255",
		"a b":                                "not printable",
		"tab\t":                              "not printable",
		"nul\x00":                            "not printable",
		"del\x7f":                            "not printable",
		"é":                                  "not printable",
		"room:*":                             "'*' is not allowed",
		"user:{sub}":                         "'{' is not allowed",
		"x}":                                 "'}' is not allowed",
	}
	for c, want := range bad {
		err := ValidChannel(c)
		if err == nil {
			t.Errorf("ValidChannel(%q) = nil", c)
			continue
		}
		pe, ok := err.(*Error)
		if !ok || pe.Code != CodeBadRequest || !strings.Contains(pe.Reason, want) {
			t.Errorf("ValidChannel(%q) = %v, want a 400 mentioning %q", c, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	sha := strings.Repeat("0a", 32)
	data := RawJSON(`{"x":1}`)
	cases := []struct {
		name string
		f    ClientFrame
		want string // "" = valid, else a substring of the reason
	}{
		{"invalid wins", ClientFrame{Type: TypePing, ID: 1, Invalid: `field "x": bad`}, `field "x": bad`},
		{"no type", ClientFrame{ID: 1}, `no "type"`},
		{"unknown type", ClientFrame{Type: "pong", ID: 1}, `unknown frame type "pong"`},
		{"server type", ClientFrame{Type: TypeMessage, ID: 1}, `unknown frame type "message"`},

		{"connect minimal", ClientFrame{Type: TypeConnect}, ""},
		{"connect full", ClientFrame{Type: TypeConnect, ID: 1, Token: "t", Client: "c/1", Window: MaxWindow, Resume: &Resume{Session: "s", Token: "r"}}, ""},
		{"connect window too big", ClientFrame{Type: TypeConnect, Window: MaxWindow + 1}, "connect: window 65537"},
		{"connect resume without token", ClientFrame{Type: TypeConnect, Resume: &Resume{Session: "s"}}, `"resume" needs "session" and "token"`},
		{"connect resume without session", ClientFrame{Type: TypeConnect, Resume: &Resume{Token: "t"}}, `"resume" needs`},

		{"subscribe", ClientFrame{Type: TypeSubscribe, ID: 1, Channel: "c", Since: &StreamPosition{Offset: 3, Epoch: "e"}}, ""},
		{"subscribe no id", ClientFrame{Type: TypeSubscribe, Channel: "c"}, `subscribe: needs an "id"`},
		{"subscribe no channel", ClientFrame{Type: TypeSubscribe, ID: 1}, "subscribe: channel name is empty"},
		{"subscribe bad channel", ClientFrame{Type: TypeSubscribe, ID: 1, Channel: "a*"}, `subscribe: channel "a*"`},
		{"unsubscribe", ClientFrame{Type: TypeUnsubscribe, ID: 1, Channel: "c"}, ""},
		{"unsubscribe no id", ClientFrame{Type: TypeUnsubscribe, Channel: "c"}, `needs an "id"`},
		{"unsubscribe bad channel", ClientFrame{Type: TypeUnsubscribe, ID: 1, Channel: "a b"}, "not printable"},

		{"publish", ClientFrame{Type: TypePublish, ID: 1, Channel: "c", Data: data, Key: "k", Priority: "droppable", Conflate: "x"}, ""},
		{"publish null data", ClientFrame{Type: TypePublish, ID: 1, Channel: "c", Data: RawJSON("null")}, ""},
		{"publish no id", ClientFrame{Type: TypePublish, Channel: "c", Data: data}, `needs an "id"`},
		{"publish no channel", ClientFrame{Type: TypePublish, ID: 1, Data: data}, "channel name is empty"},
		{"publish no data", ClientFrame{Type: TypePublish, ID: 1, Channel: "c"}, `publish: needs "data"`},
		{"publish bad priority", ClientFrame{Type: TypePublish, ID: 1, Channel: "c", Data: data, Priority: "urgent"}, `priority "urgent"`},

		{"ack", ClientFrame{Type: TypeAck, Seq: 1}, ""},
		{"ack zero", ClientFrame{Type: TypeAck}, `ack: needs "seq" > 0`},
		{"ping", ClientFrame{Type: TypePing, ID: 1}, ""},
		{"ping no id", ClientFrame{Type: TypePing}, `ping: needs an "id"`},
		{"refresh", ClientFrame{Type: TypeRefresh, ID: 1, Token: "t"}, ""},
		{"refresh no token", ClientFrame{Type: TypeRefresh, ID: 1}, `refresh: needs a "token"`},
		{"refresh no id", ClientFrame{Type: TypeRefresh, Token: "t"}, `needs an "id"`},

		{"history", ClientFrame{Type: TypeHistory, ID: 1, Channel: "c", Limit: 10}, ""},
		{"history no limit", ClientFrame{Type: TypeHistory, ID: 1, Channel: "c"}, ""},
		{"history negative limit", ClientFrame{Type: TypeHistory, ID: 1, Channel: "c", Limit: -1}, `"limit" -1 is negative`},
		{"history no channel", ClientFrame{Type: TypeHistory, ID: 1}, "channel name is empty"},
		{"presence", ClientFrame{Type: TypePresence, ID: 1, Channel: "c"}, ""},
		{"presence no channel", ClientFrame{Type: TypePresence, ID: 1}, "presence: channel name is empty"},
		{"presence no id", ClientFrame{Type: TypePresence, Channel: "c"}, `needs an "id"`},

		{"upload.begin", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a.bin", Size: 10, SHA256: sha, ChunkSize: 4}, ""},
		{"upload.begin upper hex", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a", Size: 1, SHA256: strings.ToUpper(sha)}, ""},
		{"upload.begin no id", ClientFrame{Type: TypeUploadBegin, Name: "a", Size: 1, SHA256: sha}, `needs an "id"`},
		{"upload.begin no name", ClientFrame{Type: TypeUploadBegin, ID: 1, Size: 1, SHA256: sha}, `needs a "name"`},
		{"upload.begin zero size", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a", SHA256: sha}, `needs a "size" > 0`},
		{"upload.begin short sha", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a", Size: 1, SHA256: sha[:63]}, `"sha256" must be 64 hex digits`},
		{"upload.begin non-hex sha", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a", Size: 1, SHA256: "g" + sha[1:]}, `"sha256" must be 64 hex digits`},
		{"upload.begin negative chunk", ClientFrame{Type: TypeUploadBegin, ID: 1, Name: "a", Size: 1, SHA256: sha, ChunkSize: -1}, `"chunk_size" -1 is negative`},
		{"upload.chunk", ClientFrame{Type: TypeUploadChunk, ID: 1, Upload: "u", Offset: 0, Data: RawJSON(`"AAEC"`)}, ""},
		{"upload.chunk no upload", ClientFrame{Type: TypeUploadChunk, ID: 1, Data: RawJSON(`"AA=="`)}, `needs an "upload"`},
		{"upload.chunk negative offset", ClientFrame{Type: TypeUploadChunk, ID: 1, Upload: "u", Offset: -1, Data: RawJSON(`"AA=="`)}, `"offset" -1 is negative`},
		{"upload.chunk no data", ClientFrame{Type: TypeUploadChunk, ID: 1, Upload: "u"}, `upload.chunk: needs "data"`},
		{"upload.chunk data not a string", ClientFrame{Type: TypeUploadChunk, ID: 1, Upload: "u", Data: RawJSON(`[1]`)}, `"data" must be a base64 string`},
		{"upload.commit", ClientFrame{Type: TypeUploadCommit, ID: 1, Upload: "u"}, ""},
		{"upload.commit no upload", ClientFrame{Type: TypeUploadCommit, ID: 1}, `upload.commit: needs an "upload"`},
		{"upload.commit no id", ClientFrame{Type: TypeUploadCommit, Upload: "u"}, `needs an "id"`},
	}
	for _, c := range cases {
		err := c.f.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: Validate() = %v, want nil", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: Validate() = nil, want %q", c.name, c.want)
		case c.want != "" && (err.Code != CodeBadRequest || err.Retry || !strings.Contains(err.Reason, c.want)):
			t.Errorf("%s: Validate() = %+v, want a 400 mentioning %q", c.name, err, c.want)
		}
	}
}
