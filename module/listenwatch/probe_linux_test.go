package listenwatch

import (
	"maps"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
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
