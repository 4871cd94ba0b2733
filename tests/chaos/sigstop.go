//go:build linux

package main

import (
	"context"
	"syscall"
	"time"
)

// sigstop stops (SIGSTOP) a whole target, its Caddy and its application,
// under streams and a steady rate of short connections, in the fast gossip
// profile. The fleet must declare it failed and drop its row; from then
// on every new connection goes to the other target; the other target's
// streams are untouched. After SIGCONT the stopped target's row comes
// back and its held connections carry on.
func sigstop(ctx context.Context, e *env, r *result) error {
	lt, done, err := e.loadedTargets(ctx, fleetConf{targets: 2, profile: "fast"})
	if err != nil {
		return err
	}
	defer done()
	f, b, c, bApp, streams, onB, onC, l := lt.f, lt.b, lt.c, lt.bApp, lt.streams, lt.onB, lt.onC, lt.load

	stopped := time.Now()
	_ = b.proc.Signal(syscall.SIGSTOP)
	_ = bApp.Signal(syscall.SIGSTOP)
	rowErr := waitRow(ctx, f.a, f.port, b.name, false, 15*time.Second)
	gone := time.Now()
	r.figure("row of %s gone %v after SIGSTOP (fast profile)", b.name, gone.Sub(stopped).Round(time.Millisecond))
	if rowErr != nil {
		r.fail("%v", rowErr)
	}
	time.Sleep(2 * time.Second)
	cont := time.Now()
	_ = bApp.Signal(syscall.SIGCONT)
	_ = b.proc.Signal(syscall.SIGCONT)
	backErr := waitRow(ctx, f.a, f.port, b.name, true, 15*time.Second)
	r.figure("row of %s back %v after SIGCONT", b.name, time.Since(cont).Round(time.Millisecond))
	if backErr != nil {
		r.fail("%v", backErr)
	}
	time.Sleep(time.Second)
	l.end()

	served, failed := l.total()
	late := l.failsAfter(gone.Add(200 * time.Millisecond))
	r.figure("%d conn/s: %d served, %d failed while %s was stopped and still in the DPT, %d after its row went (the first: %s)",
		e.sz.Rate, served, failed-late, b.name, late, l.firstFail())
	r.check(late == 0, "%d short connections failed after the stopped target's row went", late)
	resumed := 0
	for _, s := range onB {
		if s.lastMoved.Load() > cont.UnixNano() {
			resumed++
		}
	}
	r.figure("%d of %d streams held on %s moved again after SIGCONT", resumed, len(onB), b.name)
	r.check(resumed == len(onB), "%d of %d streams of the stopped target resumed", resumed, len(onB))
	intact := 0
	for _, s := range onC {
		if !s.ended() && s.lastMoved.Load() > cont.UnixNano() {
			intact++
		}
	}
	r.figure("%d of %d streams on %s intact", intact, len(onC), c.name)
	r.check(intact == len(onC), "%d of %d streams on %s intact", intact, len(onC), c.name)
	var firstErr error
	clean := 0
	for _, s := range streams {
		if err := s.end(); err != nil {
			firstErr = err
			continue
		}
		clean++
	}
	r.check(clean == len(streams), "%d of %d streams ended cleanly (%v)", clean, len(streams), firstErr)
	if k, err := waitCRT(ctx, f.a, 0, 5*time.Second); err != nil {
		r.fail("CRT has %d rows after every client closed", k)
	}
	return nil
}
