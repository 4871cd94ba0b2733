//go:build linux

package tests

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// TestIPv4GossipIPv6VIPA: the fleet gossips and advertises over IPv4
// (127.0.0.x) and distributes IPv6 VIPAs (addresses the test adds to lo),
// one through a layer4 server, one with port all. The definitions reach
// every node, the targets' IPv4 listeners become rows, and IPv6 clients
// of the VIPAs are routed to them.
func TestIPv4GossipIPv6VIPA(t *testing.T) {
	n := fmt.Sprintf("fd00:79:%x::", 1+rand.IntN(0xfff0))
	vip, vipAll := n+"100", n+"101"
	addLoopback6(t, vip, vipAll)
	ips := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "[" + vip + "]", "[" + vipAll + "]"}
	port, gossip := freePortOn(t, ips...), freePortOn(t, ips...)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)

	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = fmt.Sprintf(`		vipadistribute define %s port %d destip all
		vipadistribute define %s port all destip all
	}
	layer4 {
		[%s]:%d {
			route {
				distribute
			}
		}
	}`, vip, port, vipAll, vip, port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	c := newFleetNode(t, "caddy-c", "127.0.0.3", gossip, seed)
	nodes := []fleetNode{a, b, c}
	for _, n := range nodes {
		startCaddy(t, n.admin, n.caddyfile())
	}
	waitFor(t, 30*time.Second, "three alive members", func() bool {
		m := members(t, a.admin)
		return m["caddy-a"] == "alive" && m["caddy-b"] == "alive" && m["caddy-c"] == "alive"
	})
	for _, n := range nodes {
		waitFor(t, 15*time.Second, n.name+" to learn the IPv6 definitions", func() bool {
			var defs []definitionRow
			getJSON(t, n.admin, "/vipa/definitions", &defs)
			got := map[string]bool{}
			for _, d := range defs {
				got[d.VIPA] = d.RoutingNode == "caddy-a" && d.Conflict == ""
			}
			return len(defs) == 2 && got[vip] && got[vipAll]
		})
	}

	for _, n := range nodes {
		startApp(t, n.name, reusePortListen(t, hostPort(n.ip, port)))
	}
	waitFor(t, 15*time.Second, "three DPT rows at the IPv4 advertise addresses", func() bool {
		var rows []dptRow
		for _, r := range dpt(t, a.admin) {
			if r.VIPA == vip {
				rows = append(rows, r)
			}
		}
		if len(rows) != 3 {
			return false
		}
		for _, r := range rows {
			want := map[string]string{"caddy-a": "127.0.0.1", "caddy-b": "127.0.0.2", "caddy-c": "127.0.0.3"}[r.Node]
			if r.VIPA != vip || r.Port != port || r.Address != hostPort(want, port) || r.Ready != 1 {
				return false
			}
		}
		return true
	})

	// Round robin: nine IPv6 clients, three on each IPv4 target.
	served := map[string]int{}
	va := net.JoinHostPort(vip, fmt.Sprint(port))
	for range 9 {
		conn, r, name := dialVIPA(t, va)
		echo(t, conn, r, "v4 target, v6 VIPA")
		served[name]++
		conn.Close()
	}
	if served["caddy-a"] != 3 || served["caddy-b"] != 3 || served["caddy-c"] != 3 {
		t.Fatalf("9 connections spread %v, want 3 each", served)
	}

	// port all: an application on caddy-b's IPv4 address, on a port no
	// config names, is reached through the IPv6 VIPA.
	q := freePortOn(t, ips...)
	startApp(t, "caddy-b-all", reusePortListen(t, hostPort(b.ip, q)))
	vq := net.JoinHostPort(vipAll, fmt.Sprint(q))
	waitFor(t, 15*time.Second, "the port all VIPA to accept", func() bool { return !dialRefused(vq) })
	conn, r, name := dialVIPA(t, vq)
	if name != "caddy-b-all" {
		t.Fatalf("port all: served by %q", name)
	}
	echo(t, conn, r, "port all")
	conn.Close()
	waitFor(t, 10*time.Second, "an empty CRT", func() bool { return len(crt(t, a.admin, "")) == 0 })
}
