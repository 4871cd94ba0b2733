package serfsync

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// TestPortAccepts: the kernel's word on a port, even with no time left to
// wait (a loopback handshake is over once connect returns).
func TestPortAccepts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	for _, d := range []time.Duration{time.Second, 0} {
		if err := portAccepts(addr, d); err != nil {
			t.Fatalf("a listening port, timeout %v: %v", d, err)
		}
	}
	ln.Close()
	if err := portAccepts(addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a closed port: %v, want ECONNREFUSED", err)
	}
}
