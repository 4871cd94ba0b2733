package listenwatch

import (
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// TestProbeErrorKeepsSnapshot: a probe that neither connects nor is refused
// (here Linux refuses TCP to a broadcast address with ENETUNREACH) says
// nothing about the application, so the scan fails and the last snapshot
// stands.
func TestProbeErrorKeepsSnapshot(t *testing.T) {
	defer goleak.VerifyNone(t)
	app := startProbedApp(t)
	defer app.stop()
	bad := netip.MustParseAddrPort("255.255.255.255:80")
	var broken atomic.Bool
	var scans atomic.Int64
	w, changes, errs := newProbeWatcher()
	w.Probe = func() []netip.AddrPort {
		scans.Add(1)
		if broken.Load() {
			return []netip.AddrPort{app.addr(), bad}
		}
		return []netip.AddrPort{app.addr()}
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if s := receive(t, changes); !maps.Equal(s, Snapshot{app.addr(): 1}) {
		t.Fatalf("got %v", s)
	}
	broken.Store(true)
	if err := receive(t, errs); !strings.Contains(err.Error(), "probing 255.255.255.255:80") {
		t.Fatalf("error %q does not name the address", err)
	}
	// The application goes, but the failing scans change nothing.
	app.stop()
	for n := scans.Load() + 5; scans.Load() < n; {
		time.Sleep(5 * time.Millisecond)
	}
	none(t, changes)
	// Once every probe answers again, the change is seen.
	broken.Store(false)
	if s := receive(t, changes); len(s) != 0 {
		t.Fatalf("got %v", s)
	}
}

// TestProbeSilentIsNotListening: a listener whose accept queue is full drops
// new SYNs; a probe that hears nothing within its timeout counts nothing.
func TestProbeSilentIsNotListening(t *testing.T) {
	defer goleak.VerifyNone(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // never accepts
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue.
	for range 2 {
		c, err := net.DialTimeout("tcp", ap.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		defer c.Close()
	}
	p := &prober{addrs: func() []netip.AddrPort { return []netip.AddrPort{ap} }, timeout: 100 * time.Millisecond}
	s := Snapshot{ap: 1}
	start := time.Now()
	if err := p.scan(s); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if len(s) != 0 {
		t.Fatalf("a silent listener counted: %v", s)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("the probe gave up after %s: it was not silence", d)
	}
}
