//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Goals of the fleet issue.
const (
	goalListenP99 = 250 * time.Millisecond
	goalAfterFail = 200 * time.Millisecond
	goalGraceful  = time.Second
)

// fleetSize is the number of members the crash-detection figures assume.
const fleetSize = 3

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// cpuModel names the processor, for figures pasted elsewhere.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// table writes the figures as Markdown, ready for a README.
func (res *results) table(w io.Writer, cfg config) {
	if len(res.Profiles) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFleet timing: 3 Caddy processes (./cmd/caddy) on 127.0.0.1–3 of one host, %d cores (%s), %s/%s, %s.\n",
		res.Cores, cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "Default settings (listener watch every 100 ms, encrypted gossip); the routing node's /vipa/dpt read every %s.\n", fmtDur(cfg.Poll))
	fmt.Fprintf(w, "Load average (1 min) %s at the start, %s at the end: other work on the host shows up in the tails.\n\n", res.LoadStart, res.LoadEnd)
	for _, p := range res.Profiles {
		fmt.Fprintf(w, "- %s\n", profiles[p.Profile].describe(p.Profile, fleetSize))
	}
	res.listenTable(w)
	res.leaveTable(w)
	if n := res.failures(); n > 0 {
		fmt.Fprintf(w, "\n%d failed trials (left out of the figures):\n", n)
		for _, p := range res.Profiles {
			for _, f := range p.Failures {
				fmt.Fprintf(w, "- %s: %s\n", p.Profile, f)
			}
		}
	}
}

func (res *results) listenTable(w io.Writer) {
	if !slices.ContainsFunc(res.Profiles, func(p *profileResult) bool { return len(p.Routable) > 0 }) {
		return
	}
	fmt.Fprintf(w, "\n| profile | figure | trials | p50 | p90 | p99 | max | goal | met |\n|---|---|--:|--:|--:|--:|--:|---|---|\n")
	for _, p := range res.Profiles {
		for _, row := range []struct {
			name string
			d    []time.Duration
		}{{"listen → routable", p.Routable}, {"stop-listening → unroutable", p.Unroutable}} {
			if len(row.d) == 0 {
				continue
			}
			s := slices.Sorted(slices.Values(row.d))
			p99 := percentile(s, 99)
			fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | p99 ≤ %s | %s |\n", p.Profile, row.name, len(s),
				fmtDur(percentile(s, 50)), fmtDur(percentile(s, 90)), fmtDur(p99), fmtDur(s[len(s)-1]), fmtDur(goalListenP99), yesNo(p99 <= goalListenP99))
		}
	}
	fmt.Fprintln(w)
	for _, p := range res.Profiles {
		if len(p.Routable) > 0 {
			fmt.Fprintf(w, "Slowest /vipa/dpt answer during the %s trials: %s (about 1 ms when the routing node gets the CPU at once).\n", p.Profile, fmtDur(p.SlowestAdmin))
		}
	}
}

func (res *results) leaveTable(w io.Writer) {
	if !slices.ContainsFunc(res.Profiles, func(p *profileResult) bool { return len(p.Kills)+len(p.Stops) > 0 }) {
		return
	}
	fmt.Fprintf(w, "\n| profile | event | runs | each: rows gone (serf verdict) | median | goal | met |\n|---|---|--:|---|--:|---|---|\n")
	var notes []string
	for _, p := range res.Profiles {
		if len(p.Kills) > 0 {
			// Failure detection is serf's verdict as measured; the expected
			// window is shown beside it, and runs outside it are noted.
			lo, hi := profiles[p.Profile].detection(fleetSize)
			met := true
			for _, r := range p.Kills {
				met = met && r.Gone-r.Verdict <= goalAfterFail
				if r.Verdict > hi {
					notes = append(notes, fmt.Sprintf("%s: serf took %s to declare %s failed, beyond the expected %s", p.Profile, fmtDur(r.Verdict), r.Node, fmtDur(hi)))
				}
			}
			fmt.Fprintf(w, "| %s | SIGKILL → rows gone | %d | %s | %s | ≤ serf's verdict (expected %s–%s) + %s | %s |\n",
				p.Profile, len(p.Kills), eachRun(p.Kills), fmtDur(medianGone(p.Kills)), fmtDur(lo), fmtDur(hi), fmtDur(goalAfterFail), yesNo(met))
		}
		if len(p.Stops) > 0 {
			met := true
			for _, r := range p.Stops {
				met = met && r.Gone <= goalGraceful
			}
			fmt.Fprintf(w, "| %s | SIGTERM → rows gone | %d | %s | %s | ≤ %s | %s |\n",
				p.Profile, len(p.Stops), eachRun(p.Stops), fmtDur(medianGone(p.Stops)), fmtDur(goalGraceful), yesNo(met))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "Note: %s.\n", n)
	}
}

func eachRun(runs []leaveRun) string {
	var parts []string
	for _, r := range runs {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", r.Node, fmtDur(r.Gone), fmtDur(r.Verdict)))
	}
	return strings.Join(parts, ", ")
}

func medianGone(runs []leaveRun) time.Duration {
	var d []time.Duration
	for _, r := range runs {
		d = append(d, r.Gone)
	}
	slices.Sort(d)
	if len(d)%2 == 0 {
		return (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	return d[len(d)/2]
}

// loadAvg is the 1-minute load average, "?" where unknown.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
