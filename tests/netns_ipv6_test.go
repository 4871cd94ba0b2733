//go:build linux

package tests

import (
	"syscall"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// TestLabIPv6Takeover: an IPv6 VIPA with vipa_interface. The owner adds it
// as a /128 (without duplicate address detection, so it answers at once)
// and the client namespace reaches it; after a SIGKILL of the owner the
// first backup adds it and announces it with an unsolicited neighbour
// advertisement: the client's neighbour entry ("ip -6 neigh") moves to the
// backup's MAC without the client sending anything, and new connections
// go through the backup.
func TestLabIPv6Takeover(t *testing.T) {
	f := startTakeoverFleet(t, func(n *netlab.Node) { n.VIPA = netlab.VIPA6 })
	a, b := f.lab.Node("a"), f.lab.Node("b")
	prefix := netlab.HostPrefix(netlab.VIPA6)
	if !a.Holds(prefix) {
		addrs, _ := a.Addrs()
		t.Fatalf("the owner holds %v, want %s among them", addrs, prefix)
	}
	if got := clientNeighOf(t, f.lab, netlab.VIPA6); got != a.MAC {
		t.Fatalf("the client reaches the IPv6 VIPA at %s, want the owner's %s", got, a.MAC)
	}

	f.kill(t, "a", syscall.SIGKILL)
	f.waitStatus(t, map[string]string{"b": "active", "c": "backup"}, "caddy-b")
	active := time.Now()
	// No client traffic here: only b's advertisement can move the entry
	// (a's killed process left the address on a, whose kernel would answer
	// a solicitation as well as b).
	waitFor(t, 3*time.Second, "the client's IPv6 neighbour entry for the VIPA to move to b", func() bool {
		return clientNeighOf(t, f.lab, netlab.VIPA6) == b.MAC
	})
	t.Logf("client's neighbour entry moved to b %s after b showed active", time.Since(active).Round(time.Millisecond))
	if !b.Holds(prefix) {
		t.Fatalf("b is active but does not hold %s", prefix)
	}
	f.waitOwnerOnLAN(t, "b")
	for range 10 {
		if _, err := clientGreetingAt(f.lab, netlab.VIPA6, 5*time.Second); err != nil {
			t.Fatalf("client through the IPv6 VIPA on b: %v", err)
		}
	}
}
