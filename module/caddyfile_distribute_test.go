package module

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestDistributeErrorsAgree: a wrong Distribution option reads the same
// from the Caddyfile (with its place) as from the JSON config.
func TestDistributeErrorsAgree(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		json  Distribute
	}{
		{"weight 101", []string{"destip a weight 101"}, Distribute{Destinations: []vipa.Destination{{Node: "a", Weight: 101}}}},
		{"rank 255", []string{"distmethod hotstandby", "destip a preferred", "destip b backup 255"},
			Distribute{Distmethod: "hotstandby", Destinations: []vipa.Destination{{Node: "a", Role: "preferred"}, {Node: "b", Role: "backup", Rank: 255}}}},
		{"no preferred", []string{"distmethod hotstandby", "destip b backup 1"},
			Distribute{Distmethod: "hotstandby", Destinations: []vipa.Destination{{Node: "b", Role: "backup", Rank: 1}}}},
		{"role without hotstandby", []string{"destip a preferred"}, Distribute{Destinations: []vipa.Destination{{Node: "a", Role: "preferred"}}}},
		{"all with a weight", []string{"destip all weight 2"}, Distribute{Destinations: []vipa.Destination{{Node: "all", Weight: 2}}}},
		{"hotstandby with all", []string{"distmethod hotstandby", "destip all"}, Distribute{Distmethod: "hotstandby", DestIP: []string{"all"}}},
		{"twice", []string{"destip a", "destip a weight 2"}, Distribute{Destinations: []vipa.Destination{{Node: "a"}, {Node: "a", Weight: 2}}}},
		{"optlocal under hotstandby", []string{"distmethod hotstandby", "destip a preferred", "optlocal"},
			Distribute{Distmethod: "hotstandby", Destinations: []vipa.Destination{{Node: "a", Role: "preferred"}}, OptLocal: true}},
		{"negative max_conns", []string{"destip all", "max_conns -1"}, Distribute{DestIP: []string{"all"}, MaxConns: -1}},
		{"switches without hotstandby", []string{"destip all", "distmethod leastconn {", "healthswitch off", "}"},
			Distribute{DestIP: []string{"all"}, Distmethod: "leastconn", HotStandby: new(HotStandby)}},
	} {
		in := "vipadynamic {\nvipadistribute 127.0.0.100 port 80 {\n" + strings.Join(tc.lines, "\n") + "\n}\n}"
		cerr := new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		d := tc.json
		d.VIPA, d.Ports = "127.0.0.100", []string{"80"}
		_, jerr := d.definition("")
		if cerr == nil || jerr == nil {
			t.Errorf("%s: Caddyfile error %v, JSON error %v", tc.name, cerr, jerr)
			continue
		}
		if msg, _, _ := strings.Cut(cerr.Error(), ", at Testfile:"); msg != jerr.Error() {
			t.Errorf("%s: Caddyfile says %q, JSON %q", tc.name, msg, jerr)
		}
	}
}

// TestDestIPOrder: destip lines, bare or with options, reach the
// definition (and /vipa/definitions) in the order they are written.
func TestDestIPOrder(t *testing.T) {
	for _, tc := range []struct {
		lines []string
		want  []string
	}{
		{[]string{"destip caddy-a weight 3", "destip caddy-b", "destip caddy-c weight 2"}, []string{"caddy-a", "caddy-b", "caddy-c"}},
		{[]string{"destip caddy-c caddy-b", "destip caddy-a weight 2"}, []string{"caddy-c", "caddy-b", "caddy-a"}},
		{[]string{"distmethod hotstandby", "destip caddy-c backup 9", "destip caddy-a preferred"}, []string{"caddy-c", "caddy-a"}},
	} {
		in := "vipadynamic {\nvipadistribute 127.0.0.100 port 80 {\n" + strings.Join(tc.lines, "\n") + "\n}\n}"
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Fatal(err)
		}
		def, err := a.Distribute[0].definition("caddy-a")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(def.DestIP, tc.want) {
			t.Errorf("%q: destip %v, want %v", tc.lines, def.DestIP, tc.want)
		}
	}
}
