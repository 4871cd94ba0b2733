package tables

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

var (
	vipa1 = netip.MustParseAddr("10.0.0.100")
	vipa2 = netip.MustParseAddr("10.0.0.101")
)

func row(vipa netip.Addr, port uint16, node string, ready int) Row {
	return Row{VIPA: vipa, Port: port, Node: node, Address: addrOf(node, port), Ready: ready}
}

// addrOf gives node "a" the address 127.0.0.1, "b" 127.0.0.2, and so on.
func addrOf(node string, port uint16) netip.AddrPort {
	var b byte
	if node != "" {
		b = node[0] - 'a' + 1
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, b}), port)
}

func nodes(ts []*Target) []string {
	var ns []string
	for _, t := range ts {
		ns = append(ns, t.Node)
	}
	return ns
}

// key3 names a row in expectations.
func key3(r Row) string { return fmt.Sprintf("%s:%d/%s", r.VIPA, r.Port, r.Node) }

func rowKeys(rows []Row) []string {
	var ks []string
	for _, r := range rows {
		ks = append(ks, key3(r))
	}
	return ks
}

func TestDPT(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(d *DPT)
		want []string // Rows() keys in order
	}{
		{
			name: "empty",
			do:   func(d *DPT) {},
		},
		{
			name: "set inserts",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "b", 1))
				d.Set(row(vipa1, 80, "a", 2))
			},
			want: []string{"10.0.0.100:80/a", "10.0.0.100:80/b"},
		},
		{
			name: "set upserts",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 80, "a", 3))
			},
			want: []string{"10.0.0.100:80/a"},
		},
		{
			name: "ready 0 deletes",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 80, "b", 1))
				d.Set(row(vipa1, 80, "a", 0))
			},
			want: []string{"10.0.0.100:80/b"},
		},
		{
			name: "ready 0 of an absent row",
			do:   func(d *DPT) { d.Set(row(vipa1, 80, "a", 0)) },
		},
		{
			name: "delete",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 81, "a", 1))
				d.Delete(vipa1, 80, "a")
			},
			want: []string{"10.0.0.100:81/a"},
		},
		{
			name: "delete node",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 80, "b", 1))
				d.Set(row(vipa2, 90, "a", 1))
				d.DeleteNode("a")
			},
			want: []string{"10.0.0.100:80/b"},
		},
		{
			name: "replace",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 81, "a", 1))
				d.Set(row(vipa1, 80, "b", 1))
				d.Replace("a", []Row{row(vipa1, 81, "ignored", 2), row(vipa2, 90, "", 1), row(vipa2, 91, "a", 0)})
			},
			want: []string{"10.0.0.100:80/b", "10.0.0.100:81/a", "10.0.0.101:90/a"},
		},
		{
			name: "replace with nothing",
			do: func(d *DPT) {
				d.Set(row(vipa1, 80, "a", 1))
				d.Set(row(vipa1, 80, "b", 1))
				d.Replace("a", nil)
			},
			want: []string{"10.0.0.100:80/b"},
		},
		{
			name: "rows sorted by vipa, port, node",
			do: func(d *DPT) {
				d.Set(row(vipa2, 80, "a", 1))
				d.Set(row(vipa1, 443, "a", 1))
				d.Set(row(vipa1, 80, "c", 1))
				d.Set(row(vipa1, 80, "a", 1))
			},
			want: []string{"10.0.0.100:80/a", "10.0.0.100:80/c", "10.0.0.100:443/a", "10.0.0.101:80/a"},
		},
		{
			name: "mapped vipa is unmapped",
			do: func(d *DPT) {
				d.Set(row(netip.MustParseAddr("::ffff:10.0.0.100"), 80, "a", 1))
			},
			want: []string{"10.0.0.100:80/a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDPT()
			tc.do(d)
			rows := d.Rows()
			if got := rowKeys(rows); !slices.Equal(got, tc.want) {
				t.Errorf("rows = %q, want %q", got, tc.want)
			}
			if d.Len() != len(tc.want) {
				t.Errorf("Len = %d, want %d", d.Len(), len(tc.want))
			}
			for _, r := range rows {
				g := d.Lookup(r.VIPA, r.Port)
				if !slices.Contains(nodes(g.All()), r.Node) {
					t.Errorf("Lookup(%s, %d) misses %s", r.VIPA, r.Port, r.Node)
				}
			}
		})
	}
}

func TestDPTRowValues(t *testing.T) {
	d := NewDPT()
	r := row(vipa1, 80, "a", 2)
	r.ActiveConns, r.TotalConns = 99, 99 // ignored by Set
	d.Set(r)
	d.Set(Row{VIPA: vipa1, Port: 80, Node: "b", Address: addrOf("b", 8080), Ready: 1, Weight: 5, State: Quiesced})

	crt := NewCRT()
	ta := d.Lookup(vipa1, 80).Targets()[0]
	for range 3 {
		e := crt.Acquire()
		e.Target = ta
		crt.Insert(e)
		if crt.Len() == 3 {
			crt.Remove(e)
		}
	}
	want := []Row{
		{VIPA: vipa1, Port: 80, Node: "a", Address: addrOf("a", 80), Ready: 2, Weight: 1, State: Active, ActiveConns: 2, TotalConns: 3,
			TSR: 100, EffectiveWeight: 1},
		// roundrobin weighs 1 what no destination weighs; a quiesced row
		// takes no connection
		{VIPA: vipa1, Port: 80, Node: "b", Address: addrOf("b", 8080), Ready: 1, Weight: 1, State: Quiesced, TSR: 100},
	}
	if got := d.Rows(); !reflect.DeepEqual(got, want) {
		t.Errorf("Rows =\n%+v\nwant\n%+v", got, want)
	}
}

func TestDPTLookup(t *testing.T) {
	d := NewDPT()
	if g := d.Lookup(vipa1, 80); g != nil || g.Len() != 0 || g.Targets() != nil {
		t.Fatalf("empty Lookup = %v", g)
	}
	d.Set(row(vipa1, 80, "c", 1))
	d.Set(row(vipa1, 80, "a", 1))
	q := row(vipa1, 80, "b", 1)
	q.State = Quiesced
	d.Set(q)

	g := d.Lookup(vipa1, 80)
	if got := nodes(g.Targets()); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Targets = %q, want active a, c", got)
	}
	if g.Len() != 2 {
		t.Errorf("Len = %d, want 2", g.Len())
	}
	if got := nodes(g.All()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("All = %q", got)
	}
	if g.VIPA() != vipa1 || g.Port() != 80 {
		t.Errorf("group key = %s %d", g.VIPA(), g.Port())
	}
	if d.Lookup(netip.MustParseAddr("::ffff:10.0.0.100"), 80) != g {
		t.Error("mapped VIPA does not find the IPv4 group")
	}
	if d.Lookup(vipa1, 81) != nil || d.Lookup(vipa2, 80) != nil {
		t.Error("Lookup found a group for another key")
	}

	// Quiescing every row leaves a group with no targets.
	for _, n := range []string{"a", "c"} {
		r := row(vipa1, 80, n, 1)
		r.State = Quiesced
		d.Set(r)
	}
	if g := d.Lookup(vipa1, 80); g == nil || g.Len() != 0 || len(g.All()) != 3 {
		t.Errorf("all quiesced: Lookup = %+v", g)
	}
}

func TestDPTSnapshotIsolation(t *testing.T) {
	d := NewDPT()
	d.Set(row(vipa1, 80, "a", 1))
	d.Set(row(vipa1, 80, "b", 1))
	g := d.Lookup(vipa1, 80)
	ta := g.Targets()[0]

	d.Set(row(vipa1, 80, "c", 1))
	q := row(vipa1, 80, "b", 1)
	q.State = Quiesced
	d.Set(q)
	d.Delete(vipa1, 80, "a")

	if got := nodes(g.Targets()); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("old group Targets = %q, want a, b", got)
	}
	if got := nodes(d.Lookup(vipa1, 80).Targets()); !slices.Equal(got, []string{"c"}) {
		t.Errorf("new group Targets = %q, want c", got)
	}

	d.DeleteNode("c")
	if g.Len() != 2 || d.Lookup(vipa1, 80).Len() != 0 {
		t.Error("DeleteNode changed an old group or left c in the new one")
	}

	// The removed row's Target keeps counting for connections that hold it.
	crt := NewCRT()
	e := crt.Acquire()
	e.Target = ta
	crt.Insert(e)
	if ta.ActiveConns() != 1 || ta.TotalConns() != 1 {
		t.Errorf("removed target counts %d/%d, want 1/1", ta.ActiveConns(), ta.TotalConns())
	}
	crt.Release(e)
	if ta.ActiveConns() != 0 {
		t.Errorf("active after release = %d", ta.ActiveConns())
	}
}

func TestDPTTargetIdentity(t *testing.T) {
	d := NewDPT()
	d.Set(row(vipa1, 80, "a", 1))
	ta := d.Lookup(vipa1, 80).Targets()[0]

	r := row(vipa1, 80, "a", 4)
	r.Weight = 3
	d.Set(r)
	if got := d.Lookup(vipa1, 80).Targets()[0]; got != ta {
		t.Fatal("an update of Ready/Weight replaced the Target")
	}
	if ta.Ready() != 4 || ta.ReportedWeight() != 3 || ta.State() != Active {
		t.Errorf("target = ready %d weight %d state %v", ta.Ready(), ta.ReportedWeight(), ta.State())
	}

	crt := NewCRT()
	e := crt.Acquire()
	e.Target = ta
	crt.Insert(e)

	// A new address is a new Target sharing the counters.
	r.Address = netip.MustParseAddrPort("127.0.0.9:80")
	d.Set(r)
	tb := d.Lookup(vipa1, 80).Targets()[0]
	if tb == ta || tb.Address != r.Address || ta.Address != addrOf("a", 80) {
		t.Fatalf("address change: old %v new %v", ta.Address, tb.Address)
	}
	if tb.ActiveConns() != 1 || tb.TotalConns() != 1 {
		t.Errorf("new target counts %d/%d, want 1/1", tb.ActiveConns(), tb.TotalConns())
	}
	crt.Release(e)
	if tb.ActiveConns() != 0 {
		t.Errorf("new target active after release = %d", tb.ActiveConns())
	}
}

// TestDPTPublishes: an edit that changes something publishes a new
// snapshot; one that changes nothing publishes none.
func TestDPTPublishes(t *testing.T) {
	d := NewDPT()
	v := d.snap.Load()
	step := func(name string, changed bool, f func()) {
		t.Helper()
		f()
		nv := d.snap.Load()
		if changed == (nv == v) {
			t.Errorf("%s: published %v, want %v", name, nv != v, changed)
		}
		v = nv
	}
	step("insert", true, func() { d.Set(row(vipa1, 80, "a", 1)) })
	step("same again", false, func() { d.Set(row(vipa1, 80, "a", 1)) })
	step("ready", true, func() { d.Set(row(vipa1, 80, "a", 2)) })
	step("weight 0 is 1", false, func() { r := row(vipa1, 80, "a", 2); r.Weight = 1; d.Set(r) })
	step("delete absent", false, func() { d.Delete(vipa1, 81, "a") })
	step("delete node absent", false, func() { d.DeleteNode("z") })
	step("replace", true, func() { d.Replace("a", []Row{row(vipa1, 81, "a", 1), row(vipa1, 82, "a", 1)}) })
	step("replace same", false, func() { d.Replace("a", []Row{row(vipa1, 82, "a", 1), row(vipa1, 81, "a", 1)}) })
	step("delete node", true, func() {
		if n := d.DeleteNode("a"); n != 2 {
			t.Errorf("DeleteNode = %d, want 2", n)
		}
	})
	if d.Delete(vipa1, 81, "a") {
		t.Error("Delete of a deleted row reported true")
	}
}

// TestDPTModel checks random operations against a plain map.
func TestDPTModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := NewDPT()
	model := map[string]Row{}
	vipas := []netip.Addr{vipa1, vipa2}
	names := []string{"a", "b", "c", "d"}
	randRow := func() Row {
		r := row(vipas[rng.IntN(2)], uint16(80+rng.IntN(3)), names[rng.IntN(4)], rng.IntN(3))
		r.State = State(rng.IntN(2))
		r.Weight = rng.IntN(3)
		return r
	}
	put := func(r Row) {
		if r.Ready <= 0 {
			delete(model, key3(r))
			return
		}
		r.Weight, r.TSR, r.EffectiveWeight = 1, 100, 0
		if r.State == Active {
			r.EffectiveWeight = 1
		}
		model[key3(r)] = r
	}
	for i := range 5000 {
		switch rng.IntN(10) {
		case 0:
			n := names[rng.IntN(4)]
			want := 0
			for k, r := range model {
				if r.Node == n {
					delete(model, k)
					want++
				}
			}
			if got := d.DeleteNode(n); got != want {
				t.Fatalf("op %d: DeleteNode = %d, want %d", i, got, want)
			}
		case 1:
			n := names[rng.IntN(4)]
			var rows []Row
			for range rng.IntN(4) {
				r := randRow()
				r.Address = addrOf(n, r.Port)
				rows = append(rows, r)
			}
			for k, r := range model {
				if r.Node == n {
					delete(model, k)
				}
			}
			for _, r := range rows {
				r.Node = n
				put(r)
			}
			d.Replace(n, rows)
		case 2:
			r := randRow()
			_, want := model[key3(r)]
			delete(model, key3(r))
			if got := d.Delete(r.VIPA, r.Port, r.Node); got != want {
				t.Fatalf("op %d: Delete = %v, want %v", i, got, want)
			}
		default:
			r := randRow()
			put(r)
			d.Set(r)
		}

		var want []Row
		for _, r := range model {
			want = append(want, r)
		}
		slices.SortFunc(want, func(a, b Row) int { return cmp.Compare(key3(a), key3(b)) })
		if got := d.Rows(); !slices.Equal(got, want) {
			t.Fatalf("op %d: Rows =\n%+v\nwant\n%+v", i, got, want)
		}
		if d.Len() != len(want) {
			t.Fatalf("op %d: Len = %d, want %d", i, d.Len(), len(want))
		}
		for _, r := range want {
			g := d.Lookup(r.VIPA, r.Port)
			i, ok := findNode(g.All(), r.Node)
			if !ok || g.All()[i].Row() != r {
				t.Fatalf("Lookup(%s, %d) lacks %+v", r.VIPA, r.Port, r)
			}
			if (r.State == Active) != slices.Contains(g.Targets(), g.All()[i]) {
				t.Fatalf("Targets of %s:%d wrong for %+v", r.VIPA, r.Port, r)
			}
		}
		// every key, with rows or without, by either form of its VIPA
		for _, v := range vipas {
			for port := uint16(80); port < 83; port++ {
				n := 0
				for _, r := range want {
					if r.VIPA == v && r.Port == port {
						n++
					}
				}
				g := d.Lookup(v, port)
				if len(g.All()) != n || (n == 0) != (g == nil) {
					t.Fatalf("op %d: Lookup(%s, %d) has %d rows, want %d", i, v, port, len(g.All()), n)
				}
				if m := netip.AddrFrom16(v.As16()); d.Lookup(m, port) != g {
					t.Fatalf("op %d: Lookup(%s, %d) differs from Lookup(%s, %d)", i, m, port, v, port)
				}
			}
		}
	}
}
