package vipa

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestOptionsCanonical(t *testing.T) {
	plain := Options{Destinations: []Destination{{Node: "a"}, {Node: "b", Weight: 1}}, MaxConns: 5}
	if c := plain.Canonical(); c.Destinations != nil || c.MaxConns != 5 {
		t.Errorf("plain destinations: %+v", c)
	}
	if !(&Options{}).IsZero() || (&Options{NoHealthSwitch: true}).IsZero() || (&Options{SlowStart: time.Second}).IsZero() {
		t.Error("IsZero")
	}
	w := Options{Destinations: []Destination{{Node: "a"}, {Node: "b", Weight: 3}}}
	c := w.Canonical()
	if c.Destinations[0].Weight != 1 || c.Destinations[1].Weight != 3 || w.Destinations[0].Weight != 0 {
		t.Errorf("weights: %+v (input %+v)", c, w)
	}
	if !c.Equal(&c) || c.Equal(&plain) {
		t.Error("Equal")
	}
}

// A definition's options are checked against its distmethod and destip
// list, on the wire as in a config.
func TestDefinitionOptionsChecked(t *testing.T) {
	base := func() *Definition {
		return &Definition{VIPA: netip.MustParseAddr("10.0.0.1"), Ports: PortSet{{80, 80}},
			DestIP: []string{"a", "b"}, Distmethod: RoundRobin, RoutingNode: "r"}
	}
	for _, tc := range []struct {
		name string
		edit func(*Definition)
		want string
	}{
		{"ok", func(d *Definition) { d.Options.Destinations = []Destination{{Node: "b", Weight: 3}} }, ""},
		{"not in destip", func(d *Definition) { d.Options.Destinations = []Destination{{Node: "z", Weight: 3}} }, "not in destip"},
		{"hotstandby without roles", func(d *Definition) { d.Distmethod = HotStandby }, "preferred or backup"},
		{"hotstandby", func(d *Definition) {
			d.Distmethod = HotStandby
			d.Options.Destinations = []Destination{{Node: "a", Role: RolePreferred}, {Node: "b", Role: RoleBackup, Rank: 9}}
		}, ""},
		{"switch without hotstandby", func(d *Definition) { d.Options.NoAutoSwitchBack = true }, "need distmethod hotstandby"},
		{"negative", func(d *Definition) { d.Options.MaxConns = -1 }, "negative"},
	} {
		d := base()
		tc.edit(d)
		err := d.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
