//go:build linux

package main

import (
	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"

	"context"
	"fmt"
	"net"
	"syscall"
	"time"
)

// blackholeDial is the routing node's dial_timeout in the blackhole
// scenario: what a connection pays when its first candidate drops SYNs.
const blackholeDial = time.Second

// blackhole makes one target drop SYNs: its application listens with a
// full accept queue, so the kernel keeps it in the socket table (its DPT
// row stays ready) but drops every new SYN. Each connection the routing
// node sends there must time out after dial_timeout and go to the other
// target: every client served, none waiting much past the dial timeout.
func blackhole(ctx context.Context, e *env, r *result) error {
	f, before, closeApps, err := e.holedFleet(ctx, 2)
	if err != nil {
		return err
	}
	defer closeApps()
	b, c := f.targets[0], f.targets[1]
	k := e.sz.Streams
	var lat []time.Duration
	served := 0
	var firstErr error
	for range k {
		t0 := time.Now()
		name, err := short(f.addr, blackholeDial+3*time.Second)
		if err != nil {
			firstErr = err
			continue
		}
		lat = append(lat, time.Since(t0))
		if name == c.name {
			served++
		}
	}
	after, err := f.a.metrics()
	if err != nil {
		return err
	}
	dialFails := after["caddy_vipa_dial_failures_total"] - before["caddy_vipa_dial_failures_total"]
	r.figure("dial_timeout %v: %d of %d connections served by %s, p50 %v, max %v; %.0f dials timed out",
		blackholeDial, served, k, c.name, percentile(lat, 0.5).Round(time.Millisecond), percentile(lat, 1).Round(time.Millisecond), dialFails)
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
	r.check(served == k, "%d of %d served by %s (first error: %v)", served, k, c.name, firstErr)
	r.check(percentile(lat, 1) < blackholeDial+time.Second, "slowest connection %v, dial_timeout %v", percentile(lat, 1), blackholeDial)
	r.check(dialFails > 0, "no dial failed: the blackhole was never tried")
	if k, err := waitCRT(ctx, f.a, 0, 5*time.Second); err != nil {
		r.fail("CRT has %d rows after every client closed", k)
	}
	return nil
}

// holedFleet starts a fleet of targets for the dial-timeout scenarios: the
// first target's application drops SYNs (fullListener), the others serve.
// It returns once the routing node has their rows, with its metrics then
// and a close for the applications.
func (e *env) holedFleet(ctx context.Context, targets int) (f *fleet, before map[string]float64, closeApps func(), err error) {
	f, err = e.fleet(ctx, fleetConf{targets: targets, dial: blackholeDial.String()})
	if err != nil {
		return nil, nil, nil, err
	}
	var closers []func()
	closeApps = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeApps()
		}
	}()
	hole, err := fullListener(f.appAddr(f.targets[0]))
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, hole.close)
	for _, t := range f.targets[1:] {
		app, err := listenApp(f.appAddr(t), t.name)
		if err != nil {
			return nil, nil, nil, err
		}
		closers = append(closers, app.close)
	}
	if err := f.waitRows(ctx, 10*time.Second); err != nil {
		return nil, nil, nil, err
	}
	if before, err = f.a.metrics(); err != nil {
		return nil, nil, nil, err
	}
	return f, before, closeApps, nil
}

// holeListener is a listening socket whose accept queue is full: the
// kernel drops SYNs to it.
type holeListener struct {
	fd    int
	conns []net.Conn
}

// fullListener listens on addr with a backlog of 0, never accepts, and
// fills its queue; a probe dial proves SYNs are dropped.
func fullListener(addr string) (*holeListener, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	h := &holeListener{fd: fd}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	if err := syscall.Bind(fd, sa); err != nil {
		h.close()
		return nil, fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		h.close()
		return nil, err
	}
	for range 4 {
		c, err := net.DialTimeout("tcp4", addr, 200*time.Millisecond)
		if err != nil {
			return h, nil // queue full: SYNs are dropped
		}
		h.conns = append(h.conns, c)
	}
	h.close()
	return nil, fmt.Errorf("listener on %s with a full queue still completes handshakes", addr)
}

func (h *holeListener) close() {
	closeAll(h.conns)
	syscall.Close(h.fd)
}
