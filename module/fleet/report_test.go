package fleet

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func known(v, node string, owner bool, dest ...string) serfsync.KnownDefinition {
	return serfsync.KnownDefinition{
		Definition: vipa.Definition{
			VIPA: netip.MustParseAddr(v), Ports: vipa.PortSet{{Lo: 80, Hi: 80}, {Lo: 8000, Hi: 8009}},
			DestIP: dest, Distmethod: vipa.RoundRobin, RoutingNode: node,
		},
		Owner: owner,
	}
}

func snapshot(sockets map[string]int) listenwatch.Snapshot {
	s := make(listenwatch.Snapshot)
	for ap, n := range sockets {
		s[netip.MustParseAddrPort(ap)] = n
	}
	return s
}

// line is a report line in short: VIPA, port, ready.
type line struct {
	vipa  string
	port  uint16
	ready int
}

func lines(t *testing.T, adv string, got []vipa.Listener) []line {
	t.Helper()
	var out []line
	for _, l := range got {
		if l.Address != netip.AddrPortFrom(netip.MustParseAddr(adv), l.Port) {
			t.Errorf("line %v: address %v, want the advertise address with the port", l, l.Address)
		}
		out = append(out, line{l.VIPA.String(), l.Port, l.Ready})
	}
	return out
}

func TestLocalReport(t *testing.T) {
	v4defs := []serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "all")}
	v6defs := []serfsync.KnownDefinition{known("2001:db8::100", "caddy-a", true, "all")}
	for _, tc := range []struct {
		name    string
		adv     string
		defs    []serfsync.KnownDefinition
		sockets map[string]int
		want    []line
	}{
		{"v4 wildcard", "10.0.0.11", v4defs, map[string]int{"0.0.0.0:80": 1}, []line{{"10.0.0.100", 80, 1}}},
		// A snapshot lists a dual-stack [::] socket under 0.0.0.0 too; one
		// under [::] alone is V6ONLY and refuses IPv4.
		{"dual-stack wildcard serves v4", "10.0.0.11", v4defs, map[string]int{"[::]:80": 1, "0.0.0.0:80": 1}, []line{{"10.0.0.100", 80, 1}}},
		{"v6only wildcard does not serve v4", "10.0.0.11", v4defs, map[string]int{"[::]:80": 1}, nil},
		{"advertise address", "10.0.0.11", v4defs, map[string]int{"10.0.0.11:8005": 1}, []line{{"10.0.0.100", 8005, 1}}},
		{"VIPA never", "10.0.0.11", v4defs, map[string]int{"10.0.0.100:80": 1}, nil},
		{"other address", "10.0.0.11", v4defs, map[string]int{"10.0.0.12:80": 1, "127.0.0.1:80": 1}, nil},
		{"port not distributed", "10.0.0.11", v4defs, map[string]int{"0.0.0.0:81": 1, "0.0.0.0:8010": 1}, nil},
		{"SO_REUSEPORT and every kind counted", "10.0.0.11", v4defs,
			map[string]int{"0.0.0.0:80": 2, "[::]:80": 1, "10.0.0.11:80": 3, "10.0.0.100:80": 5}, []line{{"10.0.0.100", 80, 5}}},
		{"v6 advertise: v6 wildcard", "2001:db8::11", v6defs, map[string]int{"[::]:80": 1}, []line{{"2001:db8::100", 80, 1}}},
		{"v6 advertise: v4 wildcard does not count", "2001:db8::11", v6defs, map[string]int{"0.0.0.0:80": 1}, nil},
		{"v6 advertise address", "2001:db8::11", v6defs, map[string]int{"[2001:db8::11]:80": 2}, []line{{"2001:db8::100", 80, 2}}},
		{"v6 VIPA never", "2001:db8::11", v6defs, map[string]int{"[2001:db8::100]:80": 1}, nil},
		{"not a candidate", "10.0.0.11", []serfsync.KnownDefinition{known("10.0.0.100", "caddy-r", true, "caddy-b")},
			map[string]int{"0.0.0.0:80": 1}, nil},
		{"candidate by address", "10.0.0.11", []serfsync.KnownDefinition{known("10.0.0.100", "caddy-r", true, "10.0.0.11")},
			map[string]int{"0.0.0.0:80": 1}, []line{{"10.0.0.100", 80, 1}}},
		{"conflict loser ignored", "10.0.0.11", []serfsync.KnownDefinition{known("10.0.0.100", "caddy-z", false, "all")},
			map[string]int{"0.0.0.0:80": 1}, nil},
		{"routing node is its own candidate", "10.0.0.11", []serfsync.KnownDefinition{known("10.0.0.100", "caddy-a", true, "caddy-b")},
			map[string]int{"0.0.0.0:80": 1}, []line{{"10.0.0.100", 80, 1}}},
		{"two VIPAs, sorted", "10.0.0.11", []serfsync.KnownDefinition{known("10.0.0.101", "caddy-r", true, "all"), known("10.0.0.100", "caddy-r", true, "all")},
			map[string]int{"0.0.0.0:8001": 1, "0.0.0.0:80": 1},
			[]line{{"10.0.0.100", 80, 1}, {"10.0.0.100", 8001, 1}, {"10.0.0.101", 80, 1}, {"10.0.0.101", 8001, 1}}},
	} {
		got := lines(t, tc.adv, LocalReport(snapshot(tc.sockets), "caddy-a", netip.MustParseAddr(tc.adv), nil, tc.defs))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: report %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestProbeAddrs(t *testing.T) {
	known := func(v, dest, routing string, owner bool, ports ...vipa.PortRange) serfsync.KnownDefinition {
		return serfsync.KnownDefinition{Owner: owner, Definition: vipa.Definition{
			VIPA: netip.MustParseAddr(v), Ports: vipa.NewPortSet(ports),
			DestIP: []string{dest}, Distmethod: vipa.RoundRobin, RoutingNode: routing,
		}}
	}
	port := func(lo, hi uint16) vipa.PortRange { return vipa.PortRange{Lo: lo, Hi: hi} }
	defs := []serfsync.KnownDefinition{
		known("127.0.0.100", "all", "caddy-a", true, port(8080, 8080), port(9000, 9002)),
		known("127.0.0.101", "127.0.0.2", "caddy-a", true, port(8080, 8080), port(7000, 7000)), // by address; 8080 again
		known("127.0.0.102", "caddy-c", "caddy-a", true, port(6000, 6000)),                     // not a candidate
		known("127.0.0.103", "all", "caddy-a", false, port(5000, 5000)),                        // a conflict's loser
		known("127.0.0.104", "all", "caddy-b", true, port(4000, 4000)),                         // routed here: candidate
		known("127.0.0.2", "all", "caddy-a", true, port(3000, 3000)),                           // the VIPA is the advertise address
	}
	all := known("127.0.0.105", "all", "caddy-a", true, vipa.AllPortsBut(nil)...) // port all: nothing to probe
	all.All = true
	defs = append(defs, all)
	var got []string
	for _, ap := range ProbeAddrs("caddy-b", netip.MustParseAddr("127.0.0.2"), defs) {
		got = append(got, ap.String())
	}
	slices.Sort(got)
	want := []string{"127.0.0.2:4000", "127.0.0.2:7000", "127.0.0.2:8080", "127.0.0.2:9000", "127.0.0.2:9001", "127.0.0.2:9002"}
	if !slices.Equal(got, want) {
		t.Fatalf("probed %v, want %v", got, want)
	}
}

// TestLocalReportPortAll: a port all definition gets every port with a
// listener that counts, but the node's reserved ports and excluded ones.
func TestLocalReportPortAll(t *testing.T) {
	d := known("10.0.0.100", "caddy-r", true, "all")
	d.All, d.Ports = true, vipa.AllPortsBut(vipa.PortSet{{Lo: 22, Hi: 22}})
	sockets := map[string]int{"0.0.0.0:22": 1, "0.0.0.0:2019": 1, "10.0.0.11:7946": 1, "10.0.0.11:40001": 2, "[::]:5": 1, "0.0.0.0:5": 1, "10.0.0.100:80": 1}
	got := lines(t, "10.0.0.11", LocalReport(snapshot(sockets), "caddy-a", netip.MustParseAddr("10.0.0.11"), []uint16{2019, 7946}, []serfsync.KnownDefinition{d}))
	want := []line{{"10.0.0.100", 5, 1}, {"10.0.0.100", 40001, 2}}
	if !slices.Equal(got, want) {
		t.Fatalf("report %v, want %v", got, want)
	}
	// Reserved ports stay in a port list's report: only port all skips them.
	d.All, d.Ports = false, vipa.PortSet{{Lo: 2019, Hi: 2019}}
	got = lines(t, "10.0.0.11", LocalReport(snapshot(sockets), "caddy-a", netip.MustParseAddr("10.0.0.11"), []uint16{2019}, []serfsync.KnownDefinition{d}))
	if want := []line{{"10.0.0.100", 2019, 1}}; !slices.Equal(got, want) {
		t.Fatalf("port list report %v, want %v", got, want)
	}
}
