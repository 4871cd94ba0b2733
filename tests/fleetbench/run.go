//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"fmt"
	"io"
	"runtime"
	"syscall"
	"time"
)

// config is one run of the command.
type config struct {
	Trials   int           // listen/stop-listening trials per profile
	Kills    int           // SIGKILL runs per profile
	Stops    int           // SIGTERM runs per profile
	Profiles []string      // gossip profiles, one fleet each
	Poll     time.Duration // how often the routing node's DPT is read
	Timeout  time.Duration // bound on one listen or stop-listening wait
	CaddyBin string        // a prebuilt binary instead of ./cmd/caddy
	Keep     bool          // keep the temp dir (configs, logs)
	Verbose  bool          // show every trial
	Debug    bool          // Caddy logs at debug level
	Log      io.Writer     // progress
}

type results struct {
	Cores              int
	LoadStart, LoadEnd string
	Profiles           []*profileResult
}

// profileResult holds the figures of one fleet.
type profileResult struct {
	Profile    string
	Routable   []time.Duration
	Unroutable []time.Duration
	// SlowestAdmin is the longest /vipa/dpt answer seen during the trials.
	SlowestAdmin time.Duration
	Kills        []leaveRun
	Stops        []leaveRun
	Failures     []string
	log          io.Writer
}

// fail records a failed trial and shows it at once.
func (r *profileResult) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.Failures = append(r.Failures, msg)
	fmt.Fprintf(r.log, "%s: FAILED %s\n", r.Profile, msg)
}

// failures counts failed trials over all profiles.
func (res *results) failures() int {
	n := 0
	for _, p := range res.Profiles {
		n += len(p.Failures)
	}
	return n
}

func run(ctx context.Context, cfg config) (*results, error) {
	res := &results{Cores: runtime.NumCPU(), LoadStart: loadAvg()}
	defer func() { res.LoadEnd = loadAvg() }()
	dir, done, err := harness.RunDir("caddy-vipa-fleetbench-", cfg.Keep, cfg.Log)
	if err != nil {
		return res, err
	}
	defer done()
	bin, err := harness.CaddyBinary(ctx, cfg.CaddyBin, dir, cfg.Log)
	if err != nil {
		return res, err
	}
	pp := harness.NewPortPicker()
	for _, name := range cfg.Profiles {
		pr := &profileResult{Profile: name, log: cfg.Log}
		res.Profiles = append(res.Profiles, pr)
		fmt.Fprintf(cfg.Log, "%s: starting 3 nodes\n", name)
		f, err := startFleet(ctx, bin, dir, name, cfg.Debug, pp)
		if err != nil {
			return res, fmt.Errorf("profile %s: %w", name, err)
		}
		err = measure(ctx, f, cfg, pr)
		f.close()
		if err != nil {
			return res, fmt.Errorf("profile %s: %w", name, err)
		}
	}
	return res, nil
}

func measure(ctx context.Context, f *fleet, cfg config, pr *profileResult) error {
	fmt.Fprintf(cfg.Log, "%s: %d listen / stop-listening trials\n", pr.Profile, cfg.Trials)
	if err := listenTrials(ctx, f, cfg, pr); err != nil {
		return err
	}
	var err error
	fmt.Fprintf(cfg.Log, "%s: %d SIGKILL runs\n", pr.Profile, cfg.Kills)
	if pr.Kills, err = leaveRuns(ctx, f, cfg, pr, syscall.SIGKILL, cfg.Kills); err != nil {
		return err
	}
	fmt.Fprintf(cfg.Log, "%s: %d SIGTERM runs\n", pr.Profile, cfg.Stops)
	pr.Stops, err = leaveRuns(ctx, f, cfg, pr, syscall.SIGTERM, cfg.Stops)
	return err
}
