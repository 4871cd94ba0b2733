package vipa

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidateNodeName(t *testing.T) {
	for _, tc := range []struct {
		name, err string
	}{
		{"caddy-a", ""},
		{"node.example.com", ""},
		{"A1", ""},
		{strings.Repeat("n", MaxNodeName), ""},
		{"", "node name is empty"},
		{strings.Repeat("n", MaxNodeName+1), "node name is 129 characters: at most 128"},
		{strings.Repeat("n", 200), "node name is 200 characters"},
		{"caddy a", `node name "caddy a": want letters, digits, '-' and '.'`},
		{"caddy_a", "want letters"},
		{"café", "want letters"},
	} {
		err := ValidateNodeName(tc.name)
		if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("ValidateNodeName(%.20q) = %v; want %q", tc.name, err, tc.err)
		}
	}
}

func TestValidateLabel(t *testing.T) {
	for label, ok := range map[string]bool{
		"":                       true,
		"my-fleet":               true,
		strings.Repeat("l", 255): true,
		strings.Repeat("l", 256): false,
		strings.Repeat("l", 300): false,
	} {
		if err := ValidateLabel(label); (err == nil) != ok {
			t.Errorf("ValidateLabel(%d bytes) = %v", len(label), err)
		}
	}
}

func TestParseVIPAAndAdvertise(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" means refused
	}{
		{"127.0.0.100", "127.0.0.100"},
		{"10.0.0.100", "10.0.0.100"},
		{"::ffff:10.0.0.1", "10.0.0.1"},
		{"2001:db8::1", "2001:db8::1"},
		{"::1", "::1"},
		{"0.0.0.0", ""},
		{"::", ""},
		{"224.0.0.1", ""},
		{"ff02::1", ""},
		{"255.255.255.255", ""},
		{"fe80::1%eth0", ""},
		{"300.1.2.3", ""},
		{"caddy-a.example", ""},
		{"", ""},
	} {
		for what, parse := range map[string]func(string) (netip.Addr, error){"VIPA": ParseVIPA, "advertise address": ParseAdvertise} {
			got, err := parse(tc.in)
			switch {
			case tc.want == "" && (err == nil || !strings.Contains(err.Error(), "invalid "+what+" \""+tc.in+"\"")):
				t.Errorf("%s %q: got %v, %v; want a refusal naming it", what, tc.in, got, err)
			case tc.want != "" && (err != nil || got.String() != tc.want):
				t.Errorf("%s %q: got %v, %v; want %s", what, tc.in, got, err, tc.want)
			}
		}
	}
}
