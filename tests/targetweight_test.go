//go:build linux

package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// weightOf is node's row weight in admin's /vipa/dpt, 0 without a row.
func weightOf(t *testing.T, admin, node string) int {
	for _, r := range dpt(t, admin) {
		if r.Node == node {
			return r.Weight
		}
	}
	return 0
}

// TestTargetWeight: targets that report weights 3 and 1 get three
// connections for one; a reload changes the weight a target reports, and
// weight auto reports one from the host's CPU.
func TestTargetWeight(t *testing.T) {
	port := freePort(t)
	gossip := freePort(t)
	vipa := fmt.Sprintf("127.0.0.100:%d", port)
	seed := fmt.Sprintf("127.0.0.1:%d", gossip)

	a := newFleetNode(t, "caddy-a", "127.0.0.1", gossip)
	a.routes = fmt.Sprintf(`		vipadistribute define 127.0.0.100 port %d destip caddy-b caddy-c {
			distmethod targetweight
		}
	}
	layer4 {
		127.0.0.100:%d {
			route {
				distribute
			}
		}
	}`, port, port)
	b := newFleetNode(t, "caddy-b", "127.0.0.2", gossip, seed)
	b.routes = "\t\tweight 3\n\t}"
	c := newFleetNode(t, "caddy-c", "127.0.0.3", gossip, seed)
	c.routes = "\t\tweight 1\n\t}"
	startCaddy(t, a.admin, a.caddyfile())
	pb := startCaddy(t, b.admin, b.caddyfile())
	pc := startCaddy(t, c.admin, c.caddyfile())
	for _, n := range []fleetNode{b, c} {
		startApp(t, n.name, reusePortListen(t, fmt.Sprintf("%s:%d", n.ip, port)))
	}
	waitFor(t, 15*time.Second, "rows of caddy-b and caddy-c weighing 3 and 1", func() bool {
		return weightOf(t, a.admin, "caddy-b") == 3 && weightOf(t, a.admin, "caddy-c") == 1
	})

	got := spread(t, vipa, 40)
	t.Logf("40 connections by reported weights 3:1: %v", got)
	if got["caddy-b"] < 27 || got["caddy-b"] > 33 || got["caddy-b"]+got["caddy-c"] != 40 {
		t.Fatalf("40 connections by reported weights 3:1 spread %v, want about 30:10", got)
	}

	// A reload changes what caddy-b reports.
	pb.reload(strings.Replace(b.caddyfile(), "weight 3", "weight 1", 1))
	waitFor(t, 5*time.Second, "caddy-b weighing 1", func() bool { return weightOf(t, a.admin, "caddy-b") == 1 })
	if got := spread(t, vipa, 10); got["caddy-b"] != 5 || got["caddy-c"] != 5 {
		t.Fatalf("10 connections by weights 1:1 spread %v", got)
	}

	// weight auto reports the host's spare CPU, 1-100.
	pc.reload(strings.Replace(c.caddyfile(), "weight 1", "weight auto", 1))
	waitFor(t, 5*time.Second, "caddy-c weighing what its CPU says", func() bool {
		w := weightOf(t, a.admin, "caddy-c")
		return w >= 1 && w <= 100 && strings.Contains(getText(t, c.admin, "/metrics"), fmt.Sprintf("caddy_vipa_self_weight %d\n", w))
	})
	t.Logf("caddy-c's weight auto: %d", weightOf(t, a.admin, "caddy-c"))
}
