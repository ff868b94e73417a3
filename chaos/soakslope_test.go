package chaos_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSlopeTest: the soak's pass criteria accept a flat, noisy series and
// refuse a steady climb; the CSV and the plot are written.
func TestSlopeTest(t *testing.T) {
	cfg := soakConfig{duration: 10 * time.Minute, warmup: 2 * time.Minute, interval: 10 * time.Second}
	build := func(grow float64) []sample {
		var out []sample
		for i := range 60 {
			at := time.Duration(i) * cfg.interval
			noise := float64(i%3) * 5
			out = append(out, sample{
				at: at, node: "node1",
				rss:        200<<20 + grow*float64(i)*(1<<20),
				heap:       80<<20 + noise*(1<<20),
				goroutines: 3000 + noise + grow*float64(i)*10,
				fds:        1000 + noise,
			})
		}
		return out
	}
	for _, v := range slopes(build(0), cfg) {
		if !v.ok {
			t.Errorf("flat series refused: %s", v)
		}
	}
	failed := map[string]bool{}
	for _, v := range slopes(build(1), cfg) { // +1 MiB and +10 goroutines a sample
		if !v.ok {
			failed[v.series] = true
		}
	}
	if !failed["rss"] || !failed["goroutines"] || failed["heap"] || failed["open files"] {
		t.Errorf("growing series: failed %v, want rss and goroutines only", failed)
	}
	dir := t.TempDir()
	if err := writeCSV(filepath.Join(dir, "s.csv"), build(1)); err != nil {
		t.Fatal(err)
	}
	if err := writePlot(filepath.Join(dir, "s.png"), build(1), cfg); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "s.csv"))
	if err != nil || !strings.HasPrefix(string(b), "seconds,node,rss_bytes") || strings.Count(string(b), "\n") != 61 {
		t.Fatalf("CSV: %v\n%.200s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "s.png")); err != nil || fi.Size() == 0 {
		t.Fatalf("plot: %v", err)
	}
}
