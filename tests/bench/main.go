//go:build linux

// Command bench measures the distribute handler end to end on loopback, side
// by side with caddy-l4's proxy handler, HAProxy (when installed) and no
// proxy at all, and verifies every byte it moves.
//
//	go run ./tests/bench            # 5 interleaved rounds, a few minutes
//	go run ./tests/bench -quick     # smoke run, under a minute
package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/charts"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	if os.Getenv(wakerEnv) != "" {
		runWaker()
	}
	os.Exit(mainExit())
}

func mainExit() int {
	cfg := config{Out: os.Stdout, Err: os.Stderr, Pin: true}
	var cases, contenders, jsonPath, goEnv string
	var quick bool
	flag.IntVar(&cfg.Rounds, "rounds", 5, "interleaved rounds; the table shows medians")
	flag.DurationVar(&cfg.Duration, "duration", 2*time.Second, "length of each timed case, per contender and round")
	flag.StringVar(&cases, "cases", strings.Join(caseNames(), ","), "cases to run, comma-separated")
	flag.StringVar(&contenders, "contenders", "", "contenders, comma-separated, from "+strings.Join(allContenders, ",")+" (default: every one available but "+strings.Join(optIn, ",")+")")
	flag.IntVar(&cfg.IdleConns, "idle-conns", 9500, "connections held by the idle case")
	flag.IntVar(&cfg.Workers, "workers", 32, "concurrent clients of the connection-rate case")
	flag.DurationVar(&cfg.Settle, "settle", time.Second, "how long idle connections rest before memory is read")
	flag.StringVar(&jsonPath, "json", "", "also write the results to this JSON file")
	flag.StringVar(&cfg.CaddyBin, "caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the work directory (generated configs, proxy logs) and print its path")
	flag.StringVar(&cfg.ProfileDir, "profile", "", "save CPU profiles of the Caddy contenders (round 1) into this directory")
	flag.StringVar(&goEnv, "go-env", "", "KEY=VALUE pairs, comma-separated, added to the environment of the Go contenders (distribute, gorelay, gocopy, l4relay, l4proxy), e.g. GOGC=400")
	flag.BoolVar(&cfg.Pin, "pin", true, "pin the proxy and the load to separate CPUs")
	flag.StringVar(&chartDir, "charts", charts.DefaultDir, "write SVG charts into this directory (empty: none)")
	flag.BoolVar(&quick, "quick", false, "smoke run: 1 round, short cases, 500 idle connections")
	flag.Parse()
	if quick {
		quickDefaults(&cfg)
	}
	cfg.Cases = split(cases)
	cfg.Contenders = split(contenders)
	cfg.GoEnv = split(goEnv)
	if err := validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}

	ctx, cancel := harness.RunContext("bench", budget(cfg))
	defer cancel()

	res, err := run(ctx, cfg)
	res.table(os.Stdout)
	if err := res.writeCharts(chartDir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if jsonPath != "" {
		if err := res.writeJSON(jsonPath); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	code := 0
	if n := len(res.Failures); n > 0 {
		data := 0
		for _, f := range res.Failures {
			if f.Kind == kindData {
				data++
			}
		}
		fmt.Fprintf(os.Stderr, "\n*** %d failures, %d of them DATA MISMATCH: see the lines starting with *** above\n", n, data)
		code = 1
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 130
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintln(os.Stderr, "bench: time budget exceeded")
		return 1
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return code
}

// quickDefaults shortens what the command line left at its default.
func quickDefaults(cfg *config) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["rounds"] {
		cfg.Rounds = 1
	}
	if !set["duration"] {
		cfg.Duration = 300 * time.Millisecond
	}
	if !set["idle-conns"] {
		cfg.IdleConns = 500
	}
	if !set["settle"] {
		cfg.Settle = 200 * time.Millisecond
	}
}

func caseNames() []string {
	var names []string
	for _, bc := range allCases {
		names = append(names, bc.name)
	}
	return names
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func validate(cfg config) error {
	for _, c := range cfg.Cases {
		if !slices.Contains(caseNames(), c) {
			return fmt.Errorf("unknown case %q (have %s)", c, strings.Join(caseNames(), ","))
		}
	}
	for _, c := range cfg.Contenders {
		if !slices.Contains(allContenders, c) {
			return fmt.Errorf("unknown contender %q (have %s)", c, strings.Join(allContenders, ","))
		}
	}
	for _, kv := range cfg.GoEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("-go-env %q: want KEY=VALUE", kv)
		}
	}
	switch {
	case cfg.Rounds < 1 || cfg.Rounds > 100:
		return fmt.Errorf("-rounds %d: want 1..100", cfg.Rounds)
	case cfg.Duration < 50*time.Millisecond || cfg.Duration > 10*time.Minute:
		return fmt.Errorf("-duration %v: want 50ms..10m", cfg.Duration)
	case cfg.IdleConns < 1 || cfg.Workers < 1 || cfg.Workers > 4096:
		return fmt.Errorf("-idle-conns and -workers must be positive, -workers at most 4096")
	}
	return nil
}

// budget bounds the whole run: the build plus every measurement with room
// for its setup and drain.
func budget(cfg config) time.Duration {
	per := cfg.Duration + cfg.Settle + 30*time.Second
	return 10*time.Minute + time.Duration(cfg.Rounds*len(cfg.Cases)*len(allContenders))*per
}
