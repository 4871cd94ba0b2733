//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteCharts(t *testing.T) {
	res := &results{Rounds: map[string]map[string][]float64{}, Medians: map[string]map[string]float64{}}
	res.Config.Rounds = 2
	res.Config.Cases = []string{"upload", "pingpong", "conn1"}
	res.Contenders = []string{cDistribute, cHAProxy, cDirect}
	for _, c := range res.Contenders {
		res.add(c, map[string]float64{"upload_gbps": 20, "upload_cpu_ms_gb": 300, "pingpong_p50_us": 30, "pingpong_p99_us": 60, "conn1_p99_us": 90})
		res.add(c, map[string]float64{"upload_gbps": 22, "upload_cpu_ms_gb": 280, "pingpong_p50_us": 32, "pingpong_p99_us": 70})
	}
	dir := t.TempDir()
	var out strings.Builder
	if err := res.writeCharts(dir, &out); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"bench-ratio-haproxy.svg": {"<svg", "Ratio to HAProxy", "connect+64B+close, 1 client: connect-to-reply p99 (lower is better)", cDistribute, cDirect, "bulk upload, 1 conn (higher is better)", "proxy CPU per GB uploaded (lower is better)"},
		"bench-latency.svg":       {"<svg", "Latency percentiles (median of 2 rounds)", cHAProxy, "64B ping-pong p99, one core"},
	} {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %q", name, w)
			}
		}
		if !strings.Contains(out.String(), "chart: "+path) {
			t.Errorf("output does not name %s:\n%s", path, out.String())
		}
	}

	// Without HAProxy there is no ratio chart; without a directory, no chart.
	res.Contenders = []string{cDistribute, cDirect}
	dir = t.TempDir()
	if err := res.writeCharts(dir, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench-ratio-haproxy.svg")); !os.IsNotExist(err) {
		t.Errorf("a ratio chart without HAProxy: %v", err)
	}
	if err := res.writeCharts("", &out); err != nil {
		t.Fatal(err)
	}
}
