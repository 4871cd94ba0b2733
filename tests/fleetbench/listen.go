//go:build linux

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// scanPhase spreads trial starts over one listener-watch period (100 ms by
// default), so the figures cover every phase of the nodes' scan ticker.
const scanPhase = 100 * time.Millisecond

// trial is one listen / stop-listening cycle.
type trial struct {
	up, down time.Duration
	// slowest is the longest /vipa/dpt answer while waiting: the routing
	// node's own responsiveness, so a slow trial on a starved host shows
	// as such rather than as a slow fleet.
	slowest time.Duration
}

// listenTrials opens and closes an application listener on the targets in
// turn and times the routing node's DPT: listen → row, close → no row.
func listenTrials(ctx context.Context, f *fleet, cfg config, res *profileResult) error {
	for i := range cfg.Trials {
		target := f.targets()[i%len(f.targets())]
		var before map[string]float64
		if cfg.Verbose {
			before = fleetCounters(f)
		}
		t, err := listenTrial(ctx, f, target, cfg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res.SlowestAdmin = max(res.SlowestAdmin, t.slowest)
		if err == nil {
			res.Routable = append(res.Routable, t.up)
			res.Unroutable = append(res.Unroutable, t.down)
			if cfg.Verbose {
				fmt.Fprintf(cfg.Log, "%s: trial %d (%s): routable %s, unroutable %s, slowest /vipa/dpt answer %s\n",
					res.Profile, i+1, target.name, fmtDur(t.up), fmtDur(t.down), fmtDur(t.slowest))
				if max(t.up, t.down) > goalListenP99 {
					fmt.Fprintf(cfg.Log, "\tcounters moved: %s\n", counterDelta(before, fleetCounters(f)))
				}
			}
			continue
		}
		res.fail("trial %d (%s): %v", i+1, target.name, err)
		for _, n := range f.nodes {
			if err := n.check(); err != nil {
				return err
			}
		}
		// Start the next trial from an empty DPT.
		if _, err := harness.Poll(ctx, cfg.Timeout, cfg.Poll, "an empty DPT", func() (bool, string, error) {
			rows, err := dpt(f.routing().admin)
			return len(rows) == 0, dptString(rows), err
		}); err != nil {
			return err
		}
	}
	return nil
}

func listenTrial(ctx context.Context, f *fleet, target *node, cfg config) (trial, error) {
	var t trial
	admin := f.routing().admin
	timed := func() ([]dptRow, error) {
		start := time.Now()
		rows, err := dpt(admin)
		t.slowest = max(t.slowest, time.Since(start))
		return rows, err
	}
	addr := net.JoinHostPort(target.ip, strconv.Itoa(f.port))
	if rows, err := dpt(admin); err != nil || len(rows) != 0 {
		return t, fmt.Errorf("DPT not empty before the trial: %s %v", dptString(rows), err)
	}
	if err := jitter(ctx); err != nil {
		return t, err
	}
	t0 := time.Now()
	a, err := listenApp(addr, target.name)
	if err != nil {
		return t, err
	}
	defer a.close()
	seen, err := harness.Poll(ctx, cfg.Timeout, cfg.Poll, "listen → routable", func() (bool, string, error) {
		rows, err := timed()
		r, ok := rowOf(rows, target.name)
		return ok && r.Address == addr && r.Ready == 1 && len(rows) == 1, dptString(rows), err
	})
	if err != nil {
		return t, err
	}
	t.up = seen.Sub(t0)
	// The row is real only if a client of the VIPA reaches the listener.
	if got, err := greet(f.vipaAddr()); err != nil || got != target.name {
		return t, fmt.Errorf("a connection to the VIPA after the row appeared reached %q (%v), want %s", got, err, target.name)
	}

	// The row appeared just after a scan of the target: closing now would
	// always land at the same phase of its ticker.
	if err := jitter(ctx); err != nil {
		return t, err
	}
	t0 = time.Now()
	a.close()
	gone, err := harness.Poll(ctx, cfg.Timeout, cfg.Poll, "stop-listening → unroutable", func() (bool, string, error) {
		rows, err := timed()
		_, ok := rowOf(rows, target.name)
		return !ok, dptString(rows), err
	})
	if err != nil {
		return t, err
	}
	t.down = gone.Sub(t0)
	return t, nil
}

// jitter waits a random part of the scan period.
func jitter(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(rand.N(scanPhase)):
		return nil
	}
}
