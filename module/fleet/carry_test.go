package fleet

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func lineAt(v netip.Addr, port uint16, adv string, ready int) vipa.Listener {
	return vipa.Listener{VIPA: v, Port: port, Address: netip.AddrPortFrom(netip.MustParseAddr(adv), port), Ready: ready}
}

func rowOn(f *Fleet, v netip.Addr, port uint16, node string) tables.Row {
	for _, r := range f.DPT.Rows() {
		if r.VIPA == v && r.Port == port && r.Node == node {
			return r
		}
	}
	return tables.Row{}
}

// TestOwnerStateShared: a routing node shares its drains and the rows of
// the VIPAs it routes that are below full health, not those of others.
func TestOwnerStateShared(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-a"}
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")})
	f.routes.Store(&map[netip.Addr]*Route{vA: {}})
	f.reportArrived("caddy-c", []vipa.Listener{lineAt(vA, 80, "10.0.0.13", 1)})
	f.reportArrived("caddy-d", []vipa.Listener{lineAt(vA, 80, "10.0.0.14", 1)})
	if _, err := f.Quiesce(Selector{VIPA: vA, Node: "caddy-c"}, true); err != nil {
		t.Fatal(err)
	}
	if s := f.ownerState(); len(s.Health) != 0 || len(s.Drains) != 1 {
		t.Fatalf("all healthy: %+v", s)
	}
	f.DPT.Target(vA, 80, "caddy-d").DialFailed(time.Now(), true)
	s := f.ownerState()
	want := serfsync.OwnerState{
		Drains: []serfsync.Drain{{VIPA: vA, Node: "caddy-c", Quiesced: true}},
		Health: []serfsync.RowHealth{{VIPA: vA, Port: 80, Node: "caddy-d", TSR: rowOn(f, vA, 80, "caddy-d").TSR, Unhealthy: true}},
	}
	if !slices.Equal(s.Drains, want.Drains) || !slices.Equal(s.Health, want.Health) {
		t.Fatalf("shared %+v, want %+v", s, want)
	}
	f.routes.Store(&map[netip.Addr]*Route{})
	if s := f.ownerState(); len(s.Health) != 0 {
		t.Fatalf("rows of a VIPA not routed here shared: %+v", s.Health)
	}
}

// TestCarriedOnStandby: a standby's rows of a VIPA take its routing
// node's drains and health, including rows that arrive later; state from
// a node that does not route the VIPA is ignored; on takeover the drains
// become this node's own, which a resume here lifts, and the rows keep
// their health.
func TestCarriedOnStandby(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-b", Advertise: netip.MustParseAddr("10.0.0.12")}
	f.dyn.configure("caddy-b", nil, []*vipa.Backup{{VIPA: vA, Rank: 100, Takeback: vipa.TakebackWhenIdle}}, nil)
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")})
	f.drains = quiesceRules{{Selector{Node: "caddy-d"}, true}} // this node's own: not the owner's word
	f.reportArrived("caddy-c", []vipa.Listener{lineAt(vA, 80, "10.0.0.13", 1)})
	f.reportArrived("caddy-d", []vipa.Listener{lineAt(vA, 80, "10.0.0.14", 1)})

	f.ownerStateArrived("caddy-x", serfsync.OwnerState{Drains: []serfsync.Drain{{Node: "caddy-c", Quiesced: true}}})
	if r := rowOn(f, vA, 80, "caddy-c"); r.State != tables.Active {
		t.Fatalf("state from a node that does not route the VIPA applied: %+v", r)
	}
	f.ownerStateArrived("caddy-a", serfsync.OwnerState{
		Drains: []serfsync.Drain{{Node: "caddy-c", Quiesced: true}, {VIPA: vB, Node: "caddy-d", Quiesced: true}},
		Health: []serfsync.RowHealth{{VIPA: vA, Port: 80, Node: "caddy-d", TSR: 20, Unhealthy: true}},
	})
	c, d := rowOn(f, vA, 80, "caddy-c"), rowOn(f, vA, 80, "caddy-d")
	if c.State != tables.Quiesced || d.State != tables.Active || d.Health != tables.Unhealthy || d.TSR != 20 || c.Health != tables.Healthy {
		t.Fatalf("standby rows %+v %+v: want c drained, d active (another VIPA's drain; not this node's own) and unhealthy at 20", c, d)
	}
	// /vipa/dpt on the backup shows the warm rows as it would route them.
	view := f.DPTView()
	if len(view) != 2 || view[0].Node != "caddy-c" || view[0].State != tables.Quiesced || view[1].Health != tables.Unhealthy || view[1].TSR != 20 {
		t.Fatalf("the backup's view %+v", view)
	}
	if due := f.DPT.Due(time.Now().Add(2 * tables.ProbeBackoff)); len(due) != 1 {
		t.Fatalf("due %v", due)
	}
	f.DPT.Target(vA, 80, "caddy-d").Postpone(time.Now())
	// A later report keeps the carried state; a new row takes it too.
	f.reportArrived("caddy-c", []vipa.Listener{lineAt(vA, 80, "10.0.0.13", 3), lineAt(vA, 8001, "10.0.0.13", 1)})
	if c := rowOn(f, vA, 8001, "caddy-c"); c.State != tables.Quiesced || rowOn(f, vA, 80, "caddy-d").Health != tables.Unhealthy {
		t.Fatalf("after a report: %+v", f.DPT.Rows())
	}

	// Takeover: the drain is this node's now; health stays.
	old := *f.routes.Load()
	now := map[netip.Addr]*Route{vA: {}}
	f.routes.Store(&now)
	f.adoptCarried(old, now)
	if !slices.Contains(f.drains, quiesceRule{Selector{VIPA: vA, Node: "caddy-c"}, true}) {
		t.Fatalf("drains after the takeover %+v", f.drains)
	}
	if c, d := rowOn(f, vA, 80, "caddy-c"), rowOn(f, vA, 80, "caddy-d"); c.State != tables.Quiesced || d.Health != tables.Unhealthy {
		t.Fatalf("after the takeover %+v %+v", c, d)
	}
	if f.carried[vA] != nil {
		t.Fatal("carried state kept after adoption")
	}
	f.ownerStateArrived("caddy-a", serfsync.OwnerState{}) // late: the VIPA is routed here
	if rowOn(f, vA, 80, "caddy-c").State != tables.Quiesced {
		t.Fatal("a routed VIPA's rows followed another node's state")
	}
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-b", true, "all")})
	rows, err := f.Quiesce(Selector{Node: "caddy-c"}, false)
	if err != nil || len(rows) != 2 || rows[0].State != tables.Active || rows[1].State != tables.Active {
		t.Fatalf("resume on the new owner: %+v %v", rows, err)
	}
}

// TestCarriedDroppedWithStandby: a node that stops standing by for a VIPA
// forgets what its routing node shared.
func TestCarriedDroppedWithStandby(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-b"}
	f.dyn.configure("caddy-b", nil, []*vipa.Backup{{VIPA: vA, Rank: 100, Takeback: vipa.TakebackWhenIdle}}, nil)
	defs := []serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")}
	f.definitionsChanged(defs)
	f.ownerStateArrived("caddy-a", serfsync.OwnerState{Drains: []serfsync.Drain{{Node: "caddy-c", Quiesced: true}}})
	if f.carried[vA] == nil {
		t.Fatal("nothing carried")
	}
	f.dyn.configure("caddy-b", nil, nil, nil)
	f.definitionsChanged(defs)
	if len(f.carried) != 0 {
		t.Fatalf("kept %v after the backup statement went", f.carried)
	}
}

// TestCarriedHealthCounted: a standby counts the health changes its
// routing node's shared state makes on its rows, once each and apart
// from its own findings; an unchanged state counts nothing.
func TestCarriedHealthCounted(t *testing.T) {
	f := New()
	f.cfg = Config{Node: "caddy-b"}
	f.dyn.configure("caddy-b", nil, []*vipa.Backup{{VIPA: vA, Rank: 100, Takeback: vipa.TakebackWhenIdle}}, nil)
	f.definitionsChanged([]serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")})
	f.reportArrived("caddy-c", []vipa.Listener{lineAt(vA, 80, "10.0.0.13", 1)})
	f.reportArrived("caddy-d", []vipa.Listener{lineAt(vA, 80, "10.0.0.14", 1)})
	n := &f.Counters
	counts := func() [4]uint64 {
		return [4]uint64{n.HealthDownCarried.Load(), n.HealthUpCarried.Load(), n.HealthDown.Load(), n.HealthUp.Load()}
	}
	down := serfsync.OwnerState{Health: []serfsync.RowHealth{{VIPA: vA, Port: 80, Node: "caddy-d", TSR: 20, Unhealthy: true}}}
	f.ownerStateArrived("caddy-a", down)
	if got := counts(); got != [4]uint64{1, 0, 0, 0} || rowOn(f, vA, 80, "caddy-d").Health != tables.Unhealthy {
		t.Fatalf("after the owner found caddy-d unhealthy: carried down/up, own down/up %v; row %+v", got, rowOn(f, vA, 80, "caddy-d"))
	}
	f.ownerStateArrived("caddy-a", down)
	f.reportArrived("caddy-d", []vipa.Listener{lineAt(vA, 80, "10.0.0.14", 2)})
	if got := counts(); got != [4]uint64{1, 0, 0, 0} {
		t.Fatalf("the same state again and a later report counted: %v", got)
	}
	f.ownerStateArrived("caddy-a", serfsync.OwnerState{Health: []serfsync.RowHealth{{VIPA: vA, Port: 80, Node: "caddy-d", TSR: 60}}})
	if got := counts(); got != [4]uint64{1, 1, 0, 0} || rowOn(f, vA, 80, "caddy-d").Health != tables.Healthy {
		t.Fatalf("after the owner found caddy-d healthy: %v", got)
	}
}
