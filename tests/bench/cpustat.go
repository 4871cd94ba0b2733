//go:build linux

package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cpuTimes is one CPU's line of /proc/stat: busy and total jiffies. It tells
// which core limited a case: a proxy core below 100% while the load core is
// at 100% means the bench, not the proxy, set the pace.
type cpuTimes struct{ busy, total uint64 }

func readCPUTimes() map[int]cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	out := map[int]cpuTimes{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		cpu, err := strconv.Atoi(f[0][3:])
		if err != nil {
			continue
		}
		var t cpuTimes
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			if i < 8 { // guest time is already counted in user
				t.total += n
			}
			if i != 3 && i != 4 && i < 8 { // idle, iowait
				t.busy += n
			}
		}
		out[cpu] = t
	}
	return out
}

// busyPercent is how busy cpu was between two readings.
func busyPercent(before, after map[int]cpuTimes, cpu int) (float64, bool) {
	a, okA := before[cpu]
	b, okB := after[cpu]
	if !okA || !okB || b.total <= a.total {
		return 0, false
	}
	return 100 * float64(b.busy-a.busy) / float64(b.total-a.total), true
}

// cpuMetrics adds the busy share of the proxy and load cores to a case's metrics.
func (r *runner) cpuMetrics(name string, before, after map[int]cpuTimes, m map[string]float64) {
	if r.proxyCPU < 0 || m == nil {
		return
	}
	if v, ok := busyPercent(before, after, r.proxyCPU); ok {
		m[name+"_cpu_proxy_pct"] = v
	}
	if v, ok := busyPercent(before, after, r.loadCPU); ok {
		m[name+"_cpu_load_pct"] = v
	}
}

func cpuNote(name string, m map[string]float64) string {
	p, okP := m[name+"_cpu_proxy_pct"]
	l, okL := m[name+"_cpu_load_pct"]
	if !okP || !okL {
		return ""
	}
	return fmt.Sprintf("   [busy: proxy core %.0f%%, load core %.0f%%]", p, l)
}

// warnIfBusy samples the CPUs before the run: load from other programs makes
// every figure noisy, and the table alone would not show it.
func (r *runner) warnIfBusy() {
	before := readCPUTimes()
	sleepCtx(r.ctx, 500*time.Millisecond)
	after := readCPUTimes()
	var busy []string
	for cpu := range after {
		if v, ok := busyPercent(before, after, cpu); ok && v > 20 {
			busy = append(busy, fmt.Sprintf("CPU %d %.0f%%", cpu, v))
		}
	}
	if len(busy) > 0 {
		slices.Sort(busy)
		fmt.Fprintf(r.cfg.Err, "warning: the machine is busy before the run (%s): expect noisy results\n", strings.Join(busy, ", "))
	}
}

// proxyCPU adds the proxy core's time per unit of work: per connection in
// the connection-rate case, per gigabyte in the bulk cases. Unlike a rate it
// does not depend on which core set the pace: a proxy that leaves its core
// idle while the load core is saturated shows its real cost here.
func proxyCPU(m map[string]float64) {
	per := func(cpuKey, rateKey, key string, scale float64) {
		pct, okP := m[cpuKey]
		rate, okR := m[rateKey]
		if okP && okR && rate > 0 {
			m[key] = pct / 100 * scale / rate
		}
	}
	per("connrate_cpu_proxy_pct", "conn_per_s", "conn_cpu_us", 1e6)     // µs per connection
	per("upload_cpu_proxy_pct", "upload_gbps", "upload_cpu_ms_gb", 8e3) // ms per GB at Gbit/s
	per("download_cpu_proxy_pct", "download_gbps", "download_cpu_ms_gb", 8e3)
}
