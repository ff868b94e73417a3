package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var jsonScanCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `[1,2,3]`, `{"a":1,"b":[true,false,null]}`,
	`"str"`, `"esc \" \\ \/ \b \f \n \r \t \u00e9 \uD83D\uDE80"`, `"bad \x"`, `"bad \u12"`, `"bad \u12G4"`,
	"\"ctl \x01\"", "\"invalid \xff utf8\"", `"unterminated`, `"`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5e`, `1e+`, `1E-5`, `-12.5e+10`, `1x`, `123456789012345678901234567890`,
	`true`, `tru`, `truex`, `false`, `null`, `nul`, `nan`,
	`{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{1:2}`, `[1,]`, `[,1]`, `[1 2]`, `{"a":1 "b":2}`,
	`{}{}`, `[] x`, `[`, `]`, `{`, `}`, `[[[]]]`, `[{"a":[{"b":{}}]}]`,
	" \t\r\n[ 1 , { \"a\" : \"b\" } ]\n ", "\v1", "\u00a01",
	strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting),
	strings.Repeat("[", maxNesting+1) + strings.Repeat("]", maxNesting+1),
	strings.Repeat(`{"a":`, maxNesting) + "1" + strings.Repeat("}", maxNesting),
}

func TestJSONScannerAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range jsonScanCases {
		checkJSONScanner(t, []byte(c))
	}
}

// checkJSONScanner checks that the scanner accepts exactly what
// encoding/json accepts, and compacts it the same way.
func checkJSONScanner(tb testing.TB, src []byte) {
	tb.Helper()
	want := json.Valid(src)
	if got := validJSON(src); got != want {
		tb.Fatalf("validJSON(%.80q) = %v, json.Valid says %v", src, got, want)
	}
	var buf bytes.Buffer
	werr := json.Compact(&buf, src)
	got, err := appendCompactJSON([]byte("x"), src)
	if (err == nil) != (werr == nil) {
		tb.Fatalf("appendCompactJSON(%.80q) error %v, json.Compact error %v", src, err, werr)
	}
	if err != nil {
		if string(got) != "x" {
			tb.Fatalf("appendCompactJSON(%.80q) failed but left %q", src, got)
		}
		return
	}
	if !bytes.Equal(got[1:], buf.Bytes()) {
		tb.Fatalf("appendCompactJSON(%.80q) = %.80q, json.Compact = %.80q", src, got[1:], buf.Bytes())
	}
}

func FuzzJSONScanner(f *testing.F) {
	for _, c := range jsonScanCases {
		if len(c) < 1000 {
			f.Add([]byte(c))
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkJSONScanner(t, src)
	})
}
