package module

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestDistributeOptions(t *testing.T) {
	off := false
	d := Distribute{
		VIPA: "127.0.0.100", Ports: []string{"8080"}, Distmethod: "hotstandby",
		Destinations: []vipa.Destination{
			{Node: "caddy-a", Role: vipa.RolePreferred},
			{Node: "caddy-b", Role: vipa.RoleBackup, Rank: 100},
		},
		TimedAffinity: caddy.Duration(time.Minute), MaxConns: 10, SlowStart: caddy.Duration(time.Second),
		HotStandby: &HotStandby{AutoSwitchBack: &off},
	}
	def, err := d.definition("caddy-r")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(def.DestIP, []string{"caddy-a", "caddy-b"}) {
		t.Errorf("destip %v", def.DestIP)
	}
	p := tables.PolicyOf(def, "caddy-r")
	if p.Distmethod != "hotstandby" || p.AutoSwitchBack || !p.HealthSwitch || p.LocalNode != "" ||
		p.MaxConns != 10 || p.TimedAffinity != time.Minute || p.SlowStart != time.Second || len(p.Destinations) != 2 {
		t.Errorf("policy %+v", p)
	}
	// optlocal names the routing node's own row; under hotstandby, which a
	// config refuses, a peer's definition that carries it changes nothing.
	withLocal := *def
	withLocal.Options.OptLocal = true
	if p := tables.PolicyOf(&withLocal, "caddy-r"); p.LocalNode != "" {
		t.Errorf("hotstandby with optlocal: local node %q, want none", p.LocalNode)
	}
	withLocal.Distmethod = "leastconn"
	if p := tables.PolicyOf(&withLocal, "caddy-r"); p.LocalNode != "caddy-r" {
		t.Errorf("leastconn with optlocal: local node %q, want caddy-r", p.LocalNode)
	}

	for _, tc := range []struct {
		name string
		edit func(*Distribute)
		want string
	}{
		{"hotstandby without a preferred", func(d *Distribute) { d.Destinations = d.Destinations[1:] }, "exactly one preferred"},
		{"hotstandby with destip all", func(d *Distribute) { d.DestIP = []string{"all"}; d.Destinations = nil }, "destip all"},
		{"roles without hotstandby", func(d *Distribute) { d.Distmethod = "roundrobin"; d.HotStandby = nil }, "needs distmethod hotstandby"},
		{"hotstandby options without hotstandby", func(d *Distribute) {
			d.Distmethod, d.Destinations = "leastconn", []vipa.Destination{{Node: "a", Weight: 2}}
		}, "hotstandby options need"},
		{"weight out of range", func(d *Distribute) {
			d.Distmethod, d.HotStandby, d.Destinations = "roundrobin", nil, []vipa.Destination{{Node: "a", Weight: 101}}
		}, "weight 101"},
		{"negative max_conns", func(d *Distribute) { d.MaxConns = -1 }, "max_conns -1"},
		{"optlocal under hotstandby", func(d *Distribute) { d.OptLocal = true }, "optlocal does not apply to hotstandby"},
		{"unknown distmethod", func(d *Distribute) { d.Distmethod = "random" }, `"random"`},
	} {
		bad := d
		tc.edit(&bad)
		if _, err := bad.definition("caddy-r"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestConfiguredWeights: the weights of a definition's destinations reach
// the DPT and the handler's choices.
func TestConfiguredWeights(t *testing.T) {
	vln := listenVIPA(t)
	h, f, vip := testHandler(t, vln)
	d := Distribute{VIPA: vip.Addr().String(), Ports: []string{"1-65535"}, Destinations: []vipa.Destination{
		{Node: "a", Weight: 3}, {Node: "b"},
	}}
	def, err := d.definition("a")
	if err != nil {
		t.Fatal(err)
	}
	f.Configure(fleet.Config{Node: "a", Defs: []*vipa.Definition{def}, Listeners: vipa.ListenersOff})
	_, la := backend(t, "A")
	_, lb := backend(t, "B")
	setRow(f, tables.Row{VIPA: vip.Addr(), Port: vip.Port(), Node: "a", Address: la, Ready: 1})
	setRow(f, tables.Row{VIPA: vip.Addr(), Port: vip.Port(), Node: "b", Address: lb, Ready: 1})
	var got []string
	for range 8 {
		got = append(got, greeting(t, h, vln))
	}
	if s := strings.Join(got, ""); s != "AABAAABA" {
		t.Errorf("weights 3:1 routed %s, want AABAAABA", s)
	}
	for _, r := range f.DPT.Rows() {
		if want := map[string]int{"a": 3, "b": 1}[r.Node]; r.Weight != want {
			t.Errorf("row %s weight %d, want %d", r.Node, r.Weight, want)
		}
	}
	waitCRTEmpty(t, f)
}
