//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteCharts(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	res := &results{Profiles: []*profileResult{
		{Profile: "lan", Routable: ms(90, 110, 130, 400), Unroutable: ms(80, 100, 120)},
		{Profile: "fast", Routable: ms(40, 60)},
	}}
	dir := t.TempDir()
	var out strings.Builder
	if err := res.writeCharts(dir, &out); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "fleet-listen-latency.svg")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"<svg", "lan: listen → routable (4 trials)", "lan: stop-listening → unroutable (3 trials)", "fast: listen → routable (2 trials)", "goal: p99 ≤ 250 ms"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("chart lacks %q", w)
		}
	}
	if !strings.Contains(out.String(), "chart: "+path) {
		t.Errorf("output does not name the chart: %s", out.String())
	}
	if got := cdf(ms(20, 10)); len(got) != 5 || got[1].X != 10 || got[1].Y != 0 || got[2].Y != 0.5 || got[4].X != 20 || got[4].Y != 1 {
		t.Errorf("cdf %v", got)
	}
}
