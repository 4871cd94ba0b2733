package fleet

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func viewLines(f *Fleet) []string {
	var out []string
	for _, r := range f.DPTView() {
		out = append(out, fmt.Sprintf("%s:%d %s %s ready=%d", r.VIPA, r.Port, r.Node, r.Address, r.Ready))
	}
	return out
}

// TestDPTViewPerVIPA: caddy-a routes 10.0.0.100, is only a target of
// 10.0.0.101 (routed by caddy-b) and lost the conflict over 10.0.0.102 to
// caddy-c. The view shows 10.0.0.100's DPT, caddy-a's own report for the
// other two, and no DPT row of a VIPA caddy-a does not route.
func TestDPTViewPerVIPA(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-a", Advertise: netip.MustParseAddr("10.0.0.11")}
	f.snap = snapshot(map[string]int{"0.0.0.0:80": 1, "10.0.0.11:8001": 2})
	f.definitionsChanged([]serfsync.KnownDefinition{
		known("10.0.0.100", "caddy-a", true, "all"),
		known("10.0.0.101", "caddy-b", true, "all"),
		known("10.0.0.102", "caddy-a", false, "all"),
		known("10.0.0.102", "caddy-c", true, "all"),
	})
	f.reportArrived("caddy-a", []vipa.Listener{{VIPA: netip.MustParseAddr("10.0.0.100"), Port: 80, Address: netip.MustParseAddrPort("10.0.0.11:80"), Ready: 1}})
	f.reportArrived("caddy-b", []vipa.Listener{{VIPA: netip.MustParseAddr("10.0.0.100"), Port: 80, Address: netip.MustParseAddrPort("10.0.0.12:80"), Ready: 3}})
	f.reportArrived("caddy-d", []vipa.Listener{{VIPA: netip.MustParseAddr("10.0.0.102"), Port: 80, Address: netip.MustParseAddrPort("10.0.0.14:80"), Ready: 1}})

	want := []string{
		"10.0.0.100:80 caddy-a 10.0.0.11:80 ready=1",
		"10.0.0.100:80 caddy-b 10.0.0.12:80 ready=3",
		"10.0.0.101:80 caddy-a 10.0.0.11:80 ready=1",
		"10.0.0.101:8001 caddy-a 10.0.0.11:8001 ready=2",
		"10.0.0.102:80 caddy-a 10.0.0.11:80 ready=1",
		"10.0.0.102:8001 caddy-a 10.0.0.11:8001 ready=2",
	}
	if got := viewLines(f); !slices.Equal(got, want) {
		t.Errorf("view:\n got %q\nwant %q", got, want)
	}
}

// TestDPTViewConflictLoser: a node whose only definition lost its VIPA
// shows its own report for it, not an empty table.
func TestDPTViewConflictLoser(t *testing.T) {
	f := New()
	routes := map[netip.Addr]*Route{netip.MustParseAddr("10.0.0.100"): {}}
	f.routes.Store(&routes)
	f.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12")}
	f.snap = snapshot(map[string]int{"0.0.0.0:80": 1})
	f.definitionsChanged([]serfsync.KnownDefinition{
		known("10.0.0.100", "caddy-b", false, "caddy-b"),
		known("10.0.0.100", "caddy-c", true, "all"),
	})
	want := []string{"10.0.0.100:80 caddy-b 10.0.0.12:80 ready=1"}
	if got := viewLines(f); !slices.Equal(got, want) {
		t.Errorf("view %q, want %q", got, want)
	}
}

// TestDefinitionsWithoutDownOwner: once the owner watch takes caddy-a as
// down, its definition of a VIPA that caddy-b now routes is left out, and
// caddy-b's is the owner, before serf declares caddy-a failed. A VIPA no
// one else routes keeps the down node's definition; one that comes back
// is shown again.
func TestDefinitionsWithoutDownOwner(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-c", Advertise: netip.MustParseAddr("10.0.0.13")}
	f.definitionsChanged([]serfsync.KnownDefinition{
		known("10.0.0.100", "caddy-a", true, "all"),
		known("10.0.0.100", "caddy-b", false, "all"), // caddy-b's takeover
		known("10.0.0.101", "caddy-a", true, "all"),
		known("10.0.0.102", "caddy-d", true, "all"),
	})
	show := func() []string {
		var out []string
		for _, k := range f.Definitions() {
			out = append(out, fmt.Sprintf("%s %s owner=%v", k.VIPA, k.RoutingNode, k.Owner))
		}
		return out
	}
	all := []string{"10.0.0.100 caddy-a owner=true", "10.0.0.100 caddy-b owner=false", "10.0.0.101 caddy-a owner=true", "10.0.0.102 caddy-d owner=true"}
	if got := show(); !slices.Equal(got, all) {
		t.Fatalf("definitions %q, want %q", got, all)
	}
	f.dyn.markDown("caddy-a")
	want := []string{"10.0.0.100 caddy-b owner=true", "10.0.0.101 caddy-a owner=true", "10.0.0.102 caddy-d owner=true"}
	if got := show(); !slices.Equal(got, want) {
		t.Errorf("caddy-a down: definitions %q, want %q", got, want)
	}
	f.dyn.clearDown("caddy-a")
	if got := show(); !slices.Equal(got, all) {
		t.Errorf("caddy-a back: definitions %q, want %q", got, all)
	}
}
