package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/ferry-io/ferry/server"
)

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{25 * time.Second, "25s"},
		{2 * time.Minute, "2m"},
		{90 * time.Second, "1m30s"},
		{24 * time.Hour, "24h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{-5 * time.Minute, "-5m"},
	}
	for _, tt := range tests {
		got := formatDuration(tt.d)
		if got != tt.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
		back, err := time.ParseDuration(got)
		if err != nil || back != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, tt.d)
		}
	}
}

// TestDefaultsRoundTrip checks that every default, written as Fields
// writes it, reads back as the same value.
func TestDefaultsRoundTrip(t *testing.T) {
	def := reflect.ValueOf(server.Default())
	for _, l := range leavesOf(def.Type()) {
		want := def.FieldByIndex(l.index)
		if want.IsZero() {
			continue
		}
		got := reflect.New(l.typ).Elem()
		a := &applier{}
		a.setText(got, l.path, formatValue(want))
		if len(a.errs) > 0 || !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Errorf("%s: %q reads back as %v (errors %v), want %v", l.path, formatValue(want), got, a.errs, want)
		}
	}
}

func TestFormatValueMap(t *testing.T) {
	m := map[string]server.Namespace{"chat": {HistorySize: 3, HistoryTTL: time.Minute}}
	s := formatValue(reflect.ValueOf(m))
	got := reflect.New(reflect.TypeOf(m)).Elem()
	a := &applier{}
	a.setText(got, "namespaces", s)
	if len(a.errs) > 0 || !reflect.DeepEqual(got.Interface(), m) {
		t.Errorf("%q reads back as %v (errors %v), want %v", s, got, a.errs, m)
	}
}
