//go:build linux

package main

import (
	"context"
	"time"
)

// silentP99Limit bounds the normal connections' p99 beside the silent
// clients: loose, for a shared machine; the figures show the difference.
const silentP99Limit = time.Second

// silent holds Silent clients that connect and never send a byte, and
// runs normal traffic beside them: every normal connection is served and
// its latency stays near what it was without them; the CRT counts the
// silent clients exactly, and they leave nothing behind.
func silent(ctx context.Context, e *env, r *result) error {
	n, a, addr, base, err := e.singleBase(ctx, nil)
	if err != nil {
		return err
	}
	defer a.close()
	quiet := startLoad(addr, e.sz.Rate, 3*time.Second)
	time.Sleep(e.sz.Window)
	quiet.end()

	conns, err := hold(ctx, addr, e.sz.Silent, 10*time.Second)
	defer closeAll(conns)
	if err != nil {
		r.fail("opened %d of %d silent clients: %v", len(conns), e.sz.Silent, err)
	}
	busy := startLoad(addr, e.sz.Rate, 3*time.Second)
	time.Sleep(e.sz.Window)
	busy.end()
	// The last short connections' rows go a moment after their clients
	// saw the end.
	k, _ := waitCRT(ctx, n, len(conns), 5*time.Second)
	qs, qf := quiet.total()
	bs, bf := busy.total()
	r.figure("without silent clients: %d served, %d failed, p50 %v, p99 %v", qs, qf, quiet.percentile(0.5).Round(time.Microsecond*10), quiet.percentile(0.99).Round(time.Microsecond*10))
	r.figure("beside %d silent clients: %d served, %d failed, p50 %v, p99 %v; CRT %d", len(conns), bs, bf, busy.percentile(0.5).Round(time.Microsecond*10), busy.percentile(0.99).Round(time.Microsecond*10), k)
	r.check(qf == 0 && bf == 0, "short connections failed: %d without, %d beside the silent clients (%s)", qf, bf, busy.firstFail())
	r.check(busy.percentile(0.99) < silentP99Limit, "p99 beside the silent clients %v (limit %v)", busy.percentile(0.99), silentP99Limit)
	r.check(k == len(conns), "CRT has %d rows for %d silent clients", k, len(conns))
	closeAll(conns)
	after, serr := n.settle(ctx, base, 20*time.Second)
	r.figure("before %s; after %s", base, after)
	if serr != nil {
		r.fail("%v", serr)
	}
	return nil
}
