package bench

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs .. 60 s at 3 significant digits, in microseconds.
const (
	histLowest  = 1
	histHighest = int64(60 * time.Second / time.Microsecond)
	histSigFigs = 3
)

// hist records durations in microseconds and reports milliseconds.
type hist struct{ h *hdrhistogram.Histogram }

func newHist() *hist { return &hist{h: hdrhistogram.New(histLowest, histHighest, histSigFigs)} }

// record adds d, clamped into the trackable range.
func (h *hist) record(d time.Duration) {
	us := d.Microseconds()
	us = min(max(us, histLowest), histHighest)
	_ = h.h.RecordValue(us) // cannot fail: us is in range
}

func (h *hist) count() int64 { return h.h.TotalCount() }

// pct returns the q-th percentile (0..100) in milliseconds; 0 when empty.
func (h *hist) pct(q float64) float64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return usToMs(h.h.ValueAtQuantile(q))
}

func (h *hist) max() float64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return usToMs(h.h.Max())
}

func (h *hist) mean() float64 {
	if h.h.TotalCount() == 0 {
		return 0
	}
	return round3(h.h.Mean() / 1000)
}

func usToMs(us int64) float64 { return round3(float64(us) / 1000) }

// round3 keeps microsecond resolution in milliseconds.
func round3(ms float64) float64 {
	if ms < 0 {
		return -round3(-ms)
	}
	return float64(int64(ms*1000+0.5)) / 1000
}
