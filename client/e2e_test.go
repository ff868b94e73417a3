package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// e2eVector is one envelope of the interop files shared with the
// TypeScript SDK's tests (clients/js/test/fixtures): the channel, the key,
// the data and the envelope one SDK sealed, which the other must open.
type e2eVector struct {
	Channel  string          `json:"channel"`
	KID      string          `json:"kid"`
	Key      []byte          `json:"key"` // base64 in JSON
	Data     json.RawMessage `json:"data"`
	Envelope Envelope        `json:"envelope"`
}

var e2eFixtures = filepath.Join("..", "clients", "js", "test", "fixtures")

func TestE2ERoundTripAndRefusals(t *testing.T) {
	key := E2EKey{ID: "k1", Key: bytes.Repeat([]byte{7}, 32)}
	keys := func(kid string) (E2EKey, bool) { return key, kid == key.ID }
	env, err := SealE2E("med:ward-3", key, map[string]any{"hr": 72})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	if !IsE2E(raw) {
		t.Fatalf("IsE2E(%s) = false", raw)
	}
	plain, err := OpenE2E("med:ward-3", raw, keys)
	if err != nil || string(plain) != `{"hr":72}` {
		t.Fatalf("OpenE2E = %s, %v", plain, err)
	}
	tampered := env
	tampered.CT = env.CT[:len(env.CT)-4] + "AAA="
	rawT, _ := json.Marshal(tampered)
	for _, tt := range []struct {
		name, channel string
		raw           []byte
	}{
		{"another channel", "med:ward-4", raw},
		{"altered ciphertext", "med:ward-3", rawT},
		{"not an envelope", "med:ward-3", []byte(`{"hr":72}`)},
		{"unknown key id", "med:ward-3", bytes.Replace(raw, []byte(`"k1"`), []byte(`"k2"`), 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenE2E(tt.channel, tt.raw, keys); !errors.Is(err, ErrE2E) {
				t.Fatalf("OpenE2E: want ErrE2E, got %v", err)
			}
		})
	}
	if _, err := SealE2E("c", E2EKey{ID: "short", Key: []byte("abc")}, 1); err == nil {
		t.Fatal("a 3-byte key was accepted")
	}
}

// TestE2EInterop opens the envelopes the TypeScript SDK sealed, and checks
// that the Go vectors the TypeScript tests open are still what this SDK
// writes. FERRY_E2E_WRITE=1 rewrites the Go vectors.
func TestE2EInterop(t *testing.T) {
	var fromTS []e2eVector
	readJSON(t, filepath.Join(e2eFixtures, "e2e-ts.json"), &fromTS)
	if len(fromTS) == 0 {
		t.Fatal("no TypeScript vectors")
	}
	for _, v := range fromTS {
		plain, err := OpenE2E(v.Channel, mustJSON(t, v.Envelope), func(kid string) (E2EKey, bool) { return E2EKey{ID: v.KID, Key: v.Key}, kid == v.KID })
		if err != nil {
			t.Fatalf("%s: %v", v.Channel, err)
		}
		if !jsonEqual(t, plain, v.Data) {
			t.Fatalf("%s: opened %s, want %s", v.Channel, plain, v.Data)
		}
	}

	var want []e2eVector
	for i, c := range []struct {
		channel string
		size    int
		data    string
	}{
		{"med:ward-3", 32, `{"patient":"p-17","hr":72,"note":"stable, \u00e9t\u00e9 \ud83d\ude00"}`},
		{"chat:lobby", 16, `"hello"`},
		{"sensors:t", 24, `[1,2.5,null,true]`},
	} {
		key := E2EKey{ID: "k" + string(rune('1'+i)), Key: bytes.Repeat([]byte{byte(0x10 + i)}, c.size)}
		iv := bytes.Repeat([]byte{byte(0xa0 + i)}, e2eIVSize)
		env, err := sealE2E(c.channel, key, json.RawMessage(c.data), iv)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e2eVector{Channel: c.channel, KID: key.ID, Key: key.Key, Data: json.RawMessage(c.data), Envelope: env})
	}
	path := filepath.Join(e2eFixtures, "e2e-go.json")
	if os.Getenv("FERRY_E2E_WRITE") == "1" {
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []e2eVector
	readJSON(t, path, &got)
	if !bytes.Equal(mustJSON(t, got), mustJSON(t, want)) {
		t.Fatalf("%s is not what the Go SDK writes (run with FERRY_E2E_WRITE=1 to rewrite it)", path)
	}
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return bytes.Equal(mustJSON(t, x), mustJSON(t, y))
}
