package bench

import (
	"errors"
	"testing"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	ok := Config{Mode: ModeFanout, URLs: []string{"http://127.0.0.1:1"}, Secret: "s", APIKey: "k"}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr error
	}{
		{"defaults", func(*Config) {}, nil},
		{"no mode", func(c *Config) { c.Mode = "" }, ErrConfig},
		{"bad mode", func(c *Config) { c.Mode = "storm" }, ErrConfig},
		{"no url", func(c *Config) { c.URLs = nil }, ErrConfig},
		{"tls", func(c *Config) { c.URLs = []string{"wss://x:1"} }, ErrUnsupportedURL},
		{"no secret", func(c *Config) { c.Secret = "" }, ErrConfig},
		{"api publish needs key", func(c *Config) { c.APIKey = "" }, ErrConfig},
		{"ws publish needs no key", func(c *Config) { c.APIKey = ""; c.PublishVia = PublishWS }, nil},
		{"cluster needs two", func(c *Config) { c.Mode = ModeCluster }, ErrConfig},
		{"negative", func(c *Config) { c.Conns = -1 }, ErrConfig},
		{"too few workers", func(c *Config) { c.Conns = 40000; c.Workers = 2 }, ErrConfig},
		{"bad client", func(c *Config) { c.Client = "x" }, ErrConfig},
		{"protobuf codec", func(c *Config) { c.Codec = CodecProtobuf }, nil},
		{"bad codec", func(c *Config) { c.Codec = "xml" }, ErrConfig},
		{"bad transport", func(c *Config) { c.Transport = "smoke" }, ErrConfig},
		{"fanout over sse", func(c *Config) { c.Transport = TransportSSE }, ErrConfig},
		{"idle over poll", func(c *Config) { c.Mode = ModeIdle; c.Transport = TransportPoll }, nil},
		{"sse is json only", func(c *Config) { c.Mode = ModeIdle; c.Transport = TransportSSE; c.Codec = CodecMsgpack }, ErrConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			_, err := c.withDefaults()
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	got, _ := ok.withDefaults()
	if got.Conns != 1000 || got.Channels != 1 || got.Rate != 10 || got.Workers != 0 || got.Client != ClientReactor || got.Codec != CodecJSON {
		t.Errorf("defaults: %+v", got)
	}
	big := ok
	big.Conns = 40000
	got, _ = big.withDefaults()
	if got.Workers != 3 {
		t.Errorf("40000 conns: %d workers, want 3 (15000 per process)", got.Workers)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct{ in, host, ws, base string }{
		{"http://127.0.0.1:8080", "127.0.0.1:8080", "/v1/ws", "http://127.0.0.1:8080"},
		{"ws://127.0.0.1:8080", "127.0.0.1:8080", "/v1/ws", "http://127.0.0.1:8080"},
		{"ws://127.0.0.1:8080/v1/ws", "127.0.0.1:8080", "/v1/ws", "http://127.0.0.1:8080"},
		{"http://h:80/ferry/", "h:80", "/ferry/v1/ws", "http://h:80/ferry"},
		{"127.0.0.1:9", "127.0.0.1:9", "/v1/ws", "http://127.0.0.1:9"},
		{"http://localhost", "localhost:80", "/v1/ws", "http://localhost:80"},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if err != nil || got.Host != tt.host || got.WSPath != tt.ws || got.Base != tt.base {
			t.Errorf("ParseTarget(%q) = %+v, %v", tt.in, got, err)
		}
	}
	for _, bad := range []string{"https://x", "ftp://x", "http://"} {
		if _, err := ParseTarget(bad); !errors.Is(err, ErrUnsupportedURL) {
			t.Errorf("ParseTarget(%q): %v, want ErrUnsupportedURL", bad, err)
		}
	}
}

func TestSourceAddrs(t *testing.T) {
	a := sourceAddrs(0, 600)
	seen := map[string]bool{}
	for _, s := range a {
		if seen[s] {
			t.Fatalf("%s twice", s)
		}
		seen[s] = true
	}
	if a[0] != "127.0.0.2" || a[252] != "127.0.0.254" || a[253] != "127.0.1.2" {
		t.Errorf("addresses %v ... %v %v", a[0], a[252], a[253])
	}
}
