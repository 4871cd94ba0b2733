//go:build linux

// Command fleetbench measures how fast a 3-process caddy-vipa fleet with
// default settings follows its applications: listen → routable and
// stop-listening → unroutable on the routing node, and how soon the rows of
// a killed (SIGKILL) or stopped (SIGTERM) node go, per gossip profile.
//
//	go run ./tests/fleetbench                # 50 trials, 3 kills, 3 stops, lan and fast: 2–4 min
//	go run ./tests/fleetbench -quick         # 10 trials, 1 kill, 1 stop, lan, < 1 min
//	go run ./tests/fleetbench -profile fast
package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/charts"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	os.Exit(mainExit())
}

func mainExit() int {
	cfg := config{Log: os.Stderr}
	var profileList string
	var quick bool
	flag.IntVar(&cfg.Trials, "trials", 50, "listen / stop-listening trials per profile, alternating caddy-b and caddy-c")
	flag.IntVar(&cfg.Kills, "kills", 3, "SIGKILL runs per profile")
	flag.IntVar(&cfg.Stops, "stops", 3, "SIGTERM runs per profile")
	flag.StringVar(&profileList, "profile", "lan,fast", "gossip profiles to measure, comma-separated: lan (the default a user gets), fast")
	flag.DurationVar(&cfg.Poll, "poll", 2*time.Millisecond, "how often the routing node's /vipa/dpt is read")
	flag.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "a listen or stop-listening trial fails after this")
	flag.StringVar(&cfg.CaddyBin, "caddy", "", "use this Caddy binary instead of building ./cmd/caddy")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the Caddyfiles and logs")
	flag.BoolVar(&cfg.Verbose, "v", false, "show every trial as it ends")
	flag.BoolVar(&cfg.Debug, "debug", false, "run Caddy at log level debug (see -keep)")
	flag.StringVar(&chartDir, "charts", charts.DefaultDir, "write SVG charts into this directory (empty: none)")
	flag.BoolVar(&quick, "quick", false, "smoke run: 10 trials, 1 kill, 1 stop, profile lan")
	flag.Parse()
	if quick {
		quickDefaults(&cfg, &profileList)
	}
	for _, p := range strings.Split(profileList, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Profiles = append(cfg.Profiles, p)
		}
	}
	if err := validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		return 2
	}

	ctx, cancel := harness.RunContext("fleetbench", budget(cfg))
	defer cancel()
	return report(ctx, cfg, os.Stdout)
}

// report runs the measurements and prints the table; it returns the exit
// code: 1 on an error or a failed trial.
func report(ctx context.Context, cfg config, out io.Writer) int {
	res, err := run(ctx, cfg)
	res.table(out, cfg)
	if err := res.writeCharts(chartDir, out); err != nil {
		fmt.Fprintln(cfg.Log, "fleetbench:", err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(cfg.Log, "fleetbench: interrupted")
		return 130
	case err != nil:
		fmt.Fprintln(cfg.Log, "fleetbench:", err)
		return 1
	case res.failures() > 0:
		return 1
	}
	return 0
}

// quickDefaults shortens what the command line left at its default.
func quickDefaults(cfg *config, profileList *string) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["trials"] {
		cfg.Trials = 10
	}
	if !set["kills"] {
		cfg.Kills = 1
	}
	if !set["stops"] {
		cfg.Stops = 1
	}
	if !set["profile"] {
		*profileList = "lan"
	}
}

func validate(cfg config) error {
	if len(cfg.Profiles) == 0 {
		return errors.New("no profile to measure")
	}
	for _, p := range cfg.Profiles {
		if _, ok := profiles[p]; !ok {
			return fmt.Errorf("unknown profile %q: want lan or fast", p)
		}
	}
	if cfg.Trials < 0 || cfg.Kills < 0 || cfg.Stops < 0 {
		return errors.New("counts must not be negative")
	}
	if cfg.Poll <= 0 || cfg.Timeout <= 0 {
		return errors.New("-poll and -timeout must be positive")
	}
	return nil
}

// budget bounds the whole run, generously: every wait inside is bounded too.
func budget(cfg config) time.Duration {
	perProfile := time.Minute + time.Duration(cfg.Trials)*2*(cfg.Timeout+time.Second) +
		time.Duration(cfg.Kills+cfg.Stops)*time.Minute
	return 10*time.Minute + time.Duration(len(cfg.Profiles))*perProfile
}
