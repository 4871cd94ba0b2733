package vipa

import (
	"net/netip"
	"testing"
)

func TestCounts(t *testing.T) {
	const (
		v4adv  = "10.0.0.11"
		v6adv  = "2001:db8::11"
		v4vipa = "10.0.0.100"
		v6vipa = "2001:db8::100"
	)
	for _, tc := range []struct {
		sock, adv, vipa string
		want            bool
	}{
		// An IPv4 advertise address.
		{"0.0.0.0", v4adv, v4vipa, true},
		{"::", v4adv, v4vipa, false}, // IPv6 only: a dual-stack socket is listed under 0.0.0.0 too
		{v4adv, v4adv, v4vipa, true},
		{"::ffff:" + v4adv, v4adv, v4vipa, true},
		{v4vipa, v4adv, v4vipa, false},
		{"10.0.0.12", v4adv, v4vipa, false},
		{"127.0.0.1", v4adv, v4vipa, false},
		{v6adv, v4adv, v4vipa, false},
		// An IPv6 advertise address.
		{"::", v6adv, v6vipa, true},
		{v6adv, v6adv, v6vipa, true},
		{"0.0.0.0", v6adv, v6vipa, false}, // an IPv4 socket cannot be dialed at an IPv6 address
		{v6vipa, v6adv, v6vipa, false},
		{"::1", v6adv, v6vipa, false},
		{v4adv, v6adv, v6vipa, false},
		// The VIPA never counts, even when it is the advertise address.
		{v4adv, v4adv, v4adv, false},
		// No advertise address: nothing counts.
		{"0.0.0.0", "", v4vipa, false},
	} {
		var adv netip.Addr
		if tc.adv != "" {
			adv = netip.MustParseAddr(tc.adv)
		}
		if got := Counts(netip.MustParseAddr(tc.sock), adv, netip.MustParseAddr(tc.vipa)); got != tc.want {
			t.Errorf("Counts(socket %s, advertise %s, VIPA %s) = %v, want %v", tc.sock, tc.adv, tc.vipa, got, tc.want)
		}
	}
}
