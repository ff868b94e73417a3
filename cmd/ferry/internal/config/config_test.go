package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-io/ferry/cmd/ferry/internal/config"
	"github.com/ferry-io/ferry/server"
)

// writeConfig writes a config file into a fresh directory and returns its
// path.
func writeConfig(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// mustLoad loads and fails the test on error.
func mustLoad(tb testing.TB, path string, environ []string) server.Config {
	tb.Helper()
	cfg, err := config.Load(path, environ)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return cfg
}

// TestPrecedence checks, for a setting of every type, that a file
// overrides the default, a variable the file, and a flag the variable.
func TestPrecedence(t *testing.T) {
	tests := []struct {
		name     string
		path     string // yaml path (for ApplyFlag)
		file     string // YAML setting it
		env      string // FERRY_...=value
		flag     string // ApplyFlag value
		get      func(server.Config) any
		wantFile any
		wantEnv  any
		wantFlag any
	}{
		{
			name: "string", path: "addr",
			file: "addr: \":9000\"\n", env: "FERRY_ADDR=:9001", flag: ":9002",
			get:      func(c server.Config) any { return c.Addr },
			wantFile: ":9000", wantEnv: ":9001", wantFlag: ":9002",
		},
		{
			name: "nested string", path: "token.hmac_secret",
			file: "token:\n  hmac_secret: from-file\n", env: "FERRY_TOKEN_HMAC_SECRET=from-env", flag: "from-flag",
			get:      func(c server.Config) any { return c.Token.HMACSecret },
			wantFile: "from-file", wantEnv: "from-env", wantFlag: "from-flag",
		},
		{
			name: "int", path: "max_connections_per_user",
			file: "max_connections_per_user: 7\n", env: "FERRY_MAX_CONNECTIONS_PER_USER=8", flag: "9",
			get:      func(c server.Config) any { return c.MaxConnectionsPerUser },
			wantFile: 7, wantEnv: 8, wantFlag: 9,
		},
		{
			name: "float", path: "handshake.rate",
			file: "handshake:\n  rate: 1.5\n", env: "FERRY_HANDSHAKE_RATE=2.5", flag: "0",
			get:      func(c server.Config) any { return c.Handshake.Rate },
			wantFile: 1.5, wantEnv: 2.5, wantFlag: 0.0,
		},
		{
			name: "bool", path: "compression",
			file: "compression: true\n", env: "FERRY_COMPRESSION=false", flag: "true",
			get:      func(c server.Config) any { return c.Compression },
			wantFile: true, wantEnv: false, wantFlag: true,
		},
		{
			name: "duration", path: "heartbeat.interval",
			file: "heartbeat:\n  interval: 30s\n", env: "FERRY_HEARTBEAT_INTERVAL=1m30s", flag: "2m",
			get:      func(c server.Config) any { return c.Heartbeat.Interval },
			wantFile: 30 * time.Second, wantEnv: 90 * time.Second, wantFlag: 2 * time.Minute,
		},
		{
			name: "string list", path: "allowed_origins",
			file: "allowed_origins:\n  - https://a.example\n  - \"*.b.example\"\n",
			env:  "FERRY_ALLOWED_ORIGINS=https://c.example, https://d.example", flag: "https://e.example",
			get:      func(c server.Config) any { return c.AllowedOrigins },
			wantFile: []string{"https://a.example", "*.b.example"},
			wantEnv:  []string{"https://c.example", "https://d.example"},
			wantFlag: []string{"https://e.example"},
		},
		{
			name: "namespaces map", path: "namespaces",
			file: "namespaces:\n  chat:\n    history_size: 100\n    history_ttl: 10m\n    presence: true\n    join_leave: true\n" +
				"    publish: true\n    subscribe: true\n    priority: critical\n    rate: 2.5\n  feed: {}\n",
			env:  `FERRY_NAMESPACES={"room": {"history_size": 5, "history_ttl": "1m"}}`,
			flag: "{ticker: {priority: droppable}}",
			get:  func(c server.Config) any { return c.Namespaces },
			wantFile: map[string]server.Namespace{
				"chat": {HistorySize: 100, HistoryTTL: 10 * time.Minute, Presence: true, JoinLeave: true,
					Publish: true, Subscribe: true, Priority: "critical", Rate: 2.5},
				"feed": {},
			},
			wantEnv:  map[string]server.Namespace{"room": {HistorySize: 5, HistoryTTL: time.Minute}},
			wantFlag: map[string]server.Namespace{"ticker": {Priority: "droppable"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(stage string, cfg server.Config, want any) {
				t.Helper()
				if got := tt.get(cfg); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %#v, want %#v", stage, got, want)
				}
			}
			check("default", mustLoad(t, "", nil), tt.get(server.Default()))

			file := writeConfig(t, tt.file)
			check("file", mustLoad(t, file, nil), tt.wantFile)
			// An empty variable counts as unset: the file's value stays.
			name, _, _ := strings.Cut(tt.env, "=")
			check("file + empty env", mustLoad(t, file, []string{name + "="}), tt.wantFile)
			// Variables that are not FERRY_* are ignored.
			check("file + other env", mustLoad(t, file, []string{strings.TrimPrefix(tt.env, "FERRY_")}), tt.wantFile)

			cfg := mustLoad(t, file, []string{tt.env})
			check("file + env", cfg, tt.wantEnv)
			check("env only", mustLoad(t, "", []string{tt.env}), tt.wantEnv)

			if err := config.ApplyFlag(&cfg, tt.path, tt.flag); err != nil {
				t.Fatalf("ApplyFlag(%q, %q): %v", tt.path, tt.flag, err)
			}
			check("file + env + flag", cfg, tt.wantFlag)
		})
	}
}

func TestLoadLeavesOtherSettingsAtDefault(t *testing.T) {
	cfg := mustLoad(t, writeConfig(t, "heartbeat:\n  interval: 30s\n"), []string{"FERRY_ADDR=:1"})
	want := server.Default()
	want.Heartbeat.Interval = 30 * time.Second
	want.Addr = ":1"
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load = %+v\nwant   %+v", cfg, want)
	}
}

func TestYAMLForms(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(*server.Config)
	}{
		{"empty file", "", func(*server.Config) {}},
		{"only comments", "# nothing here\n", func(*server.Config) {}},
		{"null value keeps the default", "heartbeat:\n  interval:\nhandshake: ~\n", func(*server.Config) {}},
		{
			"comma-separated list in one value",
			"trusted_proxies: 10.0.0.0/8, 192.168.1.1\n",
			func(c *server.Config) { c.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.1"} },
		},
		{
			"flow style",
			"{heartbeat: {interval: 1s, timeout: 2s}, dev: true}\n",
			func(c *server.Config) {
				c.Heartbeat.Interval, c.Heartbeat.Timeout, c.Dev = time.Second, 2*time.Second, true
			},
		},
		{
			"quoted values",
			"max_frame_bytes: \"1024\"\nconnect_timeout: '3s'\n",
			func(c *server.Config) { c.MaxFrameBytes, c.ConnectTimeout = 1024, 3*time.Second },
		},
		{
			"a namespace with no rules exists",
			"namespaces:\n  quiet:\n",
			func(c *server.Config) { c.Namespaces = map[string]server.Namespace{"quiet": {}} },
		},
		{
			"anchors and merge keys",
			"namespaces:\n" +
				"  chat: &room\n    history_size: 50\n    presence: true\n" +
				"  support:\n    <<: *room\n    presence: false\n    publish: true\n" +
				"  alias: *room\n",
			func(c *server.Config) {
				c.Namespaces = map[string]server.Namespace{
					"chat":    {HistorySize: 50, Presence: true},
					"support": {HistorySize: 50, Publish: true},
					"alias":   {HistorySize: 50, Presence: true},
				}
			},
		},
		{
			"merge into a settings mapping",
			"heartbeat: &t\n  timeout: 3s\nshutdown:\n  <<: *t\n",
			func(c *server.Config) { c.Heartbeat.Timeout, c.Shutdown.Timeout = 3*time.Second, 3*time.Second },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := server.Default()
			tt.want(&want)
			if got := mustLoad(t, writeConfig(t, tt.yaml), nil); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestFileErrors checks that a bad file names the file, the line and the
// setting's yaml path.
func TestFileErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // after "<file>:"; "" for yaml's own syntax error
		is   error
	}{
		{"bad duration", "heartbeat:\n  interval: abc\n", `2: heartbeat.interval: "abc" is not a duration`, config.ErrInvalidValue},
		{"int for duration", "session:\n  ttl: 120\n", `2: session.ttl: "120" is not a duration`, config.ErrInvalidValue},
		{"bad int", "max_connections: lots\n", `1: max_connections: "lots" is not an integer`, config.ErrInvalidValue},
		{"fraction for int", "queue:\n  max_bytes: 1.5\n", `2: queue.max_bytes: "1.5" is not an integer`, config.ErrInvalidValue},
		{"int out of range", "max_frame_bytes: 99999999999999999999999\n", `1: max_frame_bytes: "99999999999999999999999" is out of range`, config.ErrInvalidValue},
		{"bad float", "handshake:\n  rate: fast\n", `2: handshake.rate: "fast" is not a number`, config.ErrInvalidValue},
		{"NaN float", "client_publish:\n  rate: .nan\n", `2: client_publish.rate: ".nan" is not a number`, config.ErrInvalidValue},
		{"bad bool", "compression: yes\n", `1: compression: "yes" is not a boolean`, config.ErrInvalidValue},
		{"mapping for a value", "addr:\n  host: x\n", `2: addr: want a single value, got a mapping`, config.ErrInvalidValue},
		{"value for a section", "heartbeat: 5s\n", `1: heartbeat: want a mapping of settings, got a value`, config.ErrInvalidValue},
		{"mapping for a list", "allowed_origins:\n  a: b\n", `2: allowed_origins: want a list, got a mapping`, config.ErrInvalidValue},
		{"list in a list", "allowed_origins:\n  - [a]\n", `2: allowed_origins[0]: want a single value, got a list`, config.ErrInvalidValue},
		{"list for namespaces", "namespaces:\n  - chat\n", `2: namespaces: want a mapping of names, got a list`, config.ErrInvalidValue},
		{"bad namespace rule", "namespaces:\n  chat:\n    history_ttl: forever\n", `3: namespaces.chat.history_ttl: "forever" is not a duration`, config.ErrInvalidValue},
		{"top level is a list", "- addr\n", `1: want a mapping of settings, got a list`, config.ErrInvalidValue},
		{"unknown key", "addr: \":80\"\nadress: \":81\"\n", `2: adress: unknown setting`, config.ErrUnknownSetting},
		{"unknown nested key", "heartbeat:\n  interval: 1s\n  intervall: 2s\n", `3: heartbeat.intervall: unknown setting`, config.ErrUnknownSetting},
		{"unknown namespace rule", "namespaces:\n  chat:\n    histroy_size: 1\n", `3: namespaces.chat.histroy_size: unknown setting`, config.ErrUnknownSetting},
		{"Go field name is not a key", "HeartBeat:\n  Interval: 1s\n", `1: HeartBeat: unknown setting`, config.ErrUnknownSetting},
		{"duplicate key", "addr: a\ndev: true\naddr: b\n", `3: addr: set twice (first on line 1)`, config.ErrDuplicateKey},
		{"two documents", "addr: a\n---\naddr: b\n", `2: more than one YAML document`, config.ErrInvalidValue},
		{"syntax error keeps yaml's line", "addr: a\nheartbeat:\n  interval: [1s\n", "", nil},
		{"tab indentation", "heartbeat:\n\tinterval: 1s\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.yaml)
			cfg, err := config.Load(path, nil)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", cfg)
			}
			want := path + ":" + tt.want
			if tt.want == "" {
				// A syntax error is yaml's own message, line included.
				var n yaml.Node
				yerr := yaml.Unmarshal([]byte(tt.yaml), &n)
				if yerr == nil || !strings.Contains(yerr.Error(), "line ") {
					t.Fatalf("test case is not a YAML syntax error with a line: %v", yerr)
				}
				want = path + ": " + yerr.Error()
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q\ndoes not contain %q", err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Source != path {
				t.Errorf("error %q: want a *config.Error with Source %q", err, path)
			}
			if !reflect.DeepEqual(cfg, server.Config{}) {
				t.Errorf("Load returned a config with its error: %+v", cfg)
			}
		})
	}
}

func TestFileErrorsAreAllReported(t *testing.T) {
	path := writeConfig(t, "max_connections: x\nheartbeat:\n  timeout: y\nbogus: 1\n")
	_, err := config.Load(path, []string{"FERRY_HANDSHAKE_BURST=z"})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{
		path + `:1: max_connections: "x"`,
		path + `:3: heartbeat.timeout: "y"`,
		path + `:4: bogus: unknown setting`,
		`FERRY_HANDSHAKE_BURST: "z" is not an integer`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\ndoes not contain %q", err, want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

// TestEnvErrors checks that a bad variable is named with its value.
func TestEnvErrors(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"FERRY_HANDSHAKE_RATE=x", `FERRY_HANDSHAKE_RATE: "x" is not a number`},
		{"FERRY_HANDSHAKE_RATE=+Inf", `FERRY_HANDSHAKE_RATE: "+Inf" is not a number`},
		{"FERRY_HEARTBEAT_INTERVAL=abc", `FERRY_HEARTBEAT_INTERVAL: "abc" is not a duration`},
		{"FERRY_COMPRESSION=maybe", `FERRY_COMPRESSION: "maybe" is not a boolean (true or false)`},
		{"FERRY_MAX_CONNECTIONS=1.5", `FERRY_MAX_CONNECTIONS: "1.5" is not an integer`},
		{"FERRY_NAMESPACES={chat: {history_size: many}}", `FERRY_NAMESPACES: namespaces.chat.history_size: "many" is not an integer`},
		{"FERRY_NAMESPACES={chat: {colour: red}}", `FERRY_NAMESPACES: namespaces.chat.colour: unknown setting`},
		{"FERRY_NAMESPACES=[chat]", `FERRY_NAMESPACES: want a mapping of names, got a list`},
		{"FERRY_NAMESPACES={chat", `FERRY_NAMESPACES: yaml:`},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := config.Load("", []string{tt.env})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestEnvFirstEntryWins(t *testing.T) {
	cfg := mustLoad(t, "", []string{"FERRY_ADDR=:1", "FERRY_ADDR=:2", "FERRY_NOT_A_SETTING=1", "junk"})
	if cfg.Addr != ":1" {
		t.Errorf("Addr = %q, want :1 (the first entry, as os.Getenv)", cfg.Addr)
	}
}

func TestApplyFlag(t *testing.T) {
	t.Run("unknown path", func(t *testing.T) {
		cfg := server.Default()
		for _, path := range []string{"adress", "heartbeat", "namespaces.chat", "heartbeat.interval.x", ""} {
			err := config.ApplyFlag(&cfg, path, "1")
			if !errors.Is(err, config.ErrUnknownSetting) {
				t.Errorf("ApplyFlag(%q): %v, want ErrUnknownSetting", path, err)
			}
		}
		if !reflect.DeepEqual(cfg, server.Default()) {
			t.Error("a failed ApplyFlag changed the config")
		}
	})
	t.Run("bad values leave the config unchanged", func(t *testing.T) {
		cfg := server.Default()
		cfg.Namespaces = map[string]server.Namespace{"chat": {HistorySize: 1}}
		want := server.Default()
		want.Namespaces = map[string]server.Namespace{"chat": {HistorySize: 1}}
		for _, tc := range []struct{ path, value, msg string }{
			{"heartbeat.interval", "soon", `heartbeat.interval: "soon" is not a duration`},
			{"max_subscriptions", "", `max_subscriptions: "" is not an integer`},
			{"namespaces", "{room: {presence: perhaps}}", `namespaces.room.presence: "perhaps" is not a boolean`},
		} {
			err := config.ApplyFlag(&cfg, tc.path, tc.value)
			if err == nil || !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("ApplyFlag(%q, %q) = %v, want an error starting %q", tc.path, tc.value, err, tc.msg)
			}
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("failed ApplyFlags changed the config: %+v", cfg)
		}
	})
	t.Run("empty string is a value", func(t *testing.T) {
		cfg := server.Default()
		if err := config.ApplyFlag(&cfg, "auth.cookie_name", ""); err != nil {
			t.Fatal(err)
		}
		if cfg.Auth.CookieName != "" {
			t.Errorf("CookieName = %q, want empty", cfg.Auth.CookieName)
		}
	})
}

func TestCheck(t *testing.T) {
	const secret = "token:\n  hmac_secret: s3cret-0123456789abcdef0123456789\n"
	tests := []struct {
		name    string
		yaml    string
		env     []string
		wantErr string // "" for none
	}{
		{"valid", secret, nil, ""},
		{"dev needs no secret", "dev: true\n", nil, ""},
		{"dev from env", "", []string{"FERRY_DEV=true"}, ""},
		{"secret from env", "", []string{"FERRY_TOKEN_HMAC_SECRET=0123456789abcdef0123456789abcdef"}, ""},
		{"short secret", "", []string{"FERRY_TOKEN_HMAC_SECRET=x"}, "FERRY_TOKEN_HMAC_SECRET: 1 bytes: must be at least 32"},
		{"short secret in dev", "dev: true\n", []string{"FERRY_TOKEN_HMAC_SECRET=x"}, ""},
		{"no way to verify tokens", "addr: \":80\"\n", nil, "token: no way to verify tokens"},
		{"negative count", secret + "max_connections: -1\n", nil, "max_connections: -1: must not be negative"},
		{"negative duration", secret + "heartbeat:\n  interval: -5s\n", nil, "heartbeat.interval: -5s: must not be negative"},
		{"negative from env", secret, []string{"FERRY_HANDSHAKE_RATE=-1"}, "FERRY_HANDSHAKE_RATE: -1: must not be negative"},
		{"bad priority", secret + "namespaces:\n  chat:\n    priority: urgent\n", nil, `namespaces.chat.priority: "urgent"`},
		{"bad broker", secret + "broker: kafka://x\n", nil, `broker: "kafka://x"`},
		{"load error first", secret + "nope: 1\n", nil, "nope: unknown setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := config.Check(writeConfig(t, tt.yaml), tt.env)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check succeeded, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check: %q\ndoes not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestCheckReportsRangeAndTypeErrorsTogether: a value of the wrong type
// and a value out of range are reported in one run, each with the file
// and line (or the variable) where it was written.
func TestCheckReportsRangeAndTypeErrorsTogether(t *testing.T) {
	path := writeConfig(t, "token:\n  hmac_secret: s3cret-0123456789abcdef0123456789\nmax_connections: -1\nheartbeat:\n  interval: soon\nnamespaces:\n  chat:\n    history_size: -3\n")
	err := config.Check(path, []string{"FERRY_HANDSHAKE_RATE=-2"})
	if err == nil {
		t.Fatal("Check succeeded")
	}
	for _, want := range []string{
		path + ":3: max_connections: -1: must not be negative",
		path + ":5: heartbeat.interval: \"soon\" is not a duration",
		path + ":8: namespaces.chat.history_size: -3: must not be negative",
		"FERRY_HANDSHAKE_RATE: -2: must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check: %v\nlacks %q", err, want)
		}
	}
	if !errors.Is(err, config.ErrInvalidValue) {
		t.Errorf("errors.Is(%v, ErrInvalidValue) = false", err)
	}
}

// TestLoadedApplyFlagNamesTheFlag: a flag's value out of range is
// reported under the flag's name.
func TestLoadedApplyFlagNamesTheFlag(t *testing.T) {
	l, err := config.LoadSources("", []string{"FERRY_TOKEN_HMAC_SECRET=s3cret-0123456789abcdef0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.ApplyFlag("--max-connections", "max_connections", "-5"); err != nil {
		t.Fatal(err)
	}
	err = l.Validate()
	if err == nil || !strings.Contains(err.Error(), "--max-connections: max_connections: -5: must not be negative") {
		t.Fatalf("Validate: %v", err)
	}
	if err := l.ApplyFlag("--log-level", "logs.level", "loud"); err != nil {
		t.Fatal(err) // a string of the right type; Validate refuses it
	}
	if err := l.Validate(); err == nil || !strings.Contains(err.Error(), `--log-level: logs.level: "loud"`) {
		t.Fatalf("Validate: %v", err)
	}
}

func TestEnvName(t *testing.T) {
	for path, want := range map[string]string{
		"addr":                     "FERRY_ADDR",
		"token.hmac_secret":        "FERRY_TOKEN_HMAC_SECRET",
		"heartbeat.interval":       "FERRY_HEARTBEAT_INTERVAL",
		"max_connections_per_user": "FERRY_MAX_CONNECTIONS_PER_USER",
		"allowed_origins":          "FERRY_ALLOWED_ORIGINS",
	} {
		if got := config.EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestFields(t *testing.T) {
	fields := config.Fields()
	byPath := map[string]config.Field{}
	envs := map[string]string{}
	for _, f := range fields {
		if prev, dup := envs[f.Env]; dup {
			t.Errorf("%s and %s share the variable %s", prev, f.Path, f.Env)
		}
		envs[f.Env] = f.Path
		byPath[f.Path] = f
		if f.Env != config.EnvName(f.Path) {
			t.Errorf("%s: Env %q, want %q", f.Path, f.Env, config.EnvName(f.Path))
		}
	}
	for _, want := range []config.Field{
		{Path: "addr", Env: "FERRY_ADDR", Type: "string", Default: ":8080"},
		{Path: "heartbeat.interval", Env: "FERRY_HEARTBEAT_INTERVAL", Type: "time.Duration", Default: "25s"},
		{Path: "session.ttl", Env: "FERRY_SESSION_TTL", Type: "time.Duration", Default: "2m"},
		{Path: "logs.ip_retention", Env: "FERRY_LOGS_IP_RETENTION", Type: "time.Duration", Default: "24h"},
		{Path: "handshake.rate", Env: "FERRY_HANDSHAKE_RATE", Type: "float64", Default: "20"},
		{Path: "queue.max_bytes", Env: "FERRY_QUEUE_MAX_BYTES", Type: "int", Default: "1048576"},
		{Path: "compression", Env: "FERRY_COMPRESSION", Type: "bool", Default: "false"},
		{Path: "allowed_origins", Env: "FERRY_ALLOWED_ORIGINS", Type: "[]string", Default: ""},
		{Path: "namespaces", Env: "FERRY_NAMESPACES", Type: "map[string]server.Namespace", Default: ""},
	} {
		if got := byPath[want.Path]; got != want {
			t.Errorf("Fields()[%s] = %+v, want %+v", want.Path, got, want)
		}
	}
	// Every setting can be set back from its default as a flag.
	for _, f := range fields {
		cfg := server.Config{}
		if err := config.ApplyFlag(&cfg, f.Path, f.Default); err != nil && f.Default != "" {
			t.Errorf("ApplyFlag(%s, %q): %v", f.Path, f.Default, err)
		}
	}
}

func TestUnknownEnv(t *testing.T) {
	got := config.UnknownEnv([]string{
		"FERRY_ADDR=:1", "FERRY_HEARTBEAT_INTERVL=1s", "HOME=/root", "FERRY_URL=x", "FERRY_NAMESPACES={}",
	})
	want := []string{"FERRY_HEARTBEAT_INTERVL", "FERRY_URL"}
	if !slices.Equal(got, want) {
		t.Errorf("UnknownEnv = %q, want %q", got, want)
	}
}

// TestPerUserLimitOff: max_connections_per_user: 0 means no cap, as
// max_connections: 0 does, and survives the defaults ferry serve applies;
// left out, the limit is 5.
func TestPerUserLimitOff(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		env        []string
		want       int
	}{
		{"unset", "addr: \":9000\"\n", nil, 5},
		{"file 0", "max_connections_per_user: 0\n", nil, 0},
		{"env 0", "addr: \":9000\"\n", []string{"FERRY_MAX_CONNECTIONS_PER_USER=0"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path, tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := cfg.WithDefaults().MaxConnectionsPerUser; got != tc.want {
				t.Fatalf("max_connections_per_user = %d, want %d", got, tc.want)
			}
		})
	}
}
