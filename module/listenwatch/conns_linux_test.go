package listenwatch

import (
	"maps"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// connScanMethods read established connections the ways a scanner can.
var connScanMethods = []struct {
	name string
	scan func(*scanner, table) error
}{
	{"netlink", (*scanner).scanNetlinkTable},
	{"proc", (*scanner).scanProcTable},
	{"scan", (*scanner).scanTable},
}

func scanConnsWith(t *testing.T, scan func(*scanner, table) error) Conns {
	t.Helper()
	sc, err := newScanner()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.close()
	c := make(Conns)
	if err := scan(sc, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// dialFrom opens n connections from the address from to ln and keeps both
// ends open until the test ends.
func dialFrom(t *testing.T, ln net.Listener, from string, n int) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	for range n {
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}
}

// A target counts the connections dialed to its address on a port from the
// routing node's address, and only those: not the ones from another peer,
// not the client ends, not those to another local address.
func TestScanConns(t *testing.T) {
	skipWithoutNetlink(t)
	a := netip.MustParseAddr
	ln := listen(t, "127.0.0.51:0", false)
	port := addrPort(ln).Port()
	dialFrom(t, ln, "127.0.0.52", 3) // the routing node
	dialFrom(t, ln, "127.0.0.53", 2) // a client dialing the target directly
	other := listen(t, "127.0.0.54:0", false)
	dialFrom(t, other, "127.0.0.52", 1)
	for _, m := range connScanMethods {
		t.Run(m.name, func(t *testing.T) {
			c := scanConnsWith(t, m.scan)
			for _, tc := range []struct {
				local, remote string
				want          int
			}{
				{"127.0.0.51", "127.0.0.52", 3},
				{"127.0.0.51", "127.0.0.53", 2},
				{"127.0.0.51", "127.0.0.54", 0},
				{"127.0.0.54", "127.0.0.52", 0}, // another port
				{"::ffff:127.0.0.51", "127.0.0.52", 3},
			} {
				if got := c.Count(port, a(tc.local), a(tc.remote)); got != tc.want {
					t.Errorf("%s from %s: %d, want %d", tc.local, tc.remote, got, tc.want)
				}
			}
			// The dialing ends are established too, under their own ports.
			for k, n := range c {
				if k.Local.Addr() == a("127.0.0.52") && k.Remote == a("127.0.0.51") && n > 0 && k.Local.Port() == port {
					t.Errorf("client end counted on the target's port: %v", k)
				}
			}
		})
	}
	ln.Close()
	other.Close()
}

func TestScanConnsIPv6(t *testing.T) {
	skipWithoutNetlink(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind ::1: %v", err)
	}
	defer ln.Close()
	dialFrom(t, ln, "::1", 2)
	port := addrPort(ln).Port()
	for _, m := range connScanMethods {
		c := scanConnsWith(t, m.scan)
		if got := c.Count(port, netip.IPv6Loopback(), netip.IPv6Loopback()); got != 2 {
			t.Errorf("%s: ::1 port %d: %d, want 2", m.name, port, got)
		}
	}
}

// A dual-stack listener on :: reached over IPv4 holds connections whose
// addresses the kernel reports as IPv4-mapped: they count under IPv4.
func TestScanConnsMapped(t *testing.T) {
	skipWithoutNetlink(t)
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("cannot bind [::]: %v", err)
	}
	defer ln.Close()
	port := addrPort(ln).Port()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.56")}}
	c, err := d.Dial("tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.55"), port).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, m := range connScanMethods {
		conns := scanConnsWith(t, m.scan)
		if got := conns.Count(port, netip.MustParseAddr("127.0.0.55"), netip.MustParseAddr("127.0.0.56")); got != 1 {
			t.Errorf("%s: mapped connection: %d, want 1", m.name, got)
		}
	}
}

func TestParseDiagConns(t *testing.T) {
	ap := netip.MustParseAddrPort
	conn := func(family uint8, local, remote netip.AddrPort) []byte {
		b := diagMsg(family, tcpEstablished, local)
		putRemote(b, remote)
		return nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, b)
	}
	in := concat(
		conn(unix.AF_INET, ap("127.0.0.1:8080"), ap("127.0.0.2:40000")),
		conn(unix.AF_INET, ap("127.0.0.1:8080"), ap("127.0.0.2:40001")),
		conn(unix.AF_INET6, ap("[::1]:8080"), ap("[::2]:40000")),
		conn(unix.AF_INET6, ap("[::ffff:127.0.0.1]:8080"), ap("[::ffff:127.0.0.2]:40002")),
		nlMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagMsg(unix.AF_INET, tcpListen, ap("127.0.0.1:8080"))),
	)
	c := make(Conns)
	if _, err := parseDiag(in, 1, c); err != nil {
		t.Fatal(err)
	}
	want := Conns{
		{ap("127.0.0.1:8080"), netip.MustParseAddr("127.0.0.2")}: 3,
		{ap("[::1]:8080"), netip.MustParseAddr("::2")}:           1,
	}
	if !maps.Equal(c, want) {
		t.Errorf("got %v, want %v", c, want)
	}
}

// putRemote writes the destination of an inet_diag_msg's socket id.
func putRemote(b []byte, ap netip.AddrPort) {
	b[6], b[7] = byte(ap.Port()>>8), byte(ap.Port())
	copy(b[24:], ap.Addr().AsSlice())
}

func TestPutDiagRequestEstablished(t *testing.T) {
	var req [diagRequestLen]byte
	putDiagRequest(&req, unix.AF_INET, tcpEstablished, 3)
	if got := req[nlmsgHdrLen+4]; got != 1<<tcpEstablished {
		t.Errorf("idiag_states %#x, want %#x", got, 1<<tcpEstablished)
	}
}
