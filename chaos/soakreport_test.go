package chaos_test

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/ferry-io/ferry/internal/testutil/history"
)

// Pass criteria of the slope test. After the warm-up, a least-squares line
// through each node's samples of each series; its rise over the measured
// span must stay within the larger of growthShare of the series' mean and
// the series' floor (noise on small numbers). A leak shows as a rise that
// keeps pace with the run; steady state as a flat line.
const growthShare = 0.10

// series names the sampled figures: how to read one from a sample, its
// unit for the report, and its noise floor.
var series = []struct {
	name  string
	unit  float64 // divide by this for the report
	label string
	floor float64 // in the sample's own unit
	get   func(sample) float64
}{
	{"rss", 1 << 20, "MiB", 16 << 20, func(s sample) float64 { return s.rss }},
	{"heap", 1 << 20, "MiB", 16 << 20, func(s sample) float64 { return s.heap }},
	{"goroutines", 1, "", 100, func(s sample) float64 { return s.goroutines }},
	{"open files", 1, "", 100, func(s sample) float64 { return s.fds }},
}

// verdict is the slope test's outcome for one node and series.
type verdict struct {
	node, series  string
	slopePerMin   float64 // in the report's unit
	rise, allowed float64 // over the measured span, in the report's unit
	mean          float64
	label         string
	ok            bool
}

func (v verdict) String() string {
	state := "ok"
	if !v.ok {
		state = "FAIL"
	}
	return fmt.Sprintf("%s %s: mean %.1f%s, slope %+.2f%s/min, rise %+.1f%s (allowed %.1f%s): %s",
		v.node, v.series, v.mean, v.label, v.slopePerMin, v.label, v.rise, v.label, v.allowed, v.label, state)
}

// slopes runs the slope test on the samples taken after the warm-up.
func slopes(all []sample, cfg soakConfig) []verdict {
	byNode := map[string][]sample{}
	for _, s := range all {
		if s.at >= cfg.warmup {
			byNode[s.node] = append(byNode[s.node], s)
		}
	}
	var nodes []string
	for n := range byNode {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	var out []verdict
	for _, n := range nodes {
		ss := byNode[n]
		if len(ss) < 3 {
			out = append(out, verdict{node: n, series: "samples", label: fmt.Sprintf(" (only %d after the warm-up)", len(ss))})
			continue
		}
		span := (ss[len(ss)-1].at - ss[0].at).Minutes()
		for _, sr := range series {
			xs, ys := make([]float64, len(ss)), make([]float64, len(ss))
			for i, s := range ss {
				xs[i], ys[i] = s.at.Minutes(), sr.get(s)
			}
			slope, mean := fit(xs, ys)
			rise := slope * span
			allowed := math.Max(growthShare*mean, sr.floor)
			out = append(out, verdict{
				node: n, series: sr.name, label: sr.label,
				slopePerMin: slope / sr.unit, rise: rise / sr.unit, allowed: allowed / sr.unit, mean: mean / sr.unit,
				ok: rise <= allowed,
			})
		}
	}
	return out
}

// fit returns the least-squares slope of ys over xs, and the mean of ys.
func fit(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, my
	}
	return num / den, my
}

// soakSummary is the text report of a soak.
func soakSummary(cfg soakConfig, rep history.Report, vs []verdict, churned int64, samples int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %v, %d connections per node, %.0f%% churn per minute (%d churners), %.0f publishes/s over %d channels; %d samples every %v, warm-up %v\n",
		cfg.duration, cfg.conns, cfg.churn, churned, cfg.rate, cfg.channels, samples, cfg.interval, cfg.warmup)
	fmt.Fprintf(&b, "slope test (rise after the warm-up within max(%.0f%% of the mean, floor)):\n", growthShare*100)
	for _, v := range vs {
		b.WriteString("  " + v.String() + "\n")
	}
	fmt.Fprintf(&b, "checked workload: %s\n", strings.SplitN(rep.String(), "\n", 2)[0])
	return b.String()
}

// writeCSV writes the samples: seconds since the start, node, RSS bytes,
// heap in use bytes, goroutines, open files.
func writeCSV(path string, all []sample) error {
	var b strings.Builder
	b.WriteString("seconds,node,rss_bytes,heap_inuse_bytes,goroutines,open_fds\n")
	for _, s := range all {
		fmt.Fprintf(&b, "%.0f,%s,%.0f,%.0f,%.0f,%.0f\n", s.at.Seconds(), s.node, s.rss, s.heap, s.goroutines, s.fds)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Plot layout: one panel per series, stacked (RSS, heap, goroutines, open
// files), time on the x axis, one colour per node, each panel scaled from
// 0 to its largest value; a grey vertical line marks the end of the
// warm-up, light lines every 10% of the panel's height.
const (
	plotW, panelH, plotPad = 900, 160, 12
)

var nodeColors = []color.RGBA{{0xd6, 0x27, 0x28, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}}

// writePlot draws the samples as a PNG (no text: docs/reliability.md
// explains the layout; the CSV has the numbers).
func writePlot(path string, all []sample, cfg soakConfig) error {
	h := len(series) * (panelH + plotPad)
	img := image.NewRGBA(image.Rect(0, 0, plotW, h))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	var nodes []string
	var tmax float64
	for _, s := range all {
		if !slices.Contains(nodes, s.node) {
			nodes = append(nodes, s.node)
		}
		tmax = math.Max(tmax, s.at.Seconds())
	}
	slices.Sort(nodes)
	if tmax == 0 {
		tmax = 1
	}
	grid := color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
	warm := color.RGBA{0x90, 0x90, 0x90, 0xff}
	for p, sr := range series {
		top := p*(panelH+plotPad) + plotPad/2
		var vmax float64
		for _, s := range all {
			vmax = math.Max(vmax, sr.get(s))
		}
		if vmax == 0 {
			vmax = 1
		}
		for g := 0; g <= 10; g++ {
			y := top + panelH - g*panelH/10
			line(img, 0, y, plotW-1, y, grid)
		}
		wx := int(cfg.warmup.Seconds() / tmax * float64(plotW-1))
		line(img, wx, top, wx, top+panelH, warm)
		for ni, n := range nodes {
			c := nodeColors[ni%len(nodeColors)]
			px, py := -1, -1
			for _, s := range all {
				if s.node != n {
					continue
				}
				x := int(s.at.Seconds() / tmax * float64(plotW-1))
				y := top + panelH - int(sr.get(s)/vmax*float64(panelH))
				if px >= 0 {
					line(img, px, py, x, y, c)
				}
				px, py = x, y
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// line draws a straight line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
