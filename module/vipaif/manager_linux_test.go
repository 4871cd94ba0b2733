//go:build linux

package vipaif

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewUnknownInterface(t *testing.T) {
	_, err := New("no-such-if0")
	if err == nil || !strings.Contains(err.Error(), "vipa_interface no-such-if0") {
		t.Fatalf("New of a missing interface: %v", err)
	}
}

func TestOwnRejectsNonVIPA(t *testing.T) {
	m := &Manager{name: "x", owned: map[netip.Addr]*announcer{}, added: map[netip.Addr]bool{}}
	for _, s := range []string{"0.0.0.0", "::", "224.0.0.1", "::1"} {
		if err := m.Own(netip.MustParseAddr(s)); err == nil || !strings.Contains(err.Error(), "not a VIPA") {
			t.Errorf("Own(%s): %v", s, err)
		}
	}
	if err := m.Own(netip.Addr{}); err == nil {
		t.Error("Own of the zero address succeeded")
	}
}

// TestOwnReleaseIPv4: the VIPA appears as a /32, answers connections, the
// client's neighbour entry moves to this node's MAC at once, and Release
// removes it; both are idempotent.
func TestOwnReleaseIPv4(t *testing.T) {
	l := newLink(t)
	vipa := netip.MustParseAddr("192.0.2.100")
	l.staleNeigh(t, vipa.String())

	m := l.manager(t)
	var err error

	start := time.Now()
	l.do(t, func() error { return m.Own(vipa) })
	if !l.has(t, "192.0.2.100/32") {
		t.Fatalf("after Own the interface holds %v", l.addrs(t))
	}
	waitUntil(t, 5*time.Second, "the client's entry for the VIPA to take the node's MAC", func() bool {
		return l.neigh(t, vipa.String()) == l.nodeMAC
	})
	t.Logf("client's neighbour entry moved %s after Own began", time.Since(start).Round(time.Millisecond))

	// The address is the node's: a server on it answers the client.
	var ln net.Listener
	in(t, l.node, func() { ln, err = net.Listen("tcp", "192.0.2.100:0") })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := dialFromClient(t, l, ln.Addr().String())
	if err != nil {
		t.Fatalf("client cannot reach the owned VIPA: %v", err)
	}
	c.Close()

	in(t, l.node, func() { err = m.Own(vipa) })
	if err != nil {
		t.Fatalf("second Own: %v", err)
	}
	if got := m.Owned(); len(got) != 1 || got[0] != vipa {
		t.Fatalf("Owned() = %v", got)
	}
	in(t, l.node, func() {
		cur, ferr := findAddr(mustIndex(t, l.nodeIf), vipa)
		if ferr != nil || !cur.present || cur.proto != Proto {
			t.Errorf("kernel entry %+v (%v), want marked with proto %#x", cur, ferr, Proto)
		}
	})

	for range 2 {
		in(t, l.node, func() { err = m.Release(vipa) })
		if err != nil {
			t.Fatalf("Release: %v", err)
		}
		if l.has(t, "192.0.2.100/32") {
			t.Fatalf("after Release the interface still holds %v", l.addrs(t))
		}
	}
	if !l.has(t, "192.0.2.1/24") {
		t.Fatalf("Release took the interface's own address: %v", l.addrs(t))
	}
	if got := m.Owned(); len(got) != 0 {
		t.Fatalf("Owned() after Release = %v", got)
	}
}

func mustIndex(t *testing.T, name string) int {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Error(err)
		return 0
	}
	return ifi.Index
}

// TestOwnReleaseIPv6: a /128 without duplicate address detection, an
// unsolicited neighbour advertisement that overrides the client's entry.
func TestOwnReleaseIPv6(t *testing.T) {
	l := newLink(t)
	vipa := netip.MustParseAddr("2001:db8::100")
	for _, s := range [][]string{
		{"-n", l.node, "addr", "add", "2001:db8::1/64", "dev", l.nodeIf, "nodad"},
		{"-n", l.client, "addr", "add", "2001:db8::2/64", "dev", l.clientIf, "nodad"},
	} {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	l.staleNeigh(t, vipa.String())

	m := l.manager(t)
	var err error
	l.do(t, func() error { return m.Own(vipa) })
	if !l.has(t, "2001:db8::100/128") {
		t.Fatalf("after Own the interface holds %v", l.addrs(t))
	}
	waitUntil(t, 5*time.Second, "the client's entry for the VIPA to take the node's MAC", func() bool {
		return l.neigh(t, vipa.String()) == l.nodeMAC
	})
	var ln net.Listener
	in(t, l.node, func() { ln, err = net.Listen("tcp", "[2001:db8::100]:0") })
	if err != nil {
		t.Fatalf("listen on the owned VIPA (still tentative?): %v", err)
	}
	defer ln.Close()
	c, err := dialFromClient(t, l, ln.Addr().String())
	if err != nil {
		t.Fatalf("client cannot reach the owned VIPA: %v", err)
	}
	c.Close()

	l.do(t, func() error { return m.Release(vipa) })
	if l.has(t, "2001:db8::100/128") {
		t.Fatalf("after Release the interface still holds %v", l.addrs(t))
	}
}

// TestUserAddressStays: a VIPA the user put on the interface is announced
// when owned but never removed.
func TestUserAddressStays(t *testing.T) {
	l := newLink(t)
	if err := ipCmd("-n", l.node, "addr", "add", "192.0.2.200/32", "dev", l.nodeIf); err != nil {
		t.Fatal(err)
	}
	vipa := netip.MustParseAddr("192.0.2.200")
	l.staleNeigh(t, vipa.String())
	m := l.manager(t)
	var err error
	l.do(t, func() error { return m.Own(vipa) })
	waitUntil(t, 5*time.Second, "the announcement of the user's VIPA", func() bool {
		return l.neigh(t, vipa.String()) == l.nodeMAC
	})
	l.do(t, func() error { return m.Release(vipa) })
	in(t, l.node, func() { err = m.Close() })
	if err != nil {
		t.Fatal(err)
	}
	if !l.has(t, "192.0.2.200/32") {
		t.Fatalf("the user's address went: %v", l.addrs(t))
	}
}

// TestLeftoverOfAKilledProcess: a new manager (a restarted node) removes
// an address an earlier one added and never released, by its mark.
func TestLeftoverOfAKilledProcess(t *testing.T) {
	l := newLink(t)
	vipa := netip.MustParseAddr("192.0.2.101")
	var err error
	in(t, l.node, func() {
		var old *Manager
		if old, err = New(l.nodeIf); err == nil {
			err = old.Own(vipa)
			old.owned[vipa].halt() // the process dies: no Release, no Close
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !l.has(t, "192.0.2.101/32") {
		t.Fatal("Own added nothing")
	}
	in(t, l.node, func() {
		var m *Manager
		if m, err = New(l.nodeIf); err == nil {
			err = m.Release(vipa)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.has(t, "192.0.2.101/32") {
		t.Fatalf("the leftover stayed: %v", l.addrs(t))
	}
}

// TestAnnouncementsRepeat: a client-side listener sees Announcements
// gratuitous ARPs for the VIPA, and Close removes what was owned.
func TestAnnouncementsRepeat(t *testing.T) {
	l := newLink(t)
	vipa := netip.MustParseAddr("192.0.2.102")
	seen := watchGARPs(t, l, vipa)
	m := l.manager(t)
	l.do(t, func() error { return m.Own(vipa) })
	var times []time.Time
	timeout := time.After(Announcements*Interval + 10*time.Second)
	for len(times) < Announcements {
		select {
		case at := <-seen:
			times = append(times, at)
		case <-timeout:
			t.Fatalf("saw %d gratuitous ARPs, want %d", len(times), Announcements)
		}
	}
	t.Logf("%d gratuitous ARPs over %s", len(times), times[len(times)-1].Sub(times[0]).Round(time.Millisecond))
	l.do(t, m.Close)
	if l.has(t, "192.0.2.102/32") {
		t.Fatalf("Close left %v", l.addrs(t))
	}
}

// TestQuietStopsAnnouncements: after Quiet the repeats stop and the
// address stays (a hand-over keeps it until the successor claims); Own
// announces again.
func TestQuietStopsAnnouncements(t *testing.T) {
	l := newLink(t)
	vipa := netip.MustParseAddr("192.0.2.103")
	seen := watchGARPs(t, l, vipa)
	m := l.manager(t)
	l.do(t, func() error { return m.Own(vipa) })
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no gratuitous ARP after Own")
	}
	in(t, l.node, func() { m.Quiet(vipa) })
	quietAt := time.Now()
	// A repeat already under way as Quiet ran may still arrive; none after.
	late := 0
	for end := time.After(Announcements*Interval + time.Second); ; {
		select {
		case at := <-seen:
			if at.Sub(quietAt) > 100*time.Millisecond {
				late++
			}
			continue
		case <-end:
		}
		break
	}
	if late > 0 {
		t.Fatalf("%d gratuitous ARPs after Quiet", late)
	}
	if !l.has(t, "192.0.2.103/32") {
		t.Fatalf("Quiet removed the address: %v", l.addrs(t))
	}
	l.do(t, func() error { return m.Own(vipa) })
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no gratuitous ARP after Own following Quiet")
	}
	l.do(t, m.Close)
}

// watchGARPs listens in the client's namespace for the node's gratuitous
// ARPs for vipa and sends the time each is seen; the listener closes when
// the test ends.
func watchGARPs(t *testing.T, l *link, vipa netip.Addr) <-chan time.Time {
	t.Helper()
	var c *arp.Client
	var err error
	in(t, l.client, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(l.clientIf); err == nil {
			c, err = arp.Dial(ifi)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan time.Time, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p, _, err := c.Read()
			if err != nil {
				return
			}
			if p.Operation == arp.OperationRequest && p.SenderIP == vipa && p.TargetIP == vipa && p.SenderHardwareAddr.String() == l.nodeMAC {
				select {
				case seen <- time.Now():
				default: // more than the test reads: it has what it needs
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return seen
}
