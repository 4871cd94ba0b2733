//go:build linux

package main

import (
	"context"
	"syscall"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
)

// targetKill kills (SIGKILL) one target's application in the middle of
// streams and under a steady rate of short connections. Its streams must
// end promptly and leave the CRT; the other target's streams carry on
// untouched; new connections go to the other target without failing,
// since a refused dial tries the next candidate.
func targetKill(ctx context.Context, e *env, r *result) error {
	lt, done, err := e.loadedTargets(ctx, fleetConf{targets: 2})
	if err != nil {
		return err
	}
	defer done()
	f, b, c, bApp, onB, onC, l := lt.f, lt.b, lt.c, lt.bApp, lt.onB, lt.onC, lt.load

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

// loadedTargets is where the target-kill and sigstop scenarios start: two
// targets, b's application a process of its own (to kill or stop) and c's
// in this one, streams held through the VIPA, and a paced load of new
// connections running for a second already.
type loadedTargets struct {
	f        *fleet
	b, c     *node
	bApp     *harness.Process
	streams  []*stream
	onB, onC []*stream
	load     *load
}

// loadedTargets starts them; done ends the streams and c's application.
func (e *env) loadedTargets(ctx context.Context, fc fleetConf) (lt *loadedTargets, done func(), err error) {
	f, err := e.fleet(ctx, fc)
	if err != nil {
		return nil, nil, err
	}
	lt = &loadedTargets{f: f, b: f.targets[0], c: f.targets[1]}
	if lt.bApp, err = e.startAppProcess(ctx, f.appAddr(lt.b), lt.b.name); err != nil {
		return nil, nil, err
	}
	cApp, err := listenApp(f.appAddr(lt.c), lt.c.name)
	if err != nil {
		return nil, nil, err
	}
	if err := f.waitRows(ctx, 10*time.Second); err != nil {
		cApp.close()
		return nil, nil, err
	}
	if lt.streams, err = f.openStreams(e.sz.Streams); err != nil {
		cApp.close()
		return nil, nil, err
	}
	lt.onB, lt.onC = byNode(lt.streams, lt.b.name)
	lt.load = startLoad(f.addr, e.sz.Rate, 2*time.Second)
	time.Sleep(time.Second)
	return lt, func() { endStreams(lt.streams); cApp.close() }, nil
}
