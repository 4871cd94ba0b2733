package vipa

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNewDefinition(t *testing.T) {
	for _, tc := range []struct {
		name              string
		vipa              string
		ports, dest       []string
		method, node, err string
	}{
		{"inline", "127.0.0.100", []string{"8080", "8443"}, []string{"all"}, "", "caddy-a", ""},
		{"no routing node yet", "127.0.0.100", []string{"8080"}, []string{"caddy-b"}, "roundrobin", "", ""},
		{"bad VIPA", "300.1.2.3", []string{"80"}, []string{"all"}, "", "a", `invalid VIPA "300.1.2.3": want a unicast IP address`},
		{"multicast VIPA", "224.0.0.1", []string{"80"}, []string{"all"}, "", "a", `invalid VIPA "224.0.0.1"`},
		{"wildcard VIPA", "::", []string{"80"}, []string{"all"}, "", "a", `invalid VIPA "::"`},
		{"no port", "127.0.0.100", nil, []string{"all"}, "", "a", "missing port"},
		{"port 0", "127.0.0.100", []string{"0"}, []string{"all"}, "", "a", `invalid port "0": want 1-65535`},
		{"no destip", "127.0.0.100", []string{"80"}, nil, "", "a", "missing destip"},
		{"empty destip", "127.0.0.100", []string{"80"}, []string{}, "", "a", "missing destip"},
		{"all with others", "127.0.0.100", []string{"80"}, []string{"all", "b"}, "", "a", "destip all excludes other destinations"},
		{"long destip", "127.0.0.100", []string{"80"}, []string{strings.Repeat("d", 300)}, "", "a", "node name is 300 characters"},
		{"unknown distmethod", "127.0.0.100", []string{"80"}, []string{"all"}, "random", "a", `unknown distmethod "random"`},
		{"bad routing node", "127.0.0.100", []string{"80"}, []string{"all"}, "", "caddy a", `routing node: node name "caddy a"`},
	} {
		d, err := NewDefinition(tc.vipa, tc.ports, nil, tc.dest, tc.method, tc.node)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: NewDefinition = %v; want %q", tc.name, err, tc.err)
			continue
		}
		if err == nil && (d.Distmethod == "" || d.VIPA.String() != tc.vipa || len(d.Ports) == 0) {
			t.Errorf("%s: NewDefinition = %+v", tc.name, d)
		}
	}
}

func TestDefinitionValidate(t *testing.T) {
	good := func() *Definition {
		return &Definition{VIPA: netip.MustParseAddr("10.0.0.100"), Ports: PortSet{{80, 80}}, DestIP: []string{"all"}, Distmethod: RoundRobin, RoutingNode: "caddy-a"}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a good definition: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Definition)
		err    string
	}{
		{"zero VIPA", func(d *Definition) { d.VIPA = netip.Addr{} }, "invalid VIPA"},
		{"multicast VIPA", func(d *Definition) { d.VIPA = netip.MustParseAddr("ff02::1") }, "invalid VIPA"},
		{"no ports", func(d *Definition) { d.Ports = nil }, "missing port"},
		{"too many ranges", func(d *Definition) { d.Ports = make(PortSet, MaxPortRanges+1) }, "at most 4096"},
		{"long destip", func(d *Definition) { d.DestIP = []string{strings.Repeat("x", 300)} }, "node name is 300 characters"},
		{"no distmethod", func(d *Definition) { d.Distmethod = "" }, "missing distmethod"},
		{"unknown distmethod", func(d *Definition) { d.Distmethod = strings.Repeat("m", 65) }, "unknown distmethod"},
		{"no routing node", func(d *Definition) { d.RoutingNode = "" }, "routing node: node name is empty"},
		{"long routing node", func(d *Definition) { d.RoutingNode = strings.Repeat("r", 129) }, "routing node: node name is 129"},
	} {
		d := good()
		tc.mutate(d)
		if err := d.Validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Validate = %v; want %q", tc.name, err, tc.err)
		}
	}
}

func TestCandidate(t *testing.T) {
	adv := netip.MustParseAddr("10.0.0.12")
	for _, tc := range []struct {
		dest []string
		node string
		adv  netip.Addr
		want bool
	}{
		{[]string{"all"}, "caddy-x", adv, true},
		{[]string{"caddy-b"}, "caddy-b", adv, true},
		{[]string{"caddy-b"}, "caddy-c", adv, false},
		{[]string{"10.0.0.12"}, "caddy-c", adv, true},
		{[]string{"10.0.0.12"}, "caddy-c", netip.MustParseAddr("::ffff:10.0.0.12"), true},
		{[]string{"10.0.0.13"}, "caddy-c", adv, false},
		{[]string{"10.0.0.12"}, "caddy-c", netip.Addr{}, false},
		{[]string{"caddy-b"}, "caddy-a", adv, true}, // the routing node
	} {
		d := &Definition{DestIP: tc.dest, RoutingNode: "caddy-a"}
		if got := d.Candidate(tc.node, tc.adv); got != tc.want {
			t.Errorf("destip %v: Candidate(%s, %v) = %v, want %v", tc.dest, tc.node, tc.adv, got, tc.want)
		}
	}
}
