package fleet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

var (
	vA = netip.MustParseAddr("10.0.0.100")
	vB = netip.MustParseAddr("10.0.0.101")
)

// The last rule selecting a row decides; a resume drops the rules it
// covers, and one that leaves no quiesce leaves no rule.
func TestQuiesceRules(t *testing.T) {
	var q quiesceRules
	step := func(sel Selector, quiesced bool) {
		t.Helper()
		var err error
		if q, err = q.set(sel, quiesced); err != nil {
			t.Fatal(err)
		}
	}
	is := func(v netip.Addr, port uint16, node string) bool { return q.quiesced(v, port, node) }

	step(Selector{}, true) // everything
	if !is(vA, 80, "") || !is(vB, 8000, "") {
		t.Fatal("quiesce all")
	}
	step(Selector{Port: 80}, false) // all but port 80
	if is(vA, 80, "") || is(vB, 80, "") || !is(vA, 8000, "") {
		t.Fatal("resume port 80 under quiesce all")
	}
	step(Selector{VIPA: vA, Port: 80}, true)
	if !is(vA, 80, "") || is(vB, 80, "") {
		t.Fatal("quiesce one row back")
	}
	step(Selector{}, false) // covers every rule
	if len(q) != 0 || is(vA, 80, "") {
		t.Fatalf("resume all left %v", q)
	}
	step(Selector{Node: "b"}, false) // resuming what is not quiesced keeps nothing
	if len(q) != 0 {
		t.Fatalf("a lone resume kept %v", q)
	}
	step(Selector{Node: "b", VIPA: vB}, true)
	step(Selector{Node: "b", VIPA: vB}, true) // repeated: one rule
	if len(q) != 1 || !is(vB, 80, "b") || is(vB, 80, "c") || is(vA, 80, "b") {
		t.Fatalf("node rule %v", q)
	}
	// Bounded: distinct selectors pile up to the limit, then are refused.
	q = nil
	for p := range maxQuiesceRules {
		step(Selector{Port: uint16(p + 1)}, true)
	}
	if _, err := q.set(Selector{Port: 65000}, true); err == nil {
		t.Fatal("no bound on selectors")
	}
	step(Selector{}, false)
	if len(q) != 0 {
		t.Fatal("resume all did not clear the bound")
	}
}

func stateLines(rows []tables.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s:%d %s %s", r.VIPA, r.Port, r.Node, r.State))
	}
	return out
}

func dptStates(f *Fleet) []string { return stateLines(f.DPT.Rows()) }

// A target's quiesce marks its own report lines, kept across a new
// socket table and for a port that starts listening later; unknown VIPAs
// and ports are not found.
func TestQuiesceOwn(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12")}
	f.snap = snapshot(map[string]int{"0.0.0.0:80": 1})
	f.definitionsChanged([]serfsync.KnownDefinition{
		known("10.0.0.100", "caddy-a", true, "all"),
		known("10.0.0.101", "caddy-a", true, "caddy-c"), // not a target of it
	})
	rows, err := f.Quiesce(Selector{VIPA: vA, Port: 8001}, true)
	if err != nil || len(rows) != 0 {
		t.Fatalf("quiesce a port not listening: %v %v", rows, err)
	}
	f.listenersChanged(snapshot(map[string]int{"0.0.0.0:80": 1, "0.0.0.0:8001": 1}))
	want := []string{"10.0.0.100:80 caddy-b active", "10.0.0.100:8001 caddy-b quiesced"}
	if got := stateLines(f.DPTView()); !slices.Equal(got, want) {
		t.Fatalf("view %q, want %q", got, want)
	}
	rows, err = f.Quiesce(Selector{}, true)
	if got := stateLines(rows); err != nil || !slices.Equal(got, []string{"10.0.0.100:80 caddy-b quiesced", "10.0.0.100:8001 caddy-b quiesced"}) {
		t.Fatalf("quiesce all: %q %v", got, err)
	}
	if f.own[0].State != vipa.StateQuiesced {
		t.Fatalf("report line %+v", f.own[0])
	}
	rows, err = f.Quiesce(Selector{Port: 80}, false)
	if got := stateLines(rows); err != nil || !slices.Equal(got, []string{"10.0.0.100:80 caddy-b active"}) {
		t.Fatalf("resume port 80: %q %v", got, err)
	}
	// Unscored own rows read as new rows do: TSR 100, healthy, their
	// weight while active and none while quiesced.
	for _, r := range append(rows, f.DPTView()...) {
		want := float64(r.Weight)
		if r.State == tables.Quiesced {
			want = 0
		}
		if r.TSR != 100 || r.Health != tables.Healthy || r.EffectiveWeight != want {
			t.Errorf("own row %s:%d %s: tsr %d, %v, effective weight %v; want 100, healthy, %v",
				r.VIPA, r.Port, r.State, r.TSR, r.Health, r.EffectiveWeight, want)
		}
	}
	for _, sel := range []Selector{
		{VIPA: vB}, // names another target
		{VIPA: netip.MustParseAddr("10.9.9.9")},
		{VIPA: vA, Port: 81}, // not distributed
		{Node: "caddy-b"},    // this node routes nothing
	} {
		if _, err := f.Quiesce(sel, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: %v, want not found", sel, err)
		}
	}
}

// A routing node's drain quiesces a target's rows whatever the target
// reports, across its new reports; a target's own quiesce shows too.
func TestDrain(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-a", Advertise: netip.MustParseAddr("10.0.0.11")}
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")})
	report := func(node, adv string, ports ...uint16) {
		var ls []vipa.Listener
		for _, p := range ports {
			ls = append(ls, vipa.Listener{VIPA: vA, Port: p, Address: netip.AddrPortFrom(netip.MustParseAddr(adv), p), Ready: 1})
		}
		f.reportArrived(node, ls)
	}
	report("caddy-b", "10.0.0.12", 80, 8001)
	report("caddy-c", "10.0.0.13", 80)
	rows, err := f.Quiesce(Selector{Node: "caddy-b", Port: 80}, true)
	if got := stateLines(rows); err != nil || !slices.Equal(got, []string{"10.0.0.100:80 caddy-b quiesced"}) {
		t.Fatalf("drain: %q %v", got, err)
	}
	report("caddy-b", "10.0.0.12", 80, 8001, 8002) // a new report keeps the drain
	want := []string{"10.0.0.100:80 caddy-b quiesced", "10.0.0.100:80 caddy-c active", "10.0.0.100:8001 caddy-b active", "10.0.0.100:8002 caddy-b active"}
	if got := dptStates(f); !slices.Equal(got, want) {
		t.Fatalf("after a report: %q, want %q", got, want)
	}
	if g := f.DPT.Lookup(vA, 80); g.Len() != 1 || g.Targets()[0].Node != "caddy-c" {
		t.Fatalf("group of port 80: %v", stateLines(f.DPT.Rows()))
	}
	// The target quiesces 8001 itself; resuming the drain leaves that.
	f.reportArrived("caddy-b", []vipa.Listener{
		{VIPA: vA, Port: 80, Address: netip.MustParseAddrPort("10.0.0.12:80"), Ready: 1},
		{VIPA: vA, Port: 8001, Address: netip.MustParseAddrPort("10.0.0.12:8001"), Ready: 1, State: vipa.StateQuiesced},
	})
	rows, err = f.Quiesce(Selector{Node: "caddy-b"}, false)
	want = []string{"10.0.0.100:80 caddy-b active", "10.0.0.100:8001 caddy-b quiesced"}
	if got := stateLines(rows); err != nil || !slices.Equal(got, want) {
		t.Fatalf("resume: %q %v, want %q", got, err, want)
	}
	for _, sel := range []Selector{
		{Node: "caddy-z"}, // neither reported nor a member
		{Node: "caddy-b", VIPA: vB},
		{Node: "caddy-b", Port: 81},
	} {
		if _, err := f.Quiesce(sel, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("%+v: %v, want not found", sel, err)
		}
	}
	// A member gone takes its rows; a drain of it is kept for its return.
	if _, err := f.Quiesce(Selector{Node: "caddy-c"}, true); err != nil {
		t.Fatal(err)
	}
	f.memberGone("caddy-c")
	report("caddy-c", "10.0.0.13", 80)
	if got := dptStates(f); !slices.Contains(got, "10.0.0.100:80 caddy-c quiesced") {
		t.Fatalf("after a return: %q", got)
	}
}
