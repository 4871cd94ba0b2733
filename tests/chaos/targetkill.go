//go:build linux

package main

import (
	"context"
	"syscall"
	"time"
)

// targetKill kills (SIGKILL) one target's application in the middle of
// streams and under a steady rate of short connections. Its streams must
// end promptly and leave the CRT; the other target's streams carry on
// untouched; new connections go to the other target without failing,
// since a refused dial tries the next candidate.
func targetKill(ctx context.Context, e *env, r *result) error {
	f, err := e.fleet(ctx, fleetConf{targets: 2})
	if err != nil {
		return err
	}
	b, c := f.targets[0], f.targets[1]
	bApp, err := e.startAppProcess(ctx, f.appAddr(b), b.name)
	if err != nil {
		return err
	}
	cApp, err := listenApp(f.appAddr(c), c.name)
	if err != nil {
		return err
	}
	defer cApp.close()
	if err := f.waitRows(ctx, 10*time.Second); err != nil {
		return err
	}
	streams, err := f.openStreams(e.sz.Streams)
	if err != nil {
		return err
	}
	defer endStreams(streams)
	onB, onC := byNode(streams, b.name)
	l := startLoad(f.addr, e.sz.Rate, 2*time.Second)
	time.Sleep(time.Second)

	killed := time.Now()
	_ = bApp.Signal(syscall.SIGKILL)
	bApp.Reap(5 * time.Second)
	reaped := time.Now()
	rowErr := waitRow(ctx, f.a, f.port, b.name, false, 10*time.Second)
	rowGone := time.Since(killed)
	time.Sleep(2 * time.Second)
	l.end()

	var slowest time.Duration
	cut := 0
	for _, s := range onB {
		if s.ended() {
			cut++
			slowest = max(slowest, s.endedAt.Sub(killed))
		}
	}
	r.figure("%d streams on %s: %d ended, the last %v after the kill", len(onB), b.name, cut, slowest.Round(time.Millisecond))
	r.check(cut == len(onB) && slowest < 2*time.Second, "%d of %d streams of the killed app ended (slowest %v)", cut, len(onB), slowest)
	r.figure("row of %s gone %v after the kill", b.name, rowGone.Round(time.Millisecond))
	if rowErr != nil {
		r.fail("%v", rowErr)
	}
	served, failed := l.total()
	late := l.failsAfter(reaped)
	r.figure("%d conn/s: %d served, %d failed while the app was dying (the first: %s), %d after it was gone",
		e.sz.Rate, served, failed-late, l.firstFail(), late)
	r.check(late == 0, "%d short connections started after the app was gone failed", late)
	if k, err := waitCRT(ctx, f.a, len(onC), 5*time.Second); err != nil {
		r.fail("CRT has %d rows, want the %d streams on %s: %v", k, len(onC), c.name, err)
	}
	intact := 0
	var firstErr error
	for _, s := range onC {
		if err := s.end(); err != nil {
			firstErr = err
			continue
		}
		intact++
	}
	r.figure("%d of %d streams on %s intact", intact, len(onC), c.name)
	r.check(intact == len(onC), "streams on %s cut: %v", c.name, firstErr)
	if k, err := waitCRT(ctx, f.a, 0, 5*time.Second); err != nil {
		r.fail("CRT has %d rows after every client closed", k)
	}
	return nil
}
