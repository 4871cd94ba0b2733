//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"sync"
	"time"
)

// healthClients and healthRate shape the health scenario's load: short
// connections opened at a paced rate, each on its own.
const (
	healthClients = 1000
	healthRate    = 200 // connections per second
)

// health opens paced short connections to three targets, one of which
// drops SYNs. Connections sent there during the first dial timeout pay
// it; once the row is unhealthy the others skip it. No client may fail;
// the figures are latencies during the first dial timeout and after.
func health(ctx context.Context, e *env, r *result) error {
	f, before, closeApps, err := e.holedFleet(ctx, 3)
	if err != nil {
		return err
	}
	defer closeApps()
	b := f.targets[0]
	type client struct {
		start time.Time
		took  time.Duration
		err   error
	}
	cs := make([]client, healthClients)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range cs {
		if d := time.Until(t0.Add(time.Duration(i) * time.Second / healthRate)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			c := &cs[i]
			c.start = time.Now()
			conn, _, err := greet(f.addr, blackholeDial+5*time.Second)
			c.took, c.err = time.Since(c.start), err
			if err == nil {
				conn.Close()
			}
		})
	}
	wg.Wait()
	after, err := f.a.metrics()
	if err != nil {
		return err
	}
	// The blackhole first receives with the first clients; its row turns
	// unhealthy when that dial times out, one dial timeout later.
	var first, rest []time.Duration
	failed := 0
	var firstErr error
	for _, c := range cs {
		switch {
		case c.err != nil || c.start.IsZero():
			failed++
			if firstErr == nil {
				firstErr = c.err
			}
		case c.start.Before(t0.Add(blackholeDial)):
			first = append(first, c.took)
		default:
			rest = append(rest, c.took)
		}
	}
	took := time.Since(t0)
	ms := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	r.figure("%d clients at %d/s (%.1f s), dial_timeout %v: %d closed or failed", healthClients, healthRate, took.Seconds(), blackholeDial, failed)
	r.figure("first dial timeout (%d clients): connect to greeting p50 %v, p99 %v, max %v",
		len(first), ms(percentile(first, 0.5)), ms(percentile(first, 0.99)), ms(percentile(first, 1)))
	r.figure("after (%d clients): p50 %v, p99 %v, max %v",
		len(rest), ms(percentile(rest, 0.5)), ms(percentile(rest, 0.99)), ms(percentile(rest, 1)))
	r.figure("%.0f dials failed", after["caddy_vipa_dial_failures_total"]-before["caddy_vipa_dial_failures_total"])
	var rows []struct {
		Node, State, Health string
		Ready               int
	}
	if err := harness.GetJSON(f.a.http, f.a.admin, "/vipa/dpt", &rows); err == nil {
		for _, row := range rows {
			if row.Node == b.name {
				r.figure("%s's DPT row after: ready %d, state %q, health %q", b.name, row.Ready, row.State, row.Health)
			}
		}
	}
	r.check(failed == 0, "%d of %d clients closed or failed (the first: %v)", failed, healthClients, firstErr)
	return nil
}
