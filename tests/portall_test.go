//go:build linux

package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// portAllNet is a /24 of loopback addresses of this test's own, so the
// listeners other processes open on 127.0.0.1 are not its applications.
func portAllNet() string { return fmt.Sprintf("127.77.%d", 1+rand.IntN(250)) }

// freePortOn returns a TCP port free on every one of ips.
func freePortOn(t *testing.T, ips ...string) int {
	t.Helper()
	for range 100 {
		if port := 20000 + rand.IntN(40000); tcpFreeOn(port, ips...) {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// portAllNode is a Caddyfile for one node of a port all fleet: its admin
// endpoint and gossip on its own address, where the listener watch looks
// for applications.
func portAllNode(name, ip string, admin, gossip int, join, routes string) string {
	j := ""
	if join != "" {
		j = "\n\t\t\tjoin " + join
	}
	host := ip
	if strings.Contains(ip, ":") { // not loopback: gossip needs a key
		host = "[" + ip + "]"
		j += "\n\t\t\tencrypt_key " + fleetKey
	}
	return fmt.Sprintf(`{
	admin %[1]s:%[2]d {
		origins %[1]s:%[2]d
	}
	vipadynamic {
		node %[3]s
		advertise %[7]s
		gossip %[1]s:%[4]d {
			profile fast%[5]s
		}
		listeners auto {
			interval 50ms
		}
		%[6]s
	}
}
`, host, admin, name, gossip, j, routes, ip)
}

// dialRefused reports whether nothing listens at addr.
func dialRefused(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestPortAll: a VIPA with port all and no layer4 server. An application
// starting on a port no config names is reached through VIPA:that port; a
// second target on the same port shares the connections; when the last
// stops, new connections are refused while an open one goes on. Excluded
// ports, and the nodes' gossip and admin ports (listening on the addresses
// the listener watch reads), never open on the VIPA.
func TestPortAll(t *testing.T) {
	n := portAllNet()
	ipA, ipB, vip := n+".1", n+".2", n+".100"
	ips := []string{ipA, ipB, vip}
	adminA, adminB := freePortOn(t, ips...), freePortOn(t, ips...)
	gossipA, gossipB := freePortOn(t, ips...), freePortOn(t, ips...)
	excluded := freePortOn(t, ips...)
	routes := fmt.Sprintf(`vipadistribute define %s port all destip all {
			exclude %d
		}`, vip, excluded)
	startCaddy(t, fmt.Sprintf("%s:%d", ipA, adminA), portAllNode("caddy-a", ipA, adminA, gossipA, "", routes))
	startCaddy(t, fmt.Sprintf("%s:%d", ipB, adminB), portAllNode("caddy-b", ipB, adminB, gossipB, fmt.Sprintf("%s:%d", ipA, gossipA), ""))
	admin := fmt.Sprintf("%s:%d", ipA, adminA)
	waitFor(t, 15*time.Second, "two alive members", func() bool {
		m := members(t, admin)
		return m["caddy-a"] == "alive" && m["caddy-b"] == "alive"
	})

	var defs []struct {
		VIPA     string `json:"vipa"`
		Ports    []int  `json:"ports"`
		AllPorts bool   `json:"all_ports"`
		Exclude  []int  `json:"exclude"`
	}
	getJSON(t, admin, "/vipa/definitions", &defs)
	if len(defs) != 1 || defs[0].VIPA != vip || !defs[0].AllPorts || len(defs[0].Ports) != 0 ||
		len(defs[0].Exclude) != 1 || defs[0].Exclude[0] != excluded {
		t.Fatalf("/vipa/definitions: %+v", defs)
	}

	// An application on a port no config names is reached through the VIPA.
	port := freePortOn(t, ips...)
	vipa := fmt.Sprintf("%s:%d", vip, port)
	if !dialRefused(vipa) {
		t.Fatalf("%s accepts before any target listens", vipa)
	}
	appA := startApp(t, "app-a", reusePortListen(t, fmt.Sprintf("%s:%d", ipA, port)))
	start := time.Now()
	waitFor(t, 10*time.Second, "VIPA:port to accept", func() bool { return !dialRefused(vipa) })
	t.Logf("VIPA:%d accepted %v after the application listened", port, time.Since(start).Round(time.Millisecond))
	c, r, name := dialVIPA(t, vipa)
	if name != "app-a" {
		t.Fatalf("served by %q", name)
	}
	echo(t, c, r, "ping")
	c.Close()

	// The excluded port, and the gossip and admin ports, never open. The
	// excluded port's application starts with one on a fresh port: once
	// that one is reached, the reports carrying both have arrived.
	_ = startApp(t, "app-excluded", reusePortListen(t, fmt.Sprintf("%s:%d", ipA, excluded)))
	fresh := freePortOn(t, ips...)
	_ = startApp(t, "app-fresh", reusePortListen(t, fmt.Sprintf("%s:%d", ipB, fresh)))
	waitFor(t, 10*time.Second, "the fresh port to accept", func() bool { return !dialRefused(fmt.Sprintf("%s:%d", vip, fresh)) })
	for what, p := range map[string]int{"excluded": excluded, "caddy-a admin": adminA, "caddy-a gossip": gossipA,
		"caddy-b admin": adminB, "caddy-b gossip": gossipB} {
		if !dialRefused(fmt.Sprintf("%s:%d", vip, p)) {
			t.Errorf("the %s port %d is open on the VIPA", what, p)
		}
	}
	for _, row := range dpt(t, admin) {
		if row.Port == excluded || row.Port == adminA || row.Port == gossipA || row.Port == adminB || row.Port == gossipB {
			t.Errorf("DPT row for a port that is never distributed: %+v", row)
		}
	}

	// A second target on the same port shares the connections.
	appB := startApp(t, "app-b", reusePortListen(t, fmt.Sprintf("%s:%d", ipB, port)))
	waitFor(t, 10*time.Second, "two DPT rows for the port", func() bool {
		k := 0
		for _, row := range dpt(t, admin) {
			if row.Port == port {
				k++
			}
		}
		return k == 2
	})
	served := map[string]int{}
	for range 10 {
		c, _, name := dialVIPA(t, vipa)
		served[name]++
		c.Close()
	}
	if served["app-a"] != 5 || served["app-b"] != 5 {
		t.Fatalf("10 connections spread %v, want 5 each", served)
	}

	// The last one stops: new connections are refused, an open one goes on.
	open, openR, _ := dialVIPA(t, vipa)
	appA.stopListening()
	appB.stopListening()
	waitFor(t, 10*time.Second, "VIPA:port to refuse", func() bool { return dialRefused(vipa) })
	echo(t, open, openR, "still here")
	if rows := crt(t, admin, fmt.Sprintf("?port=%d", port)); len(rows) != 1 {
		t.Fatalf("CRT for the port: %+v, want the open connection", rows)
	}
	page := getText(t, admin, "/metrics")
	if !strings.Contains(page, "caddy_vipa_dynamic_ports ") {
		t.Fatalf("no caddy_vipa_dynamic_ports gauge in /metrics")
	}
}
