package vipa

import (
	"slices"
	"strings"
	"testing"
)

func TestParsePortRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PortRange
		err  string
	}{
		{"8080", PortRange{8080, 8080}, ""},
		{"1", PortRange{1, 1}, ""},
		{"65535", PortRange{65535, 65535}, ""},
		{"9000-9009", PortRange{9000, 9009}, ""},
		{"80-80", PortRange{80, 80}, ""},
		{"0", PortRange{}, `invalid port "0": want 1-65535`},
		{"65536", PortRange{}, `invalid port "65536"`},
		{"-1", PortRange{}, `invalid port ""`},
		{"90-80", PortRange{}, `port range "90-80": end is below start`},
		{"80-", PortRange{}, `invalid port ""`},
		{"http", PortRange{}, `invalid port "http"`},
		{"+80", PortRange{}, `invalid port "+80"`},
	} {
		got, err := ParsePortRange(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePortRange(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, _ := ParsePortRange(got.String()); back != got {
			t.Errorf("%v does not read back: %q", got, got.String())
		}
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // Strings joined by spaces
		err  string
	}{
		{[]string{"8443", "8080"}, "8080 8443", ""},
		{[]string{"8080", "8081", "8082-8090"}, "8080-8090", ""},
		{[]string{"10-20", "15-30", "31"}, "10-31", ""},
		{[]string{"10-20", "5"}, "5 10-20", ""},
		{nil, "", "port needs at least one port or range"},
		{[]string{"all"}, "", "port all cannot be mixed"},
		{[]string{"80", "all"}, "", "port all cannot be mixed"},
		{[]string{"80", "0"}, "", `invalid port "0"`},
	} {
		got, err := ParsePorts(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePorts(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got.Strings(), " ") != tc.want {
			t.Errorf("ParsePorts(%q) = %v, %v; want %s", tc.in, got.Strings(), err, tc.want)
		}
	}
	// Every other port of 1..2*MaxPortRanges+2: one range too many.
	var many []string
	for p := 1; p <= 2*(MaxPortRanges+1); p += 2 {
		many = append(many, PortRange{uint16(p), uint16(p)}.String())
	}
	if _, err := ParsePorts(many); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("ParsePorts(%d ranges) = %v; want a refusal", len(many), err)
	}
	if _, err := ParsePorts(many[:MaxPortRanges]); err != nil {
		t.Errorf("ParsePorts(%d ranges) = %v", MaxPortRanges, err)
	}
}

func TestParsePortSpec(t *testing.T) {
	for _, tc := range []struct {
		list, exclude []string
		all           bool
		ports, excl   string
		err           string
	}{
		{list: []string{"all"}, all: true},
		{list: []string{"all"}, exclude: []string{"22", "8000-8100"}, all: true, excl: "22 8000-8100"},
		{list: []string{"80", "443"}, ports: "80 443"},
		{list: []string{"all", "80"}, err: "port all cannot be mixed"},
		{list: []string{"80"}, exclude: []string{"22"}, err: "exclude needs port all"},
		{list: []string{"all"}, exclude: []string{"0"}, err: `exclude: invalid port "0"`},
		{err: "port needs at least one"},
	} {
		ports, all, excl, err := ParsePortSpec(tc.list, tc.exclude)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePortSpec(%q, %q) = %v; want error %q", tc.list, tc.exclude, err, tc.err)
			}
			continue
		}
		if err != nil || all != tc.all || strings.Join(ports.Strings(), " ") != tc.ports || strings.Join(excl.Strings(), " ") != tc.excl {
			t.Errorf("ParsePortSpec(%q, %q) = %v %v %v %v", tc.list, tc.exclude, ports, all, excl, err)
		}
	}
}

func TestPortSetContains(t *testing.T) {
	s := NewPortSet([]PortRange{{9000, 9009}, {80, 80}, {443, 444}})
	for port, want := range map[uint16]bool{
		79: false, 80: true, 81: false, 442: false, 443: true, 444: true, 445: false,
		8999: false, 9000: true, 9005: true, 9009: true, 9010: false, 0: false, 65535: false,
	} {
		if got := s.Contains(port); got != want {
			t.Errorf("Contains(%d) = %v, want %v", port, got, want)
		}
	}
	if got := (PortSet(nil)).Contains(80); got {
		t.Error("an empty set contains 80")
	}
	if got := NewPortSet([]PortRange{{5, 7}, {1, 2}}).Ports(); !slices.Equal(got, []int{1, 2, 5, 6, 7}) {
		t.Errorf("Ports() = %v", got)
	}
}

func TestAllPortsBut(t *testing.T) {
	for _, tc := range []struct{ excl, want string }{
		{"", "1-65535"},
		{"22", "1-21 23-65535"},
		{"1 65535", "2-65534"},
		{"1-10 20-30 65000-65535", "11-19 31-64999"},
		{"1-65535", ""},
	} {
		var ex PortSet
		if tc.excl != "" {
			var err error
			if ex, err = ParsePorts(strings.Fields(tc.excl)); err != nil {
				t.Fatal(err)
			}
		}
		got := AllPortsBut(ex)
		if s := strings.Join(got.Strings(), " "); s != tc.want {
			t.Errorf("AllPortsBut(%s) = %q, want %q", tc.excl, s, tc.want)
		}
		if s := strings.Join(got.Excluded().Strings(), " "); s != strings.Join(ex.Strings(), " ") {
			t.Errorf("Excluded of AllPortsBut(%s) = %q", tc.excl, s)
		}
	}
}
