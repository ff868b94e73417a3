package protocol

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// mustMarshalMsgpack encodes v with the msgpack package, compact integers.
func mustMarshalMsgpack(tb testing.TB, v any) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		tb.Fatalf("msgpack encode %#v: %v", v, err)
	}
	return buf.Bytes()
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestJSONToMsgpack(t *testing.T) {
	cases := []struct {
		json string
		want any // encoded by the msgpack package for comparison
	}{
		{`null`, nil},
		{`true`, true},
		{`false`, false},
		{`0`, 0},
		{`-0`, 0},
		{`127`, 127},
		{`128`, 128},
		{`-32`, -32},
		{`-33`, -33},
		{`65535`, 65535},
		{`-129`, -129},
		{`9223372036854775807`, int64(math.MaxInt64)},
		{`-9223372036854775808`, int64(math.MinInt64)},
		{`9223372036854775808`, uint64(1 << 63)},
		{`18446744073709551615`, uint64(math.MaxUint64)},
		{`18446744073709551616`, float64(18446744073709551616)},
		{`-9223372036854775809`, float64(-9223372036854775809)},
		{`1.5`, 1.5},
		{`1.0`, 1.0},
		{`1e3`, 1000.0},
		{`-2.5E-3`, -2.5e-3},
		{`1e400`, math.Inf(1)},
		{`""`, ""},
		{`"plain"`, "plain"},
		{`"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE80"`, "esc \" \\ / \b \f \n \r \t é 🚀"},
		{`"lone \uD83D surrogate \uDE80 x \uD83Dabc"`, "lone \ufffd surrogate \ufffd x \ufffdabc"},
		{"\"invalid \xff utf8\"", "invalid \ufffd utf8"},
		{`"` + strings.Repeat("x", 31) + `"`, strings.Repeat("x", 31)},
		{`"` + strings.Repeat("x", 32) + `"`, strings.Repeat("x", 32)},
		{`"` + strings.Repeat("x", 256) + `"`, strings.Repeat("x", 256)},
		{`"` + strings.Repeat("\\n", 70000) + `"`, strings.Repeat("\n", 70000)},
		{`[]`, []any{}},
		{`{}`, map[string]any{}},
		{` [1, "a", [true, null], {"k": -1}] `, []any{1, "a", []any{true, nil}, map[string]any{"k": -1}}},
	}
	for _, c := range cases {
		got, err := JSONToMsgpack([]byte("pre"), []byte(c.json))
		if err != nil {
			t.Errorf("%.60s: %v", c.json, err)
			continue
		}
		if want := mustMarshalMsgpack(t, c.want); !bytes.Equal(got[3:], want) {
			t.Errorf("%.60s:\n got % x\nwant % x", c.json, got[3:], want)
		}
	}
}

func TestJSONToMsgpackLargeContainers(t *testing.T) {
	// Sizes around the fix, 16-bit and 32-bit header boundaries, nested, so
	// that placeholder compaction moves data past several headers.
	for _, n := range []int{15, 16, 65535, 65536} {
		arr := make([]any, n)
		obj := make(map[string]any, n)
		var js strings.Builder
		js.WriteString(`[`)
		for i := range n {
			if i > 0 {
				js.WriteString(",")
			}
			js.WriteString(`"é\n"`)
			arr[i] = "é\n"
		}
		js.WriteString(`]`)
		got, err := JSONToMsgpack(nil, []byte(`{"a":`+js.String()+`,"b":`+js.String()+`}`))
		if err != nil {
			t.Fatal(err)
		}
		obj["a"], obj["b"] = arr, arr
		var back map[string]any
		if err := msgpack.Unmarshal(got, &back); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(back["a"].([]any)) != n || len(back["b"].([]any)) != n || back["b"].([]any)[n-1] != "é\n" {
			t.Fatalf("n=%d: round trip lost elements", n)
		}
	}
}

func TestJSONToMsgpackErrors(t *testing.T) {
	for _, js := range []string{``, `{`, `[1,]`, `{"a" 1}`, `01`, `"\x"`, `nul`, `1 2`, "\"\x01\"",
		strings.Repeat("[", maxNesting+1) + strings.Repeat("]", maxNesting+1)} {
		if got, err := JSONToMsgpack([]byte("pre"), []byte(js)); err == nil || string(got) != "pre" {
			t.Errorf("%.40q: got %q, %v; want an error and dst unchanged", js, got, err)
		}
	}
}

func TestMsgpackToJSON(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"nil", mustMarshalMsgpack(t, nil), `null`},
		{"bools", mustMarshalMsgpack(t, []bool{true, false}), `[true,false]`},
		{"int64 min", mustMarshalMsgpack(t, int64(math.MinInt64)), `-9223372036854775808`},
		{"int64 max", mustMarshalMsgpack(t, int64(math.MaxInt64)), `9223372036854775807`},
		{"uint64 max", mustMarshalMsgpack(t, uint64(math.MaxUint64)), `18446744073709551615`},
		{"int8 wide", mustHex(t, "d0 ff"), `-1`},
		{"int64 wide positive", mustHex(t, "d3 00 00 00 00 00 00 00 05"), `5`},
		{"uint64 wide", mustHex(t, "cf 00 00 00 00 00 00 00 05"), `5`},
		{"neg fixint", mustHex(t, "e0"), `-32`},
		{"float64", mustMarshalMsgpack(t, 1.25), `1.25`},
		{"float64 integral", mustMarshalMsgpack(t, 3.0), `3.0`},
		{"float64 tiny", mustMarshalMsgpack(t, 1e-9), `1e-9`},
		{"float32", mustMarshalMsgpack(t, float32(0.1)), `0.1`},
		{"string", mustMarshalMsgpack(t, "a\"b\\c\n<>&\u2028"), `"a\"b\\c\n<>&\u2028"`},
		{"string invalid utf8", mustHex(t, "a3 61 ff 62"), `"a\ufffdb"`},
		{"str8 empty", mustHex(t, "d9 00"), `""`},
		{"bin", mustMarshalMsgpack(t, []byte{0, 1, 2, 0xff}), `"AAEC/w=="`},
		{"bin empty", mustMarshalMsgpack(t, []byte{}), `""`},
		{"nested", mustMarshalMsgpack(t, map[string]any{"a": []any{1, map[string]any{"b": nil}, []any{}}}), `{"a":[1,{"b":null},[]]}`},
		{"empty map", mustHex(t, "80"), `{}`},
		{"int keys", mustMarshalMsgpack(t, map[int]string{-1: "x"}), `{"-1":"x"}`},
		{"other keys", mustHex(t, "84 c3 01 c0 02 cb 3f f8 00 00 00 00 00 00 03 c4 01 ff 04"), `{"true":1,"null":2,"1.5":3,"/w==":4}`},
		{"duplicate keys", mustHex(t, "82 a1 61 01 a1 61 02"), `{"a":1,"a":2}`},
	}
	for _, c := range cases {
		got, err := MsgpackToJSON([]byte("pre"), c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got[3:]) != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got[3:], c.want)
		}
		if !json.Valid(got[3:]) {
			t.Errorf("%s: %s is not valid JSON", c.name, got[3:])
		}
	}
}

func TestMsgpackToJSONErrors(t *testing.T) {
	ts := mustMarshalMsgpack(t, time.Unix(1, 0))
	cases := []struct {
		name     string
		in       []byte
		noJSON   bool // the error wraps ErrNoJSONForm
		tooDeep  bool
		trailing bool
	}{
		{"empty", nil, false, false, false},
		{"truncated str", mustHex(t, "a5 61 62"), false, false, false},
		{"truncated array", mustHex(t, "92 01"), false, false, false},
		{"huge str32", mustHex(t, "db ff ff ff ff 61"), false, false, false},
		{"huge array32", mustHex(t, "dd ff ff ff ff 01"), false, false, false},
		{"huge map32", mustHex(t, "df 7f ff ff ff 01 02"), false, false, false},
		{"huge bin32", mustHex(t, "c6 ff ff ff f0"), false, false, false},
		{"never used 0xc1", mustHex(t, "c1"), false, false, false},
		{"trailing bytes", mustHex(t, "01 02"), false, false, true},
		{"timestamp ext", ts, true, false, false},
		{"fixext", mustHex(t, "d4 05 00"), true, false, false},
		{"ext in array", mustHex(t, "92 01 c7 01 02 ff"), true, false, false},
		{"nan", mustMarshalMsgpack(t, math.NaN()), true, false, false},
		{"inf", mustMarshalMsgpack(t, float32(math.Inf(-1))), true, false, false},
		{"array key", mustHex(t, "81 91 01 02"), true, false, false},
		{"map key", mustHex(t, "81 80 02"), true, false, false},
		{"too deep", append(bytes.Repeat([]byte{0x91}, maxNesting+1), 0x01), false, true, false},
	}
	for _, c := range cases {
		got, err := MsgpackToJSON([]byte("pre"), c.in)
		if err == nil {
			t.Errorf("%s: no error, got %s", c.name, got)
			continue
		}
		if string(got) != "pre" {
			t.Errorf("%s: dst changed to %q", c.name, got)
		}
		if errors.Is(err, ErrNoJSONForm) != c.noJSON {
			t.Errorf("%s: %v: wraps ErrNoJSONForm = %v, want %v", c.name, err, !c.noJSON, c.noJSON)
		}
		if errors.Is(err, errTooDeep) != c.tooDeep {
			t.Errorf("%s: %v: too deep = %v, want %v", c.name, err, !c.tooDeep, c.tooDeep)
		}
	}
	// Exactly maxNesting levels are fine.
	deep := append(bytes.Repeat([]byte{0x91}, maxNesting), 0x01)
	got, err := MsgpackToJSON(nil, deep)
	if err != nil || !json.Valid(got) {
		t.Fatalf("%d levels: %v", maxNesting, err)
	}
}

// TestConversionRoundTrip converts values both ways and checks that the
// msgpack package and encoding/json see the same values as the source.
func TestConversionRoundTrip(t *testing.T) {
	values := []any{
		map[string]any{
			"int":    int64(-5),
			"big":    uint64(math.MaxUint64),
			"min":    int64(math.MinInt64),
			"float":  2.5,
			"fint":   4.0,
			"str":    "héllo \"x\"\n",
			"nested": []any{map[string]any{"a": []any{}}, nil, true},
		},
		[]any{"a", int64(1), 1.5, false},
		"just a string",
	}
	for _, v := range values {
		mp := mustMarshalMsgpack(t, v)
		js, err := MsgpackToJSON(nil, mp)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		mp2, err := JSONToMsgpack(nil, js)
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		var a, b any
		if err := msgpack.Unmarshal(mp, &a); err != nil {
			t.Fatal(err)
		}
		if err := msgpack.Unmarshal(mp2, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalizeNumbers(a), normalizeNumbers(b)) {
			t.Errorf("msgpack -> JSON -> msgpack changed the value:\n%#v\n%#v\n(JSON %s)", a, b, js)
		}
		js2, err := MsgpackToJSON(nil, mp2)
		if err != nil || !bytes.Equal(js, js2) {
			t.Errorf("JSON not stable: %s then %s (%v)", js, js2, err)
		}
	}
}

// normalizeNumbers maps every integer type to int64 or uint64 (the msgpack
// package decodes each encoding to its own Go type) and leaves floats as
// float64.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case float32:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeNumbers(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeNumbers(e)
		}
		return out
	}
	return v
}
