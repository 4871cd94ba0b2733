package serfsync

import (
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestTakeoverIsNoConflict: backup b routes VIPA A, taken over from its
// defining node a, when a routes A too (a partition heals). b's
// definition is no second definer: no conflict on any node, and a owns A
// on every node though b's definition is the older. A second defining
// node still conflicts.
func TestTakeoverIsNoConflict(t *testing.T) {
	tc := newTestCores("a", "b", "c", "d")
	a, b := tc.cores["a"], tc.cores["b"]
	backup := VIPADyn{Ranks: map[netip.Addr]int{vipaA: 200}}
	tag, _ := encodeVIPADyn(backup)
	b.setVIPADyn(tag, backup, nil)
	b.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	tc.now = tc.now.Add(time.Second)
	a.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	list := func() {
		for _, c := range tc.cores {
			c.membersListed(tc.views(), tc.now)
		}
		tc.settle(t)
	}
	list()
	for name, c := range tc.cores {
		if len(c.known) != 2 {
			t.Fatalf("%s knows %v", name, c.known)
		}
		for _, k := range c.known {
			if k.Conflict != "" {
				t.Errorf("%s: %s's definition shows a conflict: %q", name, k.RoutingNode, k.Conflict)
			}
			if k.Owner != (k.RoutingNode == "a") {
				t.Errorf("%s: %s's definition Owner=%v", name, k.RoutingNode, k.Owner)
			}
		}
	}

	// d defines A too: a and d conflict, b's takeover stays clear.
	tc.now = tc.now.Add(time.Second)
	tc.cores["d"].setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	list()
	for _, k := range tc.cores["c"].known {
		want := map[string]string{"a": "VIPA " + vipaA.String() + " is also defined by d",
			"b": "", "d": "VIPA " + vipaA.String() + " is also defined by a"}[k.RoutingNode]
		if k.Conflict != want || k.Owner != (k.RoutingNode == "a") {
			t.Errorf("c: %s's definition: conflict %q owner %v, want %q", k.RoutingNode, k.Conflict, k.Owner, want)
		}
	}
}

// TestHandOverKeepsOrphan: a backup b hands a VIPA it took over back: it
// stops defining it before the returning owner a defines it again.
// Meanwhile every node keeps b's last definition as an orphan (owner, so
// targets keep reporting and b's standby rows stay), by which b claims
// nothing; a's definition replaces it.
func TestHandOverKeepsOrphan(t *testing.T) {
	tc := newTestCores("a", "b", "c")
	a, b := tc.cores["a"], tc.cores["b"]
	standBy := func(c *core, rank int) {
		d := VIPADyn{Ranks: map[netip.Addr]int{vipaA: rank}}
		tag, _ := encodeVIPADyn(d)
		c.setVIPADyn(tag, d, nil)
	}
	standBy(a, 0)
	standBy(b, 200)
	list := func() {
		for _, c := range tc.cores {
			c.membersListed(tc.views(), tc.now)
		}
		tc.settle(t)
	}
	b.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	list()
	for name, c := range tc.cores {
		if len(c.known) != 1 || !c.known[0].Owner {
			t.Fatalf("%s knows %+v before the hand-over", name, c.known)
		}
	}
	b.setDefinitions(nil, tc.now) // the hand-over: b stops defining A
	list()
	for name, c := range tc.cores {
		if len(c.known) != 1 || !c.known[0].Released || !c.known[0].Owner || c.known[0].RoutingNode != "b" {
			t.Fatalf("%s knows %+v during the hand-over, want b's definition kept, owning, released", name, c.known)
		}
	}
	a.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	list()
	for name, c := range tc.cores {
		if len(c.known) != 1 || c.known[0].Released || c.known[0].RoutingNode != "a" {
			t.Fatalf("%s knows %+v after a defines A, want a's definition alone", name, c.known)
		}
	}
}
