//go:build linux

package main

import (
	"fmt"
	"image/color"
	"io"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/charts"
)

// chartDir is the -charts flag; empty (as in tests) draws none.
var chartDir string

// writeCharts draws the run's SVG charts into dir and lists them on w:
// every contender's ratio to HAProxy for each metric, and the latency
// percentiles of each contender.
func (res *results) writeCharts(dir string, w io.Writer) error {
	if dir == "" {
		return nil
	}
	drawn := []struct {
		name string
		draw func() (*plot.Plot, vg.Length, error)
	}{
		{"bench-ratio-haproxy.svg", res.ratioChart},
		{"bench-latency.svg", res.latencyChart},
	}
	for _, c := range drawn {
		p, height, err := c.draw()
		if err != nil {
			return fmt.Errorf("chart %s: %w", c.name, err)
		}
		if p == nil {
			continue // the run measured nothing it shows
		}
		if err := charts.Save(p, 8*vg.Inch, height, dir, c.name, w); err != nil {
			return err
		}
	}
	return nil
}

// chartRow is one metric of a chart, labelled in full: an indented title
// in the table continues its case's first one.
type chartRow struct {
	metric
	label string
}

func (res *results) chartRows(keep func(metric) bool) []chartRow {
	var out []chartRow
	for _, bc := range allCases {
		if !slices.Contains(res.Config.Cases, bc.name) {
			continue
		}
		parent, _, _ := strings.Cut(bc.metrics[0].title, ":")
		for _, mt := range bc.metrics {
			if !keep(mt) {
				continue
			}
			label := mt.title
			if strings.HasPrefix(label, " ") {
				label = parent + ": " + strings.TrimSpace(label)
			}
			out = append(out, chartRow{mt, label})
		}
	}
	return out
}

func (res *results) rounds() string {
	if res.Config.Rounds == 1 {
		return "1 round"
	}
	return fmt.Sprintf("median of %d rounds", res.Config.Rounds)
}

// ratioChart is a horizontal bar per contender and metric: its median over
// HAProxy's, with HAProxy's own at 1.
func (res *results) ratioChart() (*plot.Plot, vg.Length, error) {
	if !slices.Contains(res.Contenders, cHAProxy) {
		return nil, 0, nil
	}
	rows := res.chartRows(func(mt metric) bool {
		b, ok := res.Medians[mt.key][cHAProxy]
		return ok && b != 0
	})
	for i := range rows {
		better := "higher is better"
		if rows[i].lower {
			better = "lower is better"
		}
		rows[i].label += " (" + better + ")"
	}
	others := slices.DeleteFunc(slices.Clone(res.Contenders), func(c string) bool { return c == cHAProxy })
	value := func(key, c string) (float64, bool) {
		v, ok := res.Medians[key][c]
		return v / res.Medians[key][cHAProxy], ok
	}
	one := 1.0
	return hbars(fmt.Sprintf("Ratio to HAProxy (%s)", res.rounds()), "× HAProxy's figure", rows, others, value, &one)
}

// latencyChart shows each contender's latency percentiles in µs.
func (res *results) latencyChart() (*plot.Plot, vg.Length, error) {
	rows := res.chartRows(func(mt metric) bool {
		return mt.unit == "µs" && (strings.Contains(mt.key, "_p50_") || strings.Contains(mt.key, "_p99_"))
	})
	value := func(key, c string) (float64, bool) {
		v, ok := res.Medians[key][c]
		return v, ok
	}
	return hbars(fmt.Sprintf("Latency percentiles (%s)", res.rounds()), "µs (lower is better)", rows, res.Contenders, value, nil)
}

// hbars draws a group of horizontal bars per row, one bar per contender, the
// first row on top, with a dashed line at ref when given.
func hbars(title, xlabel string, rows []chartRow, contenders []string, value func(key, contender string) (float64, bool), ref *float64) (*plot.Plot, vg.Length, error) {
	if len(rows) == 0 || len(contenders) == 0 {
		return nil, 0, nil
	}
	rows = slices.Clone(rows)
	slices.Reverse(rows) // the plot counts from the bottom
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	bar := vg.Points(9)
	top := 0.0
	for i, c := range contenders {
		vals := make(plotter.Values, len(rows))
		for j, r := range rows {
			if v, ok := value(r.key, c); ok {
				vals[j] = v
				top = max(top, v)
			}
		}
		b, err := plotter.NewBarChart(vals, bar)
		if err != nil {
			return nil, 0, err
		}
		b.Horizontal = true
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = bar * vg.Length(float64(len(contenders)-1)/2-float64(i))
		p.Add(b)
		p.Legend.Add(c, b)
	}
	if ref != nil {
		l, err := plotter.NewLine(plotter.XYs{{X: *ref, Y: -0.5}, {X: *ref, Y: float64(len(rows)) - 0.5}})
		if err != nil {
			return nil, 0, err
		}
		l.Color = color.Gray{Y: 80}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s = %g", cHAProxy, *ref), l)
	}
	labels := make([]string, len(rows))
	for i, r := range rows {
		labels[i] = r.label
	}
	p.NominalY(labels...)
	p.X.Min = 0
	p.X.Max = top * 1.5 // room for the legend
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	height := vg.Points(80) + vg.Length(len(rows))*(bar*vg.Length(len(contenders))+vg.Points(10))
	return p, height, nil
}
