//go:build linux

package tests

import (
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/vipaif"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// labManager is an address manager for the lab interface of h, made in
// h's namespace; it releases what it owns when the test ends.
func labManager(t *testing.T, h *netlab.Host) *vipaif.Manager {
	t.Helper()
	var m *vipaif.Manager
	if err := h.Run(func() (err error) { m, err = vipaif.New(netlab.Dev); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Run(m.Close) })
	return m
}

// TestLabRoutingNodeOwnsVIPA: in a LAN of namespaces, the routing node
// holds the VIPA the address manager added and routes the client's
// connections to all three nodes; when another node takes the address, the
// client's neighbour entry follows it at once, and back.
func TestLabRoutingNodeOwnsVIPA(t *testing.T) {
	l := newLab(t, "a", "b", "c")
	a, b, c := l.Node("a"), l.Node("b"), l.Node("c")
	labApps(t, l)
	na := startLabCaddy(t, a, netlab.Node{Host: a, Seed: a, Fast: true, Define: true, Layer4: true}.Caddyfile())
	nb := startLabCaddy(t, b, netlab.Node{Host: b, Seed: a, Fast: true}.Caddyfile())
	nc := startLabCaddy(t, c, netlab.Node{Host: c, Seed: a, Fast: true}.Caddyfile())
	waitLabFleet(t, []*labNode{na, nb, nc})
	waitFor(t, 15*time.Second, "three ready DPT rows on the routing node", func() bool {
		var rows []dptRow
		na.getJSON(t, "/vipa/dpt", &rows)
		ready := 0
		for _, r := range rows {
			ready += r.Ready
		}
		return len(rows) == 3 && ready == 3
	})

	ma, mb := labManager(t, a), labManager(t, b)
	if err := a.Run(func() error { return ma.Own(netlab.VIPA) }); err != nil {
		t.Fatal(err)
	}
	served := map[string]int{}
	for range 30 {
		name, err := clientGreeting(l, 5*time.Second)
		if err != nil {
			t.Fatalf("client through the VIPA: %v", err)
		}
		served[name]++
	}
	for _, h := range l.Nodes {
		if served["caddy-"+h.Name] == 0 {
			t.Fatalf("30 connections through the VIPA spread %v: none reached caddy-%s", served, h.Name)
		}
	}
	if got := clientNeigh(t, l); got != a.MAC {
		t.Fatalf("the client reaches the VIPA at %s, want the routing node's %s", got, a.MAC)
	}

	// The address moves to b: the client's entry follows without asking.
	if err := a.Run(func() error { return ma.Release(netlab.VIPA) }); err != nil {
		t.Fatal(err)
	}
	moved := time.Now()
	if err := b.Run(func() error { return mb.Own(netlab.VIPA) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the client's entry for the VIPA to follow it to b", func() bool {
		return clientNeigh(t, l) == b.MAC
	})
	t.Logf("client's neighbour entry followed the VIPA in %s", time.Since(moved).Round(time.Millisecond))
	if a.Holds(netlab.VIPAPrefix()) || !b.Holds(netlab.VIPAPrefix()) {
		t.Fatal("the VIPA is not on b alone")
	}

	// And back: the routing node answers again.
	if err := b.Run(func() error { return mb.Release(netlab.VIPA) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(func() error { return ma.Own(netlab.VIPA) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the client's entry to return to a", func() bool {
		return clientNeigh(t, l) == a.MAC
	})
	if _, err := clientGreeting(l, 5*time.Second); err != nil {
		t.Fatalf("client through the VIPA back on the routing node: %v", err)
	}
}
