//go:build linux

package main

import (
	"fmt"
	"image/color"
	"io"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/charts"
)

// chartDir is the -charts flag; empty (as in tests) draws none.
var chartDir string

// writeCharts draws the distribution of the listen → routable and
// stop-listening → unroutable times of every profile into dir, as an SVG
// chart of the share of trials done by each time, and names it on w.
func (res *results) writeCharts(dir string, w io.Writer) error {
	if dir == "" {
		return nil
	}
	p, err := res.listenChart()
	if err != nil || p == nil {
		return err
	}
	return charts.Save(p, 7*vg.Inch, 4*vg.Inch, dir, "fleet-listen-latency.svg", w)
}

func (res *results) listenChart() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Listener change → routing node's DPT (share of trials done)"
	p.X.Label.Text = "ms"
	p.Y.Label.Text = "share of trials"
	p.Y.Min, p.Y.Max = 0, 1
	p.X.Min = 0
	n := 0
	for j, pr := range res.Profiles {
		for i, fig := range []struct {
			name string
			d    []time.Duration
		}{{"listen → routable", pr.Routable}, {"stop-listening → unroutable", pr.Unroutable}} {
			if len(fig.d) == 0 {
				continue
			}
			l, err := plotter.NewLine(cdf(fig.d))
			if err != nil {
				return nil, err
			}
			l.Color = plotutil.Color(j) // one color a profile, dashed when unlistening
			l.Width = vg.Points(1.5)
			if i == 1 {
				l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s: %s (%d trials)", pr.Profile, fig.name, len(fig.d)), l)
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	goal := float64(goalListenP99) / float64(time.Millisecond)
	g, err := plotter.NewLine(plotter.XYs{{X: goal, Y: 0}, {X: goal, Y: 1}})
	if err != nil {
		return nil, err
	}
	g.Color = color.Gray{Y: 110}
	g.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(g)
	p.Legend.Add(fmt.Sprintf("goal: p99 ≤ %s", fmtDur(goalListenP99)), g)
	p.X.Max *= 1.1 // the goal line off the edge
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.YOffs = vg.Points(10)
	return p, nil
}

// cdf is the empirical distribution of d as a step line in milliseconds.
func cdf(d []time.Duration) plotter.XYs {
	s := slices.Sorted(slices.Values(d))
	xys := plotter.XYs{{X: 0, Y: 0}}
	for i, v := range s {
		ms := float64(v) / float64(time.Millisecond)
		xys = append(xys, plotter.XY{X: ms, Y: float64(i) / float64(len(s))}, plotter.XY{X: ms, Y: float64(i+1) / float64(len(s))})
	}
	return xys
}
