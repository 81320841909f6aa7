package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotPanelW  = 480
	plotPanelH  = 300
	plotMarginL = 62
	plotMarginR = 16
	plotMarginT = 34
	plotMarginB = 44
	plotCols    = 2
)

// targetColor gives each target the same color in every panel.
func targetColor(name string) string {
	switch name {
	case "direct":
		return "#888888"
	case "gateway":
		return "#d62728"
	case "nginx":
		return "#2ca02c"
	case "haproxy":
		return "#1f77b4"
	case referenceTarget:
		return "#ff7f0e"
	default:
		return "#9467bd"
	}
}

// pctX maps a percentile to the plot's log-ish axis: the number of nines,
// log10(1/(1-p)), so p50, p90, p99 and p99.9 are 0.3, 1, 2 and 3.
func pctX(pct float64) float64 { return math.Log10(100 / (100 - pct)) }

// logTicks returns 1-2-5 ticks in ms spanning [lo, hi]: from the largest
// 1-2-5 value at or below lo to the smallest at or above hi, at least two.
func logTicks(lo, hi float64) []float64 {
	if !(lo > 0) || math.IsInf(lo, 0) {
		lo = 0.01
	}
	hi = max(hi, lo)
	var ticks []float64
	for e := math.Floor(math.Log10(lo)); ; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v <= lo*(1+1e-9) {
				ticks = []float64{v}
			} else {
				ticks = append(ticks, v)
			}
			if v >= hi*(1-1e-9) && len(ticks) >= 2 {
				return ticks
			}
		}
	}
}

// plotSeries is one target's line in a panel.
type plotSeries struct {
	name   string
	points []point
}

// panelData picks what a scenario's panel shows: the open loop when it ran
// (its percentiles are free of coordinated omission), else the closed loop.
func panelData(s *scenarioResult) (title string, series []plotSeries) {
	open := false
	for _, t := range s.Targets {
		if t.Open != nil {
			open = true
		}
	}
	title = s.Name + ", closed loop (wrk)"
	if open {
		title = fmt.Sprintf("%s, open loop @ %s req/s", s.Name, fmtNum(s.OpenRate))
	}
	for _, t := range s.Targets {
		m := t.Closed
		if open {
			m = t.Open
		}
		if m == nil {
			continue
		}
		var pts []point
		for _, p := range m.Spectrum {
			if p.Pct >= 50 && p.Pct <= 99.9 && p.US > 0 {
				pts = append(pts, p)
			}
		}
		if len(pts) > 0 {
			series = append(series, plotSeries{name: t.Name, points: pts})
		}
	}
	return title, series
}

// writeSVG draws one latency-percentile panel (p50..p99.9) per scenario
// that has data. It writes a valid, empty-bodied SVG when none has.
func writeSVG(w io.Writer, r *results) error {
	type panel struct {
		title  string
		series []plotSeries
	}
	var panels []panel
	for i := range r.Scenarios {
		if t, s := panelData(&r.Scenarios[i]); len(s) > 0 {
			panels = append(panels, panel{t, s})
		}
	}
	cols := min(plotCols, max(1, len(panels)))
	rows := max(1, (len(panels)+cols-1)/cols)
	width, height := cols*plotPanelW, rows*plotPanelH+28
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="8" y="18" font-size="13" font-weight="bold">%s</text>`+"\n",
		xmlEscape(fmt.Sprintf("fastgate bench %s, commit %s: latency by percentile (medians over %d rounds)",
			r.Timestamp.UTC().Format("2006-01-02 15:04 UTC"), r.GitCommit, r.Settings.Rounds)))
	for i, p := range panels {
		x0 := (i % cols) * plotPanelW
		y0 := 28 + (i/cols)*plotPanelH
		drawPanel(&b, x0, y0, p.title, p.series)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawPanel(b *strings.Builder, x0, y0 int, title string, series []plotSeries) {
	left, top := float64(x0+plotMarginL), float64(y0+plotMarginT)
	pw := float64(plotPanelW - plotMarginL - plotMarginR)
	ph := float64(plotPanelH - plotMarginT - plotMarginB)
	xMin, xMax := pctX(50), pctX(99.9)
	lo, hi := math.Inf(1), 0.0
	for _, s := range series {
		for _, p := range s.points {
			lo, hi = min(lo, p.US/1000), max(hi, p.US/1000)
		}
	}
	yTicks := logTicks(lo, hi)
	yLo, yHi := math.Log10(yTicks[0]), math.Log10(yTicks[len(yTicks)-1])
	px := func(pct float64) float64 { return left + (pctX(pct)-xMin)/(xMax-xMin)*pw }
	py := func(ms float64) float64 { return top + ph - (math.Log10(ms)-yLo)/(yHi-yLo)*ph }

	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="12" font-weight="bold">%s</text>`+"\n", x0+plotMarginL, y0+plotMarginT-12, xmlEscape(title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", left, top, pw, ph)
	for _, pct := range spectrumPcts {
		x := px(pct)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, top, x, top+ph)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">p%g</text>`+"\n", x, top+ph+14, pct)
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">percentile (log scale of 1/(1-p))</text>`+"\n", left+pw/2, top+ph+32)
	for _, v := range yTicks {
		y := py(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, y, left+pw, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-4, y+4, trimFloat(v))
	}
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`+"\n", x0+14, top+ph/2)
	for i, s := range series {
		var pts []string
		for _, p := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p.Pct), py(p.US/1000)))
		}
		c := targetColor(s.name)
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), c)
		for _, xy := range pts {
			x, y, _ := strings.Cut(xy, ",")
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`+"\n", x, y, c)
		}
		// Legend bottom right, where tails (high, right) and medians
		// (low, left) rarely are.
		lx, ly := left+pw-84, top+ph-8-float64(len(series)-1-i)*15
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", lx, ly-4, lx+18, ly-4, c)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+22, ly, xmlEscape(s.name))
	}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

var xmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func xmlEscape(s string) string { return xmlReplacer.Replace(s) }
