package serfsync

import (
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestAddressConflict: a member holding the fleet key advertises another
// member's address to take its connections. Neither is trusted for the
// address while both claim it; the routing node logs it once and counts
// the dropped reports; when the claimant leaves, the owner's rows return.
func TestAddressConflict(t *testing.T) {
	o := fleetOpts{}
	nodes := startFleet(t, 3, o)
	defs := routed(nodes)
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	nodes[2].set([]vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: 1}})
	waitExact(t, 3*time.Second, nodes[0], nodes, defs)

	cfg := o.config("n03", testIP(3), 0, []string{nodes[0].BindAddr().String()})
	cfg.Advertise = nodes[1].ip // n01's address
	thief := startNode(t, cfg)
	t.Cleanup(func() { _ = thief.Stop() })
	thief.set([]vipa.Listener{{VIPA: vipaA, Port: 8082, Ready: 5}})
	waitFor(t, 5*time.Second, "neither claimant in the DPT", func() bool {
		d := nodes[0].dpt()
		_, n01 := d["n01"]
		_, n03 := d["n03"]
		return !n01 && !n03 && len(d["n02"]) == 1
	})
	waitFor(t, 3*time.Second, "dropped reports counted", func() bool { return nodes[0].Stats()["drop_address_conflict"] > 0 })
	if n := nodes[0].logs.FilterMessageSnippet("advertise one address").Len(); n != 1 {
		t.Errorf("conflict logged %d times, want once", n)
	}
	// Reports keep changing during the conflict: still no rows, no new log.
	thief.set([]vipa.Listener{{VIPA: vipaA, Port: 8083, Ready: 5}})
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8084, Ready: 1}})
	time.Sleep(500 * time.Millisecond)
	if d := nodes[0].dpt(); len(d["n01"])+len(d["n03"]) != 0 {
		t.Errorf("a claimant's rows during the conflict: %v", d)
	}
	if n := nodes[0].logs.FilterMessageSnippet("advertise one address").Len(); n != 1 {
		t.Errorf("conflict logged %d times, want once", n)
	}

	// Claiming the routing node's own address is a conflict too.
	cfg = o.config("n04", testIP(4), 0, []string{nodes[0].BindAddr().String()})
	cfg.Advertise = nodes[0].ip
	other := startNode(t, cfg)
	t.Cleanup(func() { _ = other.Stop() })
	other.set([]vipa.Listener{{VIPA: vipaA, Port: 8085, Ready: 1}})
	time.Sleep(time.Second)
	if d := nodes[0].dpt(); len(d["n04"]) != 0 {
		t.Errorf("a member claiming the routing node's address got rows: %v", d["n04"])
	}

	_ = thief.Stop()
	_ = other.Stop()
	d := waitExact(t, 3*time.Second, nodes[0], nodes, defs)
	t.Logf("claimants gone: owner's rows back after %v; stats %v", d, nodes[0].Stats())
}

// TestNewcomerDoesNotDisplaceOwner: n02 routes VIPA A; later n00, a lower
// name, defines A too. n02 stays the owner on every node, n00 is flagged
// and builds no DPT; a reload of n02 keeps its standing. When n02 leaves,
// n00 takes over.
func TestNewcomerDoesNotDisplaceOwner(t *testing.T) {
	nodes := startFleet(t, 4, fleetOpts{})
	est := def(vipaA.String(), "n02", ports("8080-8089"))
	nodes[2].SetDefinitions([]*vipa.Definition{est})
	for _, n := range nodes {
		n.set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	}
	waitFor(t, 3*time.Second, "n02 owns A", func() bool { return len(nodes[2].dpt()) == 4 })
	time.Sleep(5 * time.Millisecond) // a later millisecond
	newcomer := def(vipaA.String(), "n00", ports("8080"))
	nodes[0].SetDefinitions([]*vipa.Definition{newcomer})
	owners := func() bool {
		for _, n := range nodes {
			ds := n.Definitions()
			if len(ds) != 2 || ds[0].RoutingNode != "n00" || ds[0].Owner || ds[0].Conflict == "" ||
				ds[1].RoutingNode != "n02" || !ds[1].Owner || ds[1].Conflict == "" {
				return false
			}
		}
		return true
	}
	waitFor(t, 3*time.Second, "every node keeps n02 as owner, both flagged", owners)
	// n02 reloads with a port more: still established.
	nodes[2].SetDefinitions([]*vipa.Definition{def(vipaA.String(), "n02", ports("8080-8090"))})
	time.Sleep(300 * time.Millisecond)
	waitFor(t, 3*time.Second, "n02 still owner after a reload", owners)
	if d := nodes[0].dpt(); len(d) != 0 {
		t.Errorf("the newcomer built a DPT: %v", d)
	}
	if len(nodes[2].dpt()) != 4 {
		t.Errorf("the established routing node lost rows: %v", nodes[2].dpt())
	}
	_ = nodes[2].Stop()
	waitFor(t, 3*time.Second, "n00 takes over when n02 leaves", func() bool {
		d := nodes[0].dpt()
		return len(d) == 3
	})
}
