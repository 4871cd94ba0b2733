package fleet

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
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

func roleLines(f *Fleet) []string {
	var out []string
	for _, r := range f.DPTViewRoles() {
		out = append(out, fmt.Sprintf("%s:%d %s %s", r.VIPA, r.Port, r.Node, r.Role))
	}
	return out
}

// TestDPTViewRoles: each row of the view carries why it is there. The
// routing node's rows are "routing"; a backup that does not define the
// VIPA shows its warm rows as "backup"; a backup that defines it (a
// ranked backup, a conflict's loser) holds warm rows in its DPT that the
// view leaves out, and shows its own report as "target". DPTView is the
// same rows without roles.
func TestDPTViewRoles(t *testing.T) {
	reports := func(f *Fleet) {
		f.reportArrived("caddy-c", []vipa.Listener{lineAt(vA, 80, "10.0.0.13", 1)})
		f.reportArrived("caddy-d", []vipa.Listener{lineAt(vA, 80, "10.0.0.14", 2)})
	}
	check := func(name string, f *Fleet, dpt int, want []string) {
		t.Helper()
		if n := len(f.DPT.Rows()); n != dpt {
			t.Errorf("%s: %d DPT rows, want %d: %+v", name, n, dpt, f.DPT.Rows())
		}
		if got := roleLines(f); !slices.Equal(got, want) {
			t.Errorf("%s: view\n got %q\nwant %q", name, got, want)
		}
		var plain []string
		for _, r := range f.DPTView() {
			plain = append(plain, fmt.Sprintf("%s:%d %s", r.VIPA, r.Port, r.Node))
		}
		for i, w := range want {
			if i >= len(plain) || !strings.HasPrefix(w, plain[i]+" ") {
				t.Errorf("%s: DPTView %q, roles %q", name, plain, want)
				break
			}
		}
	}

	routing := New()
	routing.cfg = Config{Node: "caddy-a", Advertise: netip.MustParseAddr("10.0.0.11")}
	routing.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "caddy-c", "caddy-d")})
	reports(routing)
	check("routing node", routing, 2, []string{"10.0.0.100:80 caddy-c routing", "10.0.0.100:80 caddy-d routing"})

	// A backup of 10.0.0.100 that does not define it, and a target of
	// 10.0.0.101 routed by caddy-x.
	warm := New()
	warm.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12")}
	warm.snap = snapshot(map[string]int{"0.0.0.0:8001": 1})
	warm.dyn.configure("caddy-b", nil, []*vipa.Backup{{VIPA: vA, Rank: 100, Takeback: vipa.TakebackWhenIdle}}, nil)
	warm.definitionsChanged([]serfsync.KnownDefinition{
		known("10.0.0.100", "caddy-a", true, "caddy-c", "caddy-d"),
		known("10.0.0.101", "caddy-x", true, "all"),
	})
	reports(warm)
	check("backup not defining", warm, 2, []string{
		"10.0.0.100:80 caddy-c backup", "10.0.0.100:80 caddy-d backup", "10.0.0.101:8001 caddy-b target"})

	// A ranked backup defining 10.0.0.100 itself: its DPT is warm, the
	// view shows its own report.
	def := known("10.0.0.100", "caddy-b", false, "all")
	ranked := New()
	ranked.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12"), Defs: []*vipa.Definition{&def.Definition}}
	ranked.snap = snapshot(map[string]int{"0.0.0.0:80": 1})
	ranked.dyn.configure("caddy-b", []*vipa.Definition{&def.Definition}, []*vipa.Backup{{VIPA: vA, Rank: 100, Takeback: vipa.TakebackWhenIdle}}, nil)
	ranked.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all"), def})
	reports(ranked)
	check("backup defining", ranked, 2, []string{"10.0.0.100:80 caddy-b target"})
}
