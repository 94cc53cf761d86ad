package bench

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// chartSeries is one line of a chart.
type chartSeries struct {
	Name   string
	Points [][2]float64
	Dashed bool
}

// chart is a line chart rendered as a small, dependency-free SVG.
type chart struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	Series                []chartSeries
	// HLines are horizontal reference lines (goals), labelled.
	HLines []chartLine
}

type chartLine struct {
	Y     float64
	Label string
}

// palette has distinguishable colours for up to 20 series (Tableau 20 order).
var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
	"#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
	"#dbdb8d", "#9edae5"}

const (
	chartW, chartH                      = 860, 440
	plotL, plotT, plotR, plotB, legendW = 70, 40, 20, 50, 280
)

// SVG renders the chart.
func (c chart) SVG() []byte {
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if (c.LogX && p[0] <= 0) || (c.LogY && p[1] <= 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, p[0]), math.Max(xmax, p[0])
			ymin, ymax = math.Min(ymin, p[1]), math.Max(ymax, p[1])
		}
	}
	for _, l := range c.HLines {
		ymin, ymax = math.Min(ymin, l.Y), math.Max(ymax, l.Y)
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 1, 10, 1, 10
	}
	xt := ticks(xmin, xmax, c.LogX)
	yt := ticks(ymin, ymax, c.LogY)
	xmin, xmax = math.Min(xmin, xt[0]), math.Max(xmax, xt[len(xt)-1])
	ymin, ymax = math.Min(ymin, yt[0]), math.Max(ymax, yt[len(yt)-1])
	pw := float64(chartW - plotL - plotR - legendW)
	ph := float64(chartH - plotT - plotB)
	scale := func(v, lo, hi float64, log bool) float64 {
		if log {
			v, lo, hi = math.Log10(v), math.Log10(lo), math.Log10(hi)
		}
		if hi == lo {
			return 0.5
		}
		return (v - lo) / (hi - lo)
	}
	px := func(x float64) float64 { return plotL + scale(x, xmin, xmax, c.LogX)*pw }
	py := func(y float64) float64 { return plotT + ph - scale(y, ymin, ymax, c.LogY)*ph }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", chartW, chartH)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14" font-weight="bold">%s</text>`+"\n", plotL, html.EscapeString(c.Title))
	for _, x := range xt {
		X := px(x)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, X, plotT, X, plotT+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", X, plotT+ph+15, fmtTick(x))
	}
	for _, y := range yt {
		Y := py(y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, plotL, Y, plotL+pw, Y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotL-5, Y+4, fmtTick(y))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%.1f" fill="none" stroke="#333"/>`+"\n", plotL, plotT, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", plotL+pw/2, chartH-12, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="16" y="%.1f" text-anchor="middle" transform="rotate(-90 16 %.1f)">%s</text>`+"\n",
		plotT+ph/2, plotT+ph/2, html.EscapeString(c.YLabel))
	for _, l := range c.HLines {
		Y := py(l.Y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 3"/>`, plotL, Y, plotL+pw, Y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#d62728">%s</text>`+"\n", plotL+4, Y-4, html.EscapeString(l.Label))
	}
	for i, s := range c.Series {
		color := palette[i%len(palette)]
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="4 3"`
		}
		var pts []string
		for _, p := range s.Points {
			if (c.LogX && p[0] <= 0) || (c.LogY && p[1] <= 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
		}
		ly := plotT + 6 + 16*i
		lx := chartW - legendW + 10
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
			lx, ly, lx+18, ly, color, dash, lx+24, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// ticks returns axis ticks covering lo..hi: powers of ten (and 2, 5 times
// them when few) on a log axis, round steps on a linear one.
func ticks(lo, hi float64, log bool) []float64 {
	if log {
		a, z := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if a == z {
			z++
		}
		var out []float64
		for e := a; e <= z; e++ {
			out = append(out, math.Pow(10, e))
			if z-a <= 2 && e < z {
				out = append(out, 2*math.Pow(10, e), 5*math.Pow(10, e))
			}
		}
		return out
	}
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Floor(lo/step) * step; v <= hi+step/2; v += step {
		out = append(out, v)
	}
	return out
}

func fmtTick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}
