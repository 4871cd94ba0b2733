//go:build linux

package main

import (
	"context"
	"net"
	"sync"
	"time"
)

// fdExhaustion runs the routing node under a low RLIMIT_NOFILE (soft and
// hard) and sends more clients than its descriptors fit, all at once. Once
// they have all closed, the VIPA must serve new clients: the listener has
// to outlive EMFILE. How the clients beyond the limit fared is a figure:
// closed at once, or left waiting until their own timeout.
func fdExhaustion(ctx context.Context, e *env, r *result) error {
	n, a, addr, base, err := e.singleBase(ctx, func(n *node) { n.nofile = uint64(e.sz.FDLimit) })
	if err != nil {
		return err
	}
	defer a.close()
	m0, err := n.metrics()
	if err != nil {
		return err
	}
	const wait = 3 * time.Second
	var (
		mu                     sync.Mutex
		conns                  []net.Conn
		served, closed, waited int
		wg                     sync.WaitGroup
	)
	t0 := time.Now()
	for range e.sz.FDClients {
		wg.Go(func() {
			t := time.Now()
			c, _, err := greet(addr, wait)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				conns = append(conns, c)
				served++
			case time.Since(t) < wait-100*time.Millisecond:
				closed++
			default:
				waited++
			}
		})
	}
	wg.Wait()
	during, _ := n.usage()
	r.figure("RLIMIT_NOFILE %d: %d clients in %.1f s: %d served, %d closed at once, %d waited %v; routing node at %d fds",
		e.sz.FDLimit, e.sz.FDClients, time.Since(t0).Seconds(), served, closed, waited, wait, during.fds)
	r.check(served > 0, "no client served under the limit")
	if m1, err := n.metrics(); err == nil {
		r.figure("counted: %s", seriesDeltas(m0, m1, "caddy_vipa_accept_errors_total", "caddy_vipa_refused_connections_total", "caddy_vipa_dial_failures_total"))
	}
	closeAll(conns)
	after, serr := n.settle(ctx, base, 20*time.Second)
	r.figure("after every client closed: %s (baseline %s)", after, base)
	if serr != nil {
		r.fail("%v", serr)
	}

	// New clients one after another; ten failures in a row end the try.
	const fresh, giveUp = 60, 10
	got, tried, inARow := 0, 0, 0
	var first time.Duration
	var firstErr error
	t1 := time.Now()
	for tried < fresh && inARow < giveUp {
		tried++
		if _, err := short(addr, time.Second); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			inARow++
			continue
		}
		if got == 0 {
			first = time.Since(t1)
		}
		got, inARow = got+1, 0
	}
	if got > 0 {
		r.figure("%d of %d new connections served after recovery (the first after %v)", got, tried, first.Round(time.Millisecond))
	} else {
		r.figure("0 of %d new connections served after recovery", tried)
	}
	r.check(got == fresh, "%d of %d new connections served after the clients closed (the first error: %v)", got, tried, firstErr)
	return n.check()
}
