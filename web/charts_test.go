package web

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/patronage/patronage/internal/money"
)

func TestNiceScaleCoversTheValuesInRoundSteps(t *testing.T) {
	for _, tc := range []struct {
		lo, hi int64
		ticks  int
	}{
		{0, 0, 4}, {0, 1500, 4}, {-1000, 1500, 4}, {0, 7, 4}, {0, 123456, 4}, {-30, 0, 4}, {-7, 3, 3},
	} {
		from, to, step := niceScale(tc.lo, tc.hi, tc.ticks)
		if from > tc.lo || to < tc.hi || from > 0 || to < 0 || (to-from)%step != 0 || from%step != 0 {
			t.Errorf("niceScale(%d, %d) = %d..%d by %d: does not cover the values and 0 in whole steps", tc.lo, tc.hi, from, to, step)
		}
		if s := strconv.FormatInt(step, 10); strings.Trim(s[1:], "0") != "" || !strings.ContainsAny(s[:1], "125") {
			t.Errorf("niceScale(%d, %d) steps by %d, want 1, 2 or 5 × 10ⁿ", tc.lo, tc.hi, step)
		}
		if n := (to - from) / step; n > int64(2*tc.ticks) {
			t.Errorf("niceScale(%d, %d) = %d ticks, want about %d", tc.lo, tc.hi, n, tc.ticks)
		}
	}
}

// svgShape is what the tests read back from a chart.
type svgShape struct {
	Name         string
	Class        string
	Y, Height    float64
	Title        string
	Text         string
	Fill, Stroke string
	D            string
}

// parseSVG checks that markup is well-formed XML with one svg root
// labelled by its title and desc, and returns its elements in order.
func parseSVG(t *testing.T, markup string) (title, desc string, shapes []svgShape) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(markup))
	var stack []*svgShape
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed: %v\n%s", err, markup)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if el.Name.Local != "svg" {
					t.Fatalf("root element %s, want svg", el.Name.Local)
				}
				attrs := map[string]string{}
				for _, a := range el.Attr {
					attrs[a.Name.Local] = a.Value
				}
				id := attrs["id"]
				if attrs["role"] != "img" || attrs["aria-labelledby"] != id+"-title "+id+"-desc" {
					t.Errorf("svg attributes %v: want role img labelled by its title and desc", attrs)
				}
				if _, ok := attrs["style"]; ok {
					t.Error("the svg has a style attribute, which the Content-Security-Policy refuses")
				}
			}
			depth++
			s := &svgShape{Name: el.Name.Local}
			for _, a := range el.Attr {
				switch a.Name.Local {
				case "class":
					s.Class = a.Value
				case "y":
					s.Y, _ = strconv.ParseFloat(a.Value, 64)
				case "height":
					s.Height, _ = strconv.ParseFloat(a.Value, 64)
				case "fill":
					s.Fill = a.Value
				case "stroke":
					s.Stroke = a.Value
				case "d":
					s.D = a.Value
				case "style":
					t.Errorf("<%s> has a style attribute", el.Name.Local)
				}
			}
			stack = append(stack, s)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(el)
			}
		case xml.EndElement:
			depth--
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			switch {
			case s.Name == "title" && depth == 1:
				title = s.Text
			case s.Name == "desc" && depth == 1:
				desc = s.Text
			case s.Name == "title" && len(stack) > 0:
				stack[len(stack)-1].Title = s.Text
			}
			if s.Name != "title" && s.Name != "desc" {
				shapes = append(shapes, *s)
			}
		}
	}
	return title, desc, shapes
}

func TestStackedColumnsRiseAndFallFromZero(t *testing.T) {
	spec := chartSpec{ID: "c", Title: "Movements <EUR>", Desc: `Ups & downs, "quoted"`, Labels: []string{"Jan 26", "Feb 26"},
		Tick: func(v int64) string { return money.English.Amount(v, "EUR") }}
	series := []chartSeries{
		{Name: "New", Class: "new", Values: []int64{500, 0}},
		{Name: "Expansion", Class: "expansion", Values: []int64{250, 0}},
		{Name: "Churn", Class: "churn", Values: []int64{0, -1000}},
	}
	title, desc, shapes := parseSVG(t, string(columnChart(spec, series, true)))
	if title != spec.Title || desc != spec.Desc {
		t.Errorf("title %q, desc %q: want them as given, escaped in the markup and read back whole", title, desc)
	}
	var zero float64
	bars := map[string]svgShape{}
	for _, s := range shapes {
		if s.Name == "text" && s.Class == "tick" && s.Text == "0.00" {
			zero = s.Y - 4
		}
		if s.Name == "rect" && strings.HasPrefix(s.Class, "series-") && s.Title != "" {
			bars[s.Title] = s
		}
	}
	if len(bars) != 3 {
		t.Fatalf("bars %v: want one per non-zero value (3)", bars)
	}
	newBar, exp, churn := bars["Jan 26 · New: 5.00"], bars["Jan 26 · Expansion: 2.50"], bars["Feb 26 · Churn: -10.00"]
	if newBar.Fill != colorOf("new") || churn.Fill != colorOf("churn") {
		t.Errorf("fills %q, %q: want each series' colour", newBar.Fill, churn.Fill)
	}
	if d := newBar.Y + newBar.Height - zero; d > 0.2 || d < -0.2 {
		t.Errorf("the first positive column ends at %.1f, want it on the zero line at %.1f", newBar.Y+newBar.Height, zero)
	}
	if d := exp.Y + exp.Height - newBar.Y; d > 0.2 || d < -0.2 {
		t.Errorf("expansion is not stacked on new: it ends at %.1f, new starts at %.1f", exp.Y+exp.Height, newBar.Y)
	}
	if exp.Height*2 > newBar.Height+0.2 || exp.Height*2 < newBar.Height-0.2 {
		t.Errorf("heights %.1f and %.1f are not in proportion to 250 and 500", exp.Height, newBar.Height)
	}
	if d := churn.Y - zero; d > 0.2 || d < -0.2 {
		t.Errorf("churn starts at %.1f, want it hanging from the zero line at %.1f", churn.Y, zero)
	}
}

func TestChartsEscapeTheirText(t *testing.T) {
	spec := chartSpec{ID: "tiers", Title: "Tiers", Desc: "d", Labels: []string{`<script>alert(1)</script> · monthly`, `a&b`},
		Tick: func(v int64) string { return strconv.FormatInt(v, 10) }}
	markup := string(barListChart(spec, "tier", []int64{300, 100}))
	if strings.Contains(markup, "<script>") {
		t.Fatalf("a label went into the chart unescaped:\n%s", markup)
	}
	_, _, shapes := parseSVG(t, markup)
	var labels []string
	var widths []string
	for _, s := range shapes {
		if s.Class == "label" {
			labels = append(labels, s.Text)
		}
		if s.Name == "rect" {
			widths = append(widths, s.Title)
		}
	}
	if len(labels) != 2 || labels[0] != spec.Labels[0] || labels[1] != "a&b" {
		t.Errorf("labels read back %q, want %q", labels, spec.Labels)
	}
	if len(widths) != 2 {
		t.Errorf("bars %q, want one per label", widths)
	}
}

func TestLineChartsBreakWhereAValueIsMissing(t *testing.T) {
	spec := chartSpec{ID: "churn", Title: "Churn", Desc: "d", Labels: []string{"a", "b", "c", "d"}, Tick: func(v int64) string { return strconv.FormatInt(v, 10) }}
	s := chartSeries{Name: "Patron churn", Class: "rate", Values: []int64{0, 100, 0, 50}, Missing: []bool{true, false, false, false}}
	_, _, shapes := parseSVG(t, string(lineChart(spec, []chartSeries{s})))
	dots := 0
	for _, sh := range shapes {
		if sh.Name == "circle" {
			dots++
		}
	}
	if dots != 3 {
		t.Errorf("%d dots, want 3: none for the missing month", dots)
	}
	_, _, shapes = parseSVG(t, string(lineChart(spec, []chartSeries{{Name: "x", Class: "rate", Values: []int64{1, 2, 3}, Missing: []bool{false, true, false}}})))
	for _, sh := range shapes {
		if sh.Name == "path" && strings.Count(sh.D, "M") != 2 {
			t.Errorf("path %q: a missing value in the middle should start the line again (two M commands)", sh.D)
		}
	}
}
