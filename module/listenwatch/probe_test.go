package listenwatch

import (
	"io"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// probedApp is an application that counts the probes it accepts and checks
// that each one leaves at once: it reads EOF, not data, and no timeout.
type probedApp struct {
	ln       net.Listener
	accepted atomic.Int64
	left     atomic.Int64
	wg       sync.WaitGroup
}

func startProbedApp(t *testing.T) *probedApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &probedApp{ln: ln}
	a.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.accepted.Add(1)
			a.wg.Go(func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if n, err := c.Read(make([]byte, 1)); n == 0 && err == io.EOF {
					a.left.Add(1)
				}
			})
		}
	})
	return a
}

func (a *probedApp) addr() netip.AddrPort {
	return a.ln.Addr().(*net.TCPAddr).AddrPort()
}

// stop closes the listener and waits for every connection; it may be
// called more than once.
func (a *probedApp) stop() {
	a.ln.Close()
	a.wg.Wait()
}

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close()
	return ap
}

func newProbeWatcher(addrs ...netip.AddrPort) (*Watcher, chan Snapshot, chan error) {
	changes, errs := make(chan Snapshot, 100), make(chan error, 100)
	w := &Watcher{
		Interval: 10 * time.Millisecond,
		OnChange: func(s Snapshot) { changes <- s },
		OnError:  func(err error) { errs <- err },
		Probe:    func() []netip.AddrPort { return addrs },
	}
	return w, changes, errs
}

func TestProbeFindsListeners(t *testing.T) {
	defer goleak.VerifyNone(t)
	app := startProbedApp(t)
	defer app.stop()
	up, down := app.addr(), closedPort(t)
	w, changes, errs := newProbeWatcher(up, down)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	s := receive(t, changes)
	if !maps.Equal(s, Snapshot{up: 1}) {
		t.Fatalf("snapshot %v, want only %s", s, up)
	}

	// Later scans probe again and, with nothing changed, report nothing.
	for app.accepted.Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	none(t, changes)

	// The application stops listening: its address goes.
	app.stop()
	if s := receive(t, changes); len(s) != 0 {
		t.Fatalf("after the app stopped: %v", s)
	}
	none(t, errs)
	w.Stop()

	// Every probe connected and left without a byte.
	if a, l := app.accepted.Load(), app.left.Load(); a != l {
		t.Fatalf("%d probes accepted, %d left cleanly", a, l)
	}
}

func TestProbeAddressesFollowTheCaller(t *testing.T) {
	defer goleak.VerifyNone(t)
	app := startProbedApp(t)
	defer app.stop()
	var mu sync.Mutex
	var addrs []netip.AddrPort
	w, changes, _ := newProbeWatcher()
	w.Probe = func() []netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		return addrs
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if s := receive(t, changes); len(s) != 0 {
		t.Fatalf("nothing probed, got %v", s)
	}
	mu.Lock()
	addrs = []netip.AddrPort{app.addr()}
	mu.Unlock()
	if s := receive(t, changes); !maps.Equal(s, Snapshot{app.addr(): 1}) {
		t.Fatalf("got %v", s)
	}
}

func TestProbeIntervalDefault(t *testing.T) {
	defer goleak.VerifyNone(t)
	var mu sync.Mutex
	var probes []time.Time
	w := &Watcher{
		OnChange: func(Snapshot) {},
		Probe: func() []netip.AddrPort {
			mu.Lock()
			defer mu.Unlock()
			probes = append(probes, time.Now())
			return nil
		},
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*DefaultProbeInterval + DefaultProbeInterval/2)
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	// Right away, then once a second: three scans in 2.5 s (two if the
	// first was late), not the 25 of the socket table's interval.
	if len(probes) < 2 || len(probes) > 3 {
		t.Fatalf("%d scans in 2.5s, want 3", len(probes))
	}
}
