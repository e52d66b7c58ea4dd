package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Charts for the staff dashboard, drawn here as inline SVG so a page shows
// them with JavaScript off and fetches nothing. Values are whole numbers
// (minor units, counts, basis points); tick formats them for the axis.
// Colours are fill and stroke attributes, which the Content-Security-Policy
// allows where it refuses style attributes; each shape also carries its
// series' class, so a newsroom's stylesheet can recolour it.

// chartSeries is one named set of values, one per label.
type chartSeries struct {
	Name    string
	Class   string // "series-" + Class, and the colour in seriesColor
	Values  []int64
	Missing []bool // optional: true where there is no value (drawn as a gap)
}

func (s chartSeries) missing(i int) bool { return i < len(s.Missing) && s.Missing[i] }

// chartSpec is what every chart has: an id unique on the page (for its
// title and desc), its title, a sentence describing it for a screen
// reader, the labels along the x axis, and the y axis's number format.
type chartSpec struct {
	ID     string
	Title  string
	Desc   string
	Labels []string
	Tick   func(int64) string
}

// seriesColor is each series class's default colour.
var seriesColor = map[string]string{
	"mrr":          "#0b57d0",
	"new":          "#1b7f3b",
	"reactivation": "#7cc38a",
	"expansion":    "#5b9be6",
	"contraction":  "#f0a04b",
	"churn":        "#c0392b",
	"paying":       "#0b57d0",
	"rate":         "#c0392b",
	"gross":        "#a8c1ec",
	"net":          "#0b57d0",
	"donations":    "#8e44ad",
	"tier":         "#0b57d0",
}

func colorOf(class string) string {
	if c, ok := seriesColor[class]; ok {
		return c
	}
	return "#5f6368"
}

const (
	chartWidth   = 640.0
	chartLeft    = 72.0 // room for the y axis's labels
	chartRight   = 12.0
	legendHeight = 26.0
	axisHeight   = 22.0 // room for the x axis's labels
)

// svgWriter builds one chart's markup; every text it writes is escaped.
type svgWriter struct{ b strings.Builder }

func (w *svgWriter) f(format string, args ...any) { fmt.Fprintf(&w.b, format, args...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// open starts the svg element with its title and description, which name
// it for assistive technology (role img, labelled by both).
func (w *svgWriter) open(spec chartSpec, height float64) {
	w.f(`<svg class="chart" id="%s" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-labelledby="%s-title %s-desc" font-family="system-ui, sans-serif" font-size="11">`,
		esc(spec.ID), chartWidth, height, chartWidth, height, esc(spec.ID), esc(spec.ID))
	w.f(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, esc(spec.ID), esc(spec.Title), esc(spec.ID), esc(spec.Desc))
}

func (w *svgWriter) close() template.HTML {
	w.f(`</svg>`)
	return template.HTML(w.b.String()) // every text above went through esc
}

// legend lays the series' names out in a row along the top.
func (w *svgWriter) legend(series []chartSeries, line map[string]bool) {
	x := chartLeft
	for _, s := range series {
		if line[s.Class] {
			w.f(`<line class="series-%s" x1="%g" y1="11" x2="%g" y2="11" stroke="%s" stroke-width="3"/>`, esc(s.Class), x, x+14, colorOf(s.Class))
		} else {
			w.f(`<rect class="series-%s" x="%g" y="5" width="12" height="12" fill="%s"/>`, esc(s.Class), x, colorOf(s.Class))
		}
		w.f(`<text x="%g" y="15" fill="#1d1d1f">%s</text>`, x+18, esc(s.Name))
		x += 18 + 6.3*float64(len([]rune(s.Name))) + 16
	}
}

// panel is a plotting area with a y scale from lo to hi.
type panel struct {
	x, y, w, h float64
	lo, hi     int64
	n          int // bands along x, one per label
}

func (p panel) yOf(v int64) float64 {
	return p.y + p.h*float64(p.hi-v)/float64(p.hi-p.lo)
}

func (p panel) band() float64 { return p.w / float64(max(p.n, 1)) }

// center is the middle of band i.
func (p panel) center(i int) float64 { return p.x + p.band()*(float64(i)+0.5) }

// axes draws the horizontal grid lines at every step with their labels,
// a stronger line at zero, and the x labels (thinned to about twelve).
func (w *svgWriter) axes(p panel, step int64, tick func(int64) string, labels []string, xLabels bool) {
	for v := p.lo; v <= p.hi; v += step {
		y := p.yOf(v)
		stroke, width := "#dadce0", 1.0
		if v == 0 {
			stroke, width = "#5f6368", 1.2
		}
		w.f(`<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="%s" stroke-width="%g"/>`, p.x, y, p.x+p.w, y, stroke, width)
		w.f(`<text class="tick" x="%g" y="%.1f" text-anchor="end" fill="#5f6368">%s</text>`, p.x-6, y+4, esc(tick(v)))
	}
	if !xLabels {
		return
	}
	every := (len(labels) + 11) / 12
	for i, l := range labels {
		if i%max(every, 1) != 0 {
			continue
		}
		w.f(`<text class="label" x="%.1f" y="%.1f" text-anchor="middle" fill="#5f6368">%s</text>`, p.center(i), p.y+p.h+15, esc(l))
	}
}

// niceScale widens [lo, hi] to whole steps of 1, 2 or 5 × 10ⁿ, about
// ticks of them, always including 0.
func niceScale(lo, hi int64, ticks int) (from, to, step int64) {
	lo, hi = min(lo, 0), max(hi, 0)
	span := hi - lo
	if span == 0 {
		span = 1
	}
	raw := float64(span) / float64(ticks)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step = int64(math.Ceil(10 * mag))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = int64(math.Ceil(m * mag))
			break
		}
	}
	step = max(step, 1)
	from = floorTo(lo, step)
	to = -floorTo(-hi, step)
	if from == to {
		to = from + step
	}
	return from, to, step
}

// floorTo rounds v down to a multiple of step (> 0).
func floorTo(v, step int64) int64 {
	q := v / step
	if v%step != 0 && v < 0 {
		q--
	}
	return q * step
}

// columnChart draws each label's values as columns: side by side, or, if
// stacked, piled up from zero (positive values upwards, negative ones
// downwards, in series order).
func columnChart(spec chartSpec, series []chartSeries, stacked bool) template.HTML {
	const height = 260.0
	var w svgWriter
	w.open(spec, height)
	w.legend(series, nil)
	lo, hi := columnExtent(series, len(spec.Labels), stacked)
	from, to, step := niceScale(lo, hi, 4)
	p := panel{x: chartLeft, y: legendHeight + 6, w: chartWidth - chartLeft - chartRight, h: height - legendHeight - 6 - axisHeight, lo: from, hi: to, n: len(spec.Labels)}
	w.axes(p, step, spec.Tick, spec.Labels, true)
	w.columns(p, spec.Labels, series, stacked, spec.Tick)
	return w.close()
}

func columnExtent(series []chartSeries, n int, stacked bool) (lo, hi int64) {
	for i := range n {
		var up, down int64
		for _, s := range series {
			if i >= len(s.Values) || s.missing(i) {
				continue
			}
			v := s.Values[i]
			if !stacked {
				up, down = max(up, v), min(down, v)
			} else if v >= 0 {
				up += v
			} else {
				down += v
			}
		}
		hi, lo = max(hi, up), min(lo, down)
	}
	return lo, hi
}

// columns draws the columns of series into p; each has a <title> with its
// label, series and value, shown on hover.
func (w *svgWriter) columns(p panel, labels []string, series []chartSeries, stacked bool, tick func(int64) string) {
	band := p.band()
	inner := band * 0.7
	for i := range labels {
		var up, down int64
		for k, s := range series {
			if i >= len(s.Values) || s.missing(i) {
				continue
			}
			v := s.Values[i]
			var x, cw, y0, y1 float64
			if stacked {
				x, cw = p.center(i)-inner/2, inner
				if v >= 0 {
					y0, y1 = p.yOf(up+v), p.yOf(up)
					up += v
				} else {
					y0, y1 = p.yOf(down), p.yOf(down+v)
					down += v
				}
			} else {
				cw = inner / float64(len(series))
				x = p.center(i) - inner/2 + cw*float64(k)
				y0, y1 = p.yOf(max(v, 0)), p.yOf(min(v, 0))
			}
			if v == 0 {
				continue
			}
			w.f(`<rect class="series-%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s · %s: %s</title></rect>`,
				esc(s.Class), x, y0, max(cw-1, 1), max(y1-y0, 0.5), colorOf(s.Class), esc(labels[i]), esc(s.Name), esc(tick(v)))
		}
	}
}

// lineChart draws each series as a line with a dot at every value; a
// missing value breaks the line.
func lineChart(spec chartSpec, series []chartSeries) template.HTML {
	const height = 240.0
	var w svgWriter
	w.open(spec, height)
	lines := map[string]bool{}
	for _, s := range series {
		lines[s.Class] = true
	}
	w.legend(series, lines)
	lo, hi := columnExtent(series, len(spec.Labels), false)
	from, to, step := niceScale(lo, hi, 4)
	p := panel{x: chartLeft, y: legendHeight + 6, w: chartWidth - chartLeft - chartRight, h: height - legendHeight - 6 - axisHeight, lo: from, hi: to, n: len(spec.Labels)}
	w.axes(p, step, spec.Tick, spec.Labels, true)
	for _, s := range series {
		w.line(p, spec.Labels, s, spec.Tick)
	}
	return w.close()
}

func (w *svgWriter) line(p panel, labels []string, s chartSeries, tick func(int64) string) {
	var path strings.Builder
	pen := "M"
	for i := range labels {
		if i >= len(s.Values) || s.missing(i) {
			pen = "M"
			continue
		}
		fmt.Fprintf(&path, "%s%.1f %.1f ", pen, p.center(i), p.yOf(s.Values[i]))
		pen = "L"
	}
	if path.Len() > 0 {
		w.f(`<path class="series-%s" d="%s" fill="none" stroke="%s" stroke-width="2.5"/>`, esc(s.Class), strings.TrimSpace(path.String()), colorOf(s.Class))
	}
	for i := range labels {
		if i >= len(s.Values) || s.missing(i) {
			continue
		}
		w.f(`<circle class="series-%s" cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s · %s: %s</title></circle>`,
			esc(s.Class), p.center(i), p.yOf(s.Values[i]), colorOf(s.Class), esc(labels[i]), esc(s.Name), esc(tick(s.Values[i])))
	}
}

// lineOverColumnsChart is two panels on one time axis: line (a level,
// such as MRR) above, and the stacked columns that moved it (around a
// zero axis) below, each with its own scale.
func lineOverColumnsChart(spec chartSpec, line chartSeries, columns []chartSeries) template.HTML {
	const top, gap, bottom = 150.0, 28.0, 150.0
	height := legendHeight + 6 + top + gap + bottom + axisHeight
	var w svgWriter
	w.open(spec, height)
	w.legend(append([]chartSeries{line}, columns...), map[string]bool{line.Class: true})
	plotW := chartWidth - chartLeft - chartRight
	n := len(spec.Labels)

	lo, hi := columnExtent([]chartSeries{line}, n, false)
	from, to, step := niceScale(lo, hi, 3)
	upper := panel{x: chartLeft, y: legendHeight + 6, w: plotW, h: top, lo: from, hi: to, n: n}
	w.axes(upper, step, spec.Tick, spec.Labels, false)
	w.line(upper, spec.Labels, line, spec.Tick)

	lo, hi = columnExtent(columns, n, true)
	from, to, step = niceScale(lo, hi, 4)
	lower := panel{x: chartLeft, y: upper.y + top + gap, w: plotW, h: bottom, lo: from, hi: to, n: n}
	w.axes(lower, step, spec.Tick, spec.Labels, true)
	w.columns(lower, spec.Labels, columns, true, spec.Tick)
	return w.close()
}

// barListChart draws one horizontal bar per label, longest scale first as
// given, with each bar's value written after it.
func barListChart(spec chartSpec, class string, values []int64) template.HTML {
	const row, gap = 22.0, 8.0
	left := 180.0 // room for the labels
	n := len(spec.Labels)
	height := 10 + float64(max(n, 1))*(row+gap) + axisHeight
	var w svgWriter
	w.open(spec, height)
	var most int64
	for _, v := range values {
		most = max(most, v)
	}
	_, to, step := niceScale(0, most, 4)
	plotW := chartWidth - left - 90 // room for the value after the longest bar
	xOf := func(v int64) float64 { return left + plotW*float64(v)/float64(to) }
	bottom := 10 + float64(n)*(row+gap)
	for v := int64(0); v <= to; v += step {
		w.f(`<line class="grid" x1="%.1f" y1="6" x2="%.1f" y2="%.1f" stroke="#dadce0"/>`, xOf(v), xOf(v), bottom)
		w.f(`<text class="tick" x="%.1f" y="%.1f" text-anchor="middle" fill="#5f6368">%s</text>`, xOf(v), bottom+15, esc(spec.Tick(v)))
	}
	for i, l := range spec.Labels {
		y := 10 + float64(i)*(row+gap)
		var v int64
		if i < len(values) {
			v = values[i]
		}
		w.f(`<text class="label" x="%g" y="%.1f" text-anchor="end" fill="#1d1d1f">%s</text>`, left-8, y+row/2+4, esc(l))
		w.f(`<rect class="series-%s" x="%g" y="%.1f" width="%.1f" height="%g" fill="%s"><title>%s: %s</title></rect>`,
			esc(class), left, y, max(xOf(v)-left, 0.5), row, colorOf(class), esc(l), esc(spec.Tick(v)))
		w.f(`<text class="value" x="%.1f" y="%.1f" fill="#1d1d1f">%s</text>`, xOf(v)+6, y+row/2+4, esc(spec.Tick(v)))
	}
	return w.close()
}
