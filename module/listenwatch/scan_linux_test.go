package listenwatch

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// scanMethods are the two ways to read the table; both must agree.
var scanMethods = []struct {
	name string
	scan func(*scanner, Snapshot) error
}{
	{"netlink", (*scanner).scanNetlink},
	{"proc", (*scanner).scanProc},
	{"scan", (*scanner).scan},
}

func listen(t testing.TB, addr string, reusePort bool) net.Listener {
	t.Helper()
	var lc net.ListenConfig
	if reusePort {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func addrPort(ln net.Listener) netip.AddrPort {
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// scanWith scans with one method and a fresh scanner.
func scanWith(t *testing.T, scan func(*scanner, Snapshot) error) Snapshot {
	t.Helper()
	sc, err := newScanner()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.close()
	s := make(Snapshot)
	if err := scan(sc, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func skipWithoutNetlink(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		t.Skipf("no NETLINK_SOCK_DIAG: %v", err)
	}
	unix.Close(fd)
}

func TestScanListener(t *testing.T) {
	skipWithoutNetlink(t)
	for _, m := range scanMethods {
		t.Run(m.name, func(t *testing.T) {
			ln := listen(t, "127.0.0.1:0", false)
			ap := addrPort(ln)
			if got := scanWith(t, m.scan)[ap]; got != 1 {
				t.Fatalf("%v: count %d, want 1", ap, got)
			}
			ln.Close()
			if got := scanWith(t, m.scan)[ap]; got != 0 {
				t.Fatalf("%v after close: count %d, want 0", ap, got)
			}
		})
	}
}

func TestScanReusePort(t *testing.T) {
	skipWithoutNetlink(t)
	for _, m := range scanMethods {
		t.Run(m.name, func(t *testing.T) {
			ln1 := listen(t, "127.0.0.42:0", true)
			ap := addrPort(ln1)
			ln2 := listen(t, ap.String(), true)
			if got := scanWith(t, m.scan)[ap]; got != 2 {
				t.Fatalf("%v: count %d, want 2", ap, got)
			}
			ln2.Close()
			if got := scanWith(t, m.scan)[ap]; got != 1 {
				t.Fatalf("%v after one close: count %d, want 1", ap, got)
			}
		})
	}
}

// TestScanEachAddress: sockets on one port but different addresses are
// counted apart (which of them count for a node is vipa.Counts' rule).
func TestScanEachAddress(t *testing.T) {
	skipWithoutNetlink(t)
	vipa := listen(t, "127.0.0.100:0", true)
	port := addrPort(vipa).Port()
	at := func(a string) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr(a), port) }
	adv := listen(t, at("127.0.0.7").String(), true)
	s := scanWith(t, (*scanner).scan)
	if s[at("127.0.0.7")] != 1 || s[at("127.0.0.100")] != 1 || s[at("127.0.0.8")] != 0 {
		t.Errorf("port %d: %d at the advertise address, %d at the VIPA, %d elsewhere; want 1, 1, 0",
			port, s[at("127.0.0.7")], s[at("127.0.0.100")], s[at("127.0.0.8")])
	}
	adv.Close()
	if got := scanWith(t, (*scanner).scan)[at("127.0.0.7")]; got != 0 {
		t.Errorf("after close: %d, want 0", got)
	}
}

func TestScanIPv6(t *testing.T) {
	skipWithoutNetlink(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind ::1: %v", err)
	}
	defer ln.Close()
	ap := addrPort(ln)
	for _, m := range scanMethods {
		if got := scanWith(t, m.scan)[ap]; got != 1 {
			t.Errorf("%s: %v count %d, want 1", m.name, ap, got)
		}
	}
}

// TestScanV6Only: a listener on [::] with IPV6_V6ONLY accepts no IPv4, so
// it is not counted under 0.0.0.0; a dual-stack one is. /proc does not
// show the flag, so only netlink (and scan, which prefers it) can tell.
func TestScanV6Only(t *testing.T) {
	skipWithoutNetlink(t)
	v6only, err := net.Listen("tcp6", "[::]:0") // Go sets IPV6_V6ONLY for tcp6
	if err != nil {
		t.Skipf("cannot bind [::]: %v", err)
	}
	defer v6only.Close()
	dual, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dual.Close()
	at := func(a string, ln net.Listener) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(a), addrPort(ln).Port())
	}
	for _, m := range scanMethods {
		if m.name == "proc" {
			continue
		}
		s := scanWith(t, m.scan)
		if s[at("::", v6only)] != 1 || s[at("0.0.0.0", v6only)] != 0 {
			t.Errorf("%s: V6ONLY [::]: %d on [::], %d on 0.0.0.0; want 1, 0", m.name, s[at("::", v6only)], s[at("0.0.0.0", v6only)])
		}
		if s[at("::", dual)] != 1 || s[at("0.0.0.0", dual)] != 1 {
			t.Errorf("%s: dual-stack [::]: %d on [::], %d on 0.0.0.0; want 1, 1", m.name, s[at("::", dual)], s[at("0.0.0.0", dual)])
		}
	}
}

// An AF_INET6 socket bound to an IPv4-mapped address serves IPv4 clients and
// must be reported under the IPv4 address.
func TestScanIPv4Mapped(t *testing.T) {
	skipWithoutNetlink(t)
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 sockets: %v", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrInet6{Addr: netip.MustParseAddr("::ffff:127.0.0.43").As16()}
	if err := unix.Bind(fd, sa); err != nil {
		t.Skipf("cannot bind ::ffff:127.0.0.43: %v", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.43"), uint16(got.(*unix.SockaddrInet6).Port))
	for _, m := range scanMethods {
		s := scanWith(t, m.scan)
		if s[ap] != 1 {
			t.Errorf("%s: %v count %d, want 1", m.name, ap, s[ap])
		}
		if n := s[netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), ap.Port())]; n != 0 {
			t.Errorf("%s: mapped address reported", m.name)
		}
	}
}

// The /proc fallback and netlink must see the same sockets. Other processes
// may open listeners meanwhile, so only this test's sockets are compared.
func TestProcAgreesWithNetlink(t *testing.T) {
	skipWithoutNetlink(t)
	var aps []netip.AddrPort
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.44:0", "127.0.0.45:0"} {
		aps = append(aps, addrPort(listen(t, addr, true)))
	}
	listen(t, aps[1].String(), true)
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer ln.Close()
		aps = append(aps, addrPort(ln))
	}
	nl := scanWith(t, (*scanner).scanNetlink)
	proc := scanWith(t, (*scanner).scanProc)
	for _, ap := range aps {
		if nl[ap] == 0 || nl[ap] != proc[ap] {
			t.Errorf("%v: netlink %d, proc %d", ap, nl[ap], proc[ap])
		}
	}
	if nl[aps[1]] != 2 {
		t.Errorf("%v: netlink %d, want 2", aps[1], nl[aps[1]])
	}
}

// A scanner keeps its netlink socket between scans and reopens it after an
// error.
func TestScannerReopens(t *testing.T) {
	skipWithoutNetlink(t)
	ln := listen(t, "127.0.0.1:0", false)
	ap := addrPort(ln)
	sc, err := newScanner()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.close()
	s := make(Snapshot)
	for i := range 3 {
		if err := sc.scan(s); err != nil || s[ap] != 1 {
			t.Fatalf("scan %d: %v, count %d", i, err, s[ap])
		}
		if sc.diag.fd < 0 {
			t.Fatalf("scan %d: netlink socket not kept open", i)
		}
	}
	// Swap in a pipe: the request is written, receiving fails with ENOTSOCK.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(sc.diag.fd)
	sc.diag.fd = p[1]
	if err := sc.scan(s); err != nil || s[ap] != 1 {
		t.Fatalf("scan after failure: %v, count %d", err, s[ap])
	}
	if sc.diag.fd != -1 {
		t.Fatalf("failed netlink socket not dropped")
	}
	if err := sc.scan(s); err != nil || s[ap] != 1 || sc.diag.fd < 0 {
		t.Fatalf("scan after reopen: %v, count %d, fd %d", err, s[ap], sc.diag.fd)
	}
}
