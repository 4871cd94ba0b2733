//go:build linux

package main

import (
	"context"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// routingRejoinLimit is how soon a restarted routing node must have its
// targets' rows back and route a connection.
const routingRejoinLimit = 5 * time.Second

// routingKill kills (SIGKILL) the routing node of a running fleet and
// starts it again with the same config; the routing node joins its
// targets at start.
func routingKill(ctx context.Context, e *env, r *result) error {
	return restartRouting(ctx, e, r, true)
}

// routingKillNoJoin is routingKill for a routing node whose config names
// no member to join: only the fleet's memory (or its targets) brings it
// back into the fleet.
func routingKillNoJoin(ctx context.Context, e *env, r *result) error {
	return restartRouting(ctx, e, r, false)
}

func restartRouting(ctx context.Context, e *env, r *result, join bool) error {
	f, err := e.fleet(ctx, fleetConf{targets: 2, joinAll: join})
	if err != nil {
		return err
	}
	for _, t := range f.targets {
		a, err := listenApp(f.appAddr(t), t.name)
		if err != nil {
			return err
		}
		defer a.close()
	}
	if err := f.waitRows(ctx, 10*time.Second); err != nil {
		return err
	}
	held, err := f.openStreams(4)
	if err != nil {
		return err
	}
	defer endStreams(held)
	f.a.kill()
	cut := 0
	deadline := time.Now().Add(3 * time.Second)
	for _, s := range held {
		for !s.ended() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if s.ended() {
			cut++
		}
	}
	r.figure("%d of %d connections through the killed routing node ended", cut, len(held))
	// A crash is noticed before the node is back: the targets declare it
	// failed first (serf's failure detection, 5–7 s on lan).
	killed := time.Now()
	for _, t := range f.targets {
		if err := f.waitMembers(ctx, t, len(f.targets), 20*time.Second); err != nil {
			return err
		}
	}
	r.figure("the targets declared the routing node failed %v after the kill", time.Since(killed).Round(time.Millisecond))

	started := time.Now()
	if err := f.a.start(ctx, e.bin); err != nil {
		return err
	}
	admin := time.Since(started)
	var first time.Duration
	_, ferr := harness.Poll(ctx, 30*time.Second, 20*time.Millisecond, "a routed connection after the restart", func() (bool, string, error) {
		_, err := short(f.addr, time.Second)
		return err == nil, "", err
	})
	first = time.Since(started)
	rerr := f.waitRows(ctx, 30*time.Second)
	rows := time.Since(started)
	r.figure("restart: admin up %v, first routed connection %v, every target's row back %v after start (join list: %v)",
		admin.Round(time.Millisecond), first.Round(time.Millisecond), rows.Round(time.Millisecond), join)
	if ferr != nil {
		r.fail("%v", ferr)
	}
	if rerr != nil {
		r.fail("%v", rerr)
	}
	r.check(first <= routingRejoinLimit+admin && rows <= routingRejoinLimit+admin, "rows back after %v, first connection after %v: want within %v of the admin endpoint", rows, first, routingRejoinLimit)
	if k, err := waitCRT(ctx, f.a, 0, 5*time.Second); err != nil {
		r.fail("CRT has %d rows after the restart, want 0", k)
	}
	return nil
}
