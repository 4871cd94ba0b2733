package listenwatch

import (
	"net/netip"
	"testing"
)

func TestSnapshotAddUnmaps(t *testing.T) {
	s := make(Snapshot)
	s.add(netip.MustParseAddrPort("[::ffff:127.0.0.3]:7000"))
	s.add(netip.MustParseAddrPort("127.0.0.3:7000"))
	if len(s) != 1 || s[netip.MustParseAddrPort("127.0.0.3:7000")] != 2 {
		t.Fatalf("got %v", s)
	}
}
