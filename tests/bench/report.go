//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"
)

// results is what a run measured; it is also the -json document.
type results struct {
	Machine struct {
		CPUs     int    `json:"cpus"`
		Model    string `json:"model"`
		Kernel   string `json:"kernel"`
		Go       string `json:"go"`
		NoFile   int    `json:"rlimit_nofile"`
		ProxyCPU int    `json:"proxy_cpu"` // -1: unpinned
		LoadCPU  int    `json:"load_cpu"`
	} `json:"machine"`
	Config struct {
		Rounds    int      `json:"rounds"`
		Duration  string   `json:"duration"`
		Cases     []string `json:"cases"`
		IdleConns int      `json:"idle_conns"`
		Workers   int      `json:"workers"`
	} `json:"config"`
	Contenders []string                        `json:"contenders"`
	Notes      map[string]string               `json:"notes"`
	Rounds     map[string]map[string][]float64 `json:"rounds"`  // metric → contender → value of each successful round
	Medians    map[string]map[string]float64   `json:"medians"` // metric → contender → median
	Failures   []failure                       `json:"failures"`
}

func newResults(cfg config) *results {
	res := &results{Notes: map[string]string{}, Rounds: map[string]map[string][]float64{}, Medians: map[string]map[string]float64{}}
	m := &res.Machine
	m.CPUs, m.Go, m.ProxyCPU, m.LoadCPU = runtime.NumCPU(), runtime.Version(), -1, -1
	m.Model = cpuModel()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	c := &res.Config
	c.Rounds, c.Duration, c.Cases, c.IdleConns, c.Workers = cfg.Rounds, cfg.Duration.String(), cfg.Cases, cfg.IdleConns, cfg.Workers
	return res
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (res *results) header(w io.Writer) {
	m, c := res.Machine, res.Config
	fmt.Fprintf(w, "machine: %d cores (%s), Linux %s, %s, RLIMIT_NOFILE %d\n", m.CPUs, m.Model, m.Kernel, m.Go, m.NoFile)
	if m.ProxyCPU >= 0 {
		fmt.Fprintf(w, "pinning: proxy on CPU %d (1 thread); load client and backends on CPU %d; one-core cases: all on CPU %d\n", m.ProxyCPU, m.LoadCPU, m.LoadCPU)
	}
	fmt.Fprintf(w, "config: %d rounds × %v per case, cases %s, %d workers, %d idle conns\n", c.Rounds, c.Duration, strings.Join(c.Cases, ","), c.Workers, c.IdleConns)
	for _, name := range res.Contenders {
		fmt.Fprintf(w, "  %-10s %s\n", name, res.Notes[name])
	}
}

// add records one measurement: the case's metrics and any extra ones (CPU
// busy shares), which go to the JSON only.
func (res *results) add(contender string, m map[string]float64) {
	for key, v := range m {
		if res.Rounds[key] == nil {
			res.Rounds[key] = map[string][]float64{}
			res.Medians[key] = map[string]float64{}
		}
		res.Rounds[key][contender] = append(res.Rounds[key][contender], v)
		res.Medians[key][contender] = median(res.Rounds[key][contender])
	}
}

// line is the progress line of one measurement.
func (res *results) line(bc benchCase, contender string, m map[string]float64) string {
	if m == nil {
		return fmt.Sprintf("%-10s %-11s failed", bc.name, contender)
	}
	var parts []string
	for _, mt := range bc.metrics {
		if v, ok := m[mt.key]; ok {
			parts = append(parts, fmt.Sprintf("%.*f %s", mt.prec, v, mt.unit))
		}
	}
	return fmt.Sprintf("%-10s %-11s %s%s", bc.name, contender, strings.Join(parts, ", "), cpuNote(bc.name, m))
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else if n > 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return math.NaN()
}

// table prints the medians, then the same rows as ratios to haproxy and to
// direct.
func (res *results) table(w io.Writer) {
	var metrics []metric
	for _, bc := range allCases {
		if slices.Contains(res.Config.Cases, bc.name) {
			metrics = append(metrics, bc.metrics...)
		}
	}
	value := func(mt metric, c string) (float64, bool) {
		v, ok := res.Medians[mt.key][c]
		return v, ok
	}
	cell := func(mt metric, c string) string {
		if v, ok := value(mt, c); ok {
			return fmt.Sprintf("%.*f", mt.prec, v)
		}
		return "—"
	}
	head := append([]string{fmt.Sprintf("medians of %d rounds", res.Config.Rounds), "unit"}, res.Contenders...)
	rows := [][]string{head}
	for _, mt := range metrics {
		row := []string{mt.title, mt.unit}
		for _, c := range res.Contenders {
			row = append(row, cell(mt, c))
		}
		rows = append(rows, row)
	}
	fmt.Fprintln(w)
	printRows(w, rows)
	for _, base := range []string{cHAProxy, cDirect} {
		if !slices.Contains(res.Contenders, base) {
			continue
		}
		rows := [][]string{append([]string{"ratio to " + base, ""}, res.Contenders...)}
		for _, mt := range metrics {
			better := "higher is better"
			if mt.lower {
				better = "lower is better"
			}
			row := []string{mt.title, better}
			b, bok := value(mt, base)
			for _, c := range res.Contenders {
				v, ok := value(mt, c)
				if !ok || !bok || b == 0 {
					row = append(row, "—")
					continue
				}
				row = append(row, fmt.Sprintf("%.2f×", v/b))
			}
			rows = append(rows, row)
		}
		fmt.Fprintln(w)
		printRows(w, rows)
	}
}

// printRows aligns a table: the first column left, the others right.
func printRows(w io.Writer, rows [][]string) {
	width := map[int]int{}
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func (res *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
