//go:build linux

package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// rssGrowthLimit bounds what the routing node's RSS may keep after the
// short connections: a leak of a few hundred bytes per connection shows.
const rssGrowthLimit = 32.0 // MiB

// shortConns runs Short connections (greeting, the app closes) through the
// VIPA from Workers clients at once: none may fail, and the routing node's
// descriptors, goroutines and CRT must be back where they were.
func shortConns(ctx context.Context, e *env, r *result) error {
	n, a, addr, base, err := e.singleBase(ctx, nil)
	if err != nil {
		return err
	}
	defer a.close()
	var next, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range e.sz.Workers {
		wg.Go(func() {
			for next.Add(1) <= int64(e.sz.Short) && ctx.Err() == nil {
				if _, err := short(addr, 5*time.Second); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(t0)
	r.figure("%d connections, %d workers, %.1f s (%.0f conn/s), %d failed", e.sz.Short, e.sz.Workers, took.Seconds(), float64(e.sz.Short)/took.Seconds(), failed.Load())
	r.check(failed.Load() == 0, "%d connections failed (the first: %v)", failed.Load(), firstErr)
	after, serr := n.settle(ctx, base, 20*time.Second)
	r.figure("before %s; after %s", base, after)
	if serr != nil {
		r.fail("%v", serr)
	}
	r.check(after.rssMiB-base.rssMiB <= rssGrowthLimit, "RSS grew %.1f MiB (limit %.0f)", after.rssMiB-base.rssMiB, rssGrowthLimit)
	return nil
}
