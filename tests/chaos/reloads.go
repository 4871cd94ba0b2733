//go:build linux

package main

import (
	"context"
	"syscall"
	"time"
)

// reloads reloads the routing node's config Reloads times (alternating
// the handler's dial timeout) under streams and a steady rate of short
// connections: no stream cut, no connection refused, and the CRT holds
// exactly the streams throughout and nothing after.
func reloads(ctx context.Context, e *env, r *result) error {
	n, a, addr, base, err := e.singleBase(ctx, nil)
	if err != nil {
		return err
	}
	defer a.close()
	var streams []*stream
	defer func() { endStreams(streams) }()
	for range e.sz.Streams {
		s, err := startStream(addr, 5*time.Second)
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	l := startLoad(addr, e.sz.Rate, 3*time.Second)
	var took []time.Duration
	for i := range e.sz.Reloads {
		n.dial = []string{"3s", "4s"}[i%2]
		t0 := time.Now()
		if err := n.reload(e.bin); err != nil {
			l.end()
			return err
		}
		took = append(took, time.Since(t0))
		time.Sleep(300 * time.Millisecond)
		k, err := crtCount(n)
		if err != nil {
			l.end()
			return err
		}
		r.check(k >= len(streams), "after reload %d the CRT has %d rows for %d streams", i+1, k, len(streams))
	}
	l.end()
	served, failed := l.total()
	// A new connection can be reset by a reload: Caddy opens a new
	// SO_REUSEPORT socket for each config and closes the old one, and the
	// kernel resets what was still queued on the old socket. That is
	// Caddy's listener, not the plugin; it is shown, not judged.
	other := l.failsExcept(syscall.ECONNRESET)
	r.figure("%d reloads (each %v–%v) under %d streams and %d conn/s: %d short connections served, %d reset, %d failed otherwise",
		e.sz.Reloads, percentile(took, 0).Round(time.Millisecond), percentile(took, 1).Round(time.Millisecond), len(streams), e.sz.Rate, served, failed-other, other)
	r.check(other == 0, "%d short connections failed other than by a reset (the first failure: %s)", other, l.firstFail())
	k, err := waitCRT(ctx, n, len(streams), 5*time.Second)
	r.figure("CRT %d rows for %d streams after the reloads", k, len(streams))
	if err != nil {
		r.fail("CRT not exact: %v", err)
	}
	intact := 0
	var firstErr error
	for _, s := range streams {
		if err := s.end(); err != nil {
			firstErr = err
			continue
		}
		intact++
	}
	r.figure("%d of %d streams intact", intact, len(streams))
	r.check(intact == len(streams), "streams cut by a reload: %v", firstErr)
	after, serr := n.settle(ctx, base, 20*time.Second)
	r.figure("before %s; after %s", base, after)
	if serr != nil {
		r.fail("%v", serr)
	}
	return nil
}
