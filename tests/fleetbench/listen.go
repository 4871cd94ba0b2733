package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"
)

// scanPhase spreads trial starts over one listener-watch period (100 ms by
// default), so the figures cover every phase of the nodes' scan ticker.
const scanPhase = 100 * time.Millisecond

// listenTrials opens and closes an application listener on the targets in
// turn and times the routing node's DPT: listen → row, close → no row.
func listenTrials(ctx context.Context, f *fleet, cfg config, res *profileResult) error {
	for i := range cfg.Trials {
		target := f.targets()[i%len(f.targets())]
		var before map[string]float64
		if cfg.Verbose {
			before = fleetCounters(f)
		}
		up, down, err := listenTrial(ctx, f, target, cfg)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if cfg.Verbose {
				fmt.Fprintf(cfg.Log, "%s: trial %d (%s): routable %s, unroutable %s\n", res.Profile, i+1, target.name, fmtDur(up), fmtDur(down))
				if max(up, down) > goalListenP99 {
					fmt.Fprintf(cfg.Log, "\tcounters moved: %s\n", counterDelta(before, fleetCounters(f)))
				}
			}
			res.Routable = append(res.Routable, up)
			res.Unroutable = append(res.Unroutable, down)
			continue
		}
		res.fail("trial %d (%s): %v", i+1, target.name, err)
		for _, n := range f.nodes {
			if err := n.check(); err != nil {
				return err
			}
		}
		// Start the next trial from an empty DPT.
		if _, err := poll(ctx, cfg.Timeout, cfg.Poll, "an empty DPT", func() (bool, string, error) {
			rows, err := dpt(f.routing().admin)
			return len(rows) == 0, dptString(rows), err
		}); err != nil {
			return err
		}
	}
	return nil
}

func listenTrial(ctx context.Context, f *fleet, target *node, cfg config) (up, down time.Duration, err error) {
	admin := f.routing().admin
	addr := net.JoinHostPort(target.ip, strconv.Itoa(f.port))
	if rows, err := dpt(admin); err != nil || len(rows) != 0 {
		return 0, 0, fmt.Errorf("DPT not empty before the trial: %s %v", dptString(rows), err)
	}
	if err := jitter(ctx); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	a, err := listenApp(addr, target.name)
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	seen, err := poll(ctx, cfg.Timeout, cfg.Poll, "listen → routable", func() (bool, string, error) {
		rows, err := dpt(admin)
		r, ok := rowOf(rows, target.name)
		return ok && r.Address == addr && r.Ready == 1 && len(rows) == 1, dptString(rows), err
	})
	if err != nil {
		return 0, 0, err
	}
	up = seen.Sub(t0)
	// The row is real only if a client of the VIPA reaches the listener.
	if got, err := greet(f.vipaAddr()); err != nil || got != target.name {
		return 0, 0, fmt.Errorf("a connection to the VIPA after the row appeared reached %q (%v), want %s", got, err, target.name)
	}

	// The row appeared just after a scan of the target: closing now would
	// always land at the same phase of its ticker.
	if err := jitter(ctx); err != nil {
		return up, 0, err
	}
	t0 = time.Now()
	a.close()
	gone, err := poll(ctx, cfg.Timeout, cfg.Poll, "stop-listening → unroutable", func() (bool, string, error) {
		rows, err := dpt(admin)
		_, ok := rowOf(rows, target.name)
		return !ok, dptString(rows), err
	})
	if err != nil {
		return up, 0, err
	}
	return up, gone.Sub(t0), nil
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
