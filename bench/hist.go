package bench

import (
	"fmt"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1 µs to 60 s with three
// significant digits.
const (
	histMinUS = 1
	histMaxUS = 60_000_000
	histSig   = 3
)

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMinUS, histMaxUS, histSig)
}

// recordNS records a latency given in nanoseconds, clamped to the
// histogram's range.
func recordNS(h *hdrhistogram.Histogram, ns int64) {
	us := ns / 1000
	if us < histMinUS {
		us = histMinUS
	}
	if us > histMaxUS {
		us = histMaxUS
	}
	_ = h.RecordValue(us)
}

// encodeHist serializes a histogram in HdrHistogram's compressed V2 format
// (what worker processes send back).
func encodeHist(h *hdrhistogram.Histogram) ([]byte, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encode histogram: %w", err)
	}
	return b, nil
}

// mergeEncoded decodes b and merges it into h.
func mergeEncoded(h *hdrhistogram.Histogram, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	o, err := hdrhistogram.Decode(b)
	if err != nil {
		return fmt.Errorf("decode histogram: %w", err)
	}
	h.Merge(o)
	return nil
}

// Percentiles summarizes a latency distribution, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}
