//go:build linux

package tests

import (
	"fmt"
	"testing"
	"time"
)

// TestV6OnlyListener: an application on [::] with IPV6_V6ONLY accepts no
// IPv4, so it is no target of an IPv4 advertise address: its port gets no
// DPT row, and IPv4 clients are not sent to a socket that refuses them. A
// dual-stack one on [::] is a target. The second VIPA's row is the sign
// that a scan has seen the V6ONLY socket: both were listening before it.
func TestV6OnlyListener(t *testing.T) {
	f := ipv4
	ips := []string{"127.0.0.1", "127.0.0.100", "127.0.0.101", "[::]"}
	port, port2, gossip := freePortOn(t, ips...), freePortOn(t, ips...), freePortOn(t, ips...)
	admin := adminAddr(t)
	startCaddy(t, admin, singleNodeConfig(f, admin, gossip, port,
		fmt.Sprintf("vipadistribute define %s port %d destip all", f.vipa2, port2)))

	rowOn := func(vipa string, port int) (dptRow, bool) {
		for _, r := range dpt(t, admin) {
			if r.VIPA == vipa && r.Port == port {
				return r, true
			}
		}
		return dptRow{}, false
	}
	v6only := startApp(t, "v6only", reusePortListenNet(t, "tcp6", hostPort("::", port))) // Go sets IPV6_V6ONLY for tcp6
	startApp(t, "witness", reusePortListen(t, hostPort(f.advertise, port2)))
	waitFor(t, 10*time.Second, "the second VIPA's row", func() bool {
		_, ok := rowOn(f.vipa2, port2)
		return ok
	})
	for range 10 { // several scans at 50 ms
		if r, ok := rowOn(f.vipa, port); ok {
			t.Fatalf("a V6ONLY listener on [::]:%d made a row for IPv4 advertise %s: %+v", port, f.advertise, r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	refused(t, hostPort(f.vipa, port))
	v6only.stop()

	// Dual-stack, the same socket serves IPv4 clients.
	startApp(t, "dual", reusePortListen(t, hostPort("::", port)))
	waitFor(t, 10*time.Second, "the dual-stack listener's row", func() bool {
		r, ok := rowOn(f.vipa, port)
		return ok && r.Ready == 1 && r.Address == hostPort(f.advertise, port)
	})
	c, r, name := dialVIPA(t, hostPort(f.vipa, port))
	if name != "dual" {
		t.Fatalf("served by %q", name)
	}
	echo(t, c, r, "ping")
	c.Close()
}
