//go:build linux

package tests

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"testing"
	"time"
)

// addLoopback6 adds IPv6 addresses of the test's own to lo and removes them
// at the end.
func addLoopback6(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := exec.Command("ip", "-6", "addr", "add", a+"/128", "dev", "lo", "nodad").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", a, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "-6", "addr", "del", a+"/128", "dev", "lo").Run() })
	}
}

// TestIPv6Fleet: an IPv6 VIPA, IPv6 targets and IPv6 gossip (addresses
// the test adds to lo), a port list through a layer4 server and port all,
// on three nodes.
func TestIPv6Fleet(t *testing.T) {
	n := fmt.Sprintf("fd00:77:%x::", 1+rand.IntN(0xfff0))
	ipA, ipB, ipC, vip, vipAll := n+"1", n+"2", n+"3", n+"100", n+"101"
	addLoopback6(t, ipA, ipB, ipC, vip, vipAll)
	all := []string{"[" + ipA + "]", "[" + ipB + "]", "[" + ipC + "]", "[" + vip + "]", "[" + vipAll + "]"}
	port, adminA, adminB, gossipA, gossipB := freePortOn(t, all...), freePortOn(t, all...), freePortOn(t, all...), freePortOn(t, all...), freePortOn(t, all...)
	adminC, gossipC := freePortOn(t, all...), freePortOn(t, all...)
	routes := fmt.Sprintf(`vipadistribute define %s port %d destip all
		vipadistribute define %s port all destip all
	}
	layer4 {
		[%s]:%d {
			route {
				distribute
			}
		}`, vip, port, vipAll, vip, port)
	startCaddy(t, fmt.Sprintf("[%s]:%d", ipA, adminA), portAllNode("caddy-a", ipA, adminA, gossipA, "", routes))
	startCaddy(t, fmt.Sprintf("[%s]:%d", ipB, adminB), portAllNode("caddy-b", ipB, adminB, gossipB, fmt.Sprintf("[%s]:%d", ipA, gossipA), ""))
	startCaddy(t, fmt.Sprintf("[%s]:%d", ipC, adminC), portAllNode("caddy-c", ipC, adminC, gossipC, fmt.Sprintf("[%s]:%d", ipA, gossipA), ""))
	admin := fmt.Sprintf("[%s]:%d", ipA, adminA)
	waitFor(t, 15*time.Second, "three alive members", func() bool {
		m := members(t, admin)
		return m["caddy-a"] == "alive" && m["caddy-b"] == "alive" && m["caddy-c"] == "alive"
	})

	startApp(t, "app-a", reusePortListen(t, fmt.Sprintf("[%s]:%d", ipA, port)))
	startApp(t, "app-b", reusePortListen(t, fmt.Sprintf("[%s]:%d", ipB, port)))
	startApp(t, "app-c", reusePortListen(t, fmt.Sprintf("[%s]:%d", ipC, port)))
	waitFor(t, 10*time.Second, "three DPT rows", func() bool {
		k := 0
		for _, r := range dpt(t, admin) {
			if r.VIPA == vip && r.Port == port {
				k++
			}
		}
		return k == 3
	})
	served := map[string]int{}
	va := net.JoinHostPort(vip, fmt.Sprint(port))
	for range 9 {
		c, _, name := dialVIPA(t, va)
		served[name]++
		c.Close()
	}
	if served["app-a"] != 3 || served["app-b"] != 3 || served["app-c"] != 3 {
		t.Fatalf("9 connections spread %v, want 3 each", served)
	}

	// port all on an IPv6 VIPA.
	q := freePortOn(t, all...)
	startApp(t, "app-b-all", reusePortListen(t, fmt.Sprintf("[%s]:%d", ipB, q)))
	vq := net.JoinHostPort(vipAll, fmt.Sprint(q))
	waitFor(t, 10*time.Second, "the port all VIPA to accept", func() bool { return !dialRefused(vq) })
	c, r, name := dialVIPA(t, vq)
	if name != "app-b-all" {
		t.Fatalf("served by %q", name)
	}
	echo(t, c, r, "v6")
}
