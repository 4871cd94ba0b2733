package listenwatch

import (
	"net/netip"
	"testing"
)

func TestCount(t *testing.T) {
	ap := netip.MustParseAddrPort
	s := Snapshot{
		ap("0.0.0.0:80"):        1,
		ap("[::]:80"):           2,
		ap("127.0.0.1:80"):      3,
		ap("127.0.0.100:80"):    4, // the VIPA
		ap("127.0.0.2:80"):      5, // another node
		ap("127.0.0.1:81"):      6,
		ap("[::1]:80"):          7,
		ap("[fe80::1]:80"):      8,
		ap("0.0.0.0:443"):       9,
		ap("127.0.0.100:8080"):  10,
		ap("[2001:db8::7]:443"): 11,
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		port uint16
		adv  netip.Addr
		want int
	}{
		{80, a("127.0.0.1"), 1 + 2 + 3},
		{80, a("::ffff:127.0.0.1"), 1 + 2 + 3},
		{80, a("127.0.0.2"), 1 + 2 + 5},
		{80, a("127.0.0.9"), 1 + 2},
		{80, a("::1"), 1 + 2 + 7},
		{80, a("fe80::1%eth0"), 1 + 2 + 8},
		{80, a("0.0.0.0"), 1 + 2},
		{80, a("::"), 1 + 2},
		{80, netip.Addr{}, 1 + 2},
		{81, a("127.0.0.1"), 6},
		{81, a("127.0.0.2"), 0},
		{443, a("2001:db8::7"), 9 + 11},
		{8080, a("127.0.0.1"), 0},
		{9, a("127.0.0.1"), 0},
	} {
		if got := s.Count(tc.port, tc.adv); got != tc.want {
			t.Errorf("Count(%d, %v) = %d, want %d", tc.port, tc.adv, got, tc.want)
		}
	}
	if got := Snapshot(nil).Count(80, a("127.0.0.1")); got != 0 {
		t.Errorf("nil Snapshot: Count = %d", got)
	}
}

func TestSnapshotAddUnmaps(t *testing.T) {
	s := make(Snapshot)
	s.add(netip.MustParseAddrPort("[::ffff:127.0.0.3]:7000"))
	s.add(netip.MustParseAddrPort("127.0.0.3:7000"))
	if len(s) != 1 || s[netip.MustParseAddrPort("127.0.0.3:7000")] != 2 {
		t.Fatalf("got %v", s)
	}
}
