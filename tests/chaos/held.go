//go:build linux

package main

import (
	"context"
	"time"
)

// held opens Held connections through the VIPA and holds them: the CRT must
// have exactly one row each; after they close, the routing node's CRT is
// empty and its descriptors and goroutines are back to where they were.
func held(ctx context.Context, e *env, r *result) error {
	n, a, addr, base, err := e.singleBase(ctx, nil)
	if err != nil {
		return err
	}
	defer a.close()
	t0 := time.Now()
	conns, err := hold(ctx, addr, e.sz.Held, 10*time.Second)
	defer closeAll(conns)
	r.figure("%d connections opened in %.1f s", len(conns), time.Since(t0).Seconds())
	if err != nil {
		r.fail("opened %d of %d: %v", len(conns), e.sz.Held, err)
	}
	rows, err := n.crt()
	if err != nil {
		return err
	}
	during, err := n.usage()
	if err != nil {
		return err
	}
	r.figure("CRT %d rows, caddy_vipa_crt_entries %d", len(rows), during.crt)
	r.check(len(rows) == len(conns) && during.crt == len(conns), "CRT has %d rows (metric %d) for %d connections", len(rows), during.crt, len(conns))
	if k := len(conns); k > 0 {
		r.figure("held: %.2f fds and %.2f KiB RSS per connection, %d goroutines (baseline %d)",
			float64(during.fds-base.fds)/float64(k), (during.rssMiB-base.rssMiB)*1024/float64(k), during.goroutines, base.goroutines)
	}
	closeAll(conns)
	t1 := time.Now()
	after, serr := n.settle(ctx, base, 20*time.Second)
	r.figure("before %s; after close %s (%.1f s)", base, after, time.Since(t1).Seconds())
	if serr != nil {
		r.fail("%v", serr)
	}
	return nil
}
