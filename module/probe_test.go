package module

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

func TestProbeAddrs(t *testing.T) {
	known := func(vipa, dest, routing string, owner bool, ports ...serfsync.PortRange) serfsync.KnownDefinition {
		return serfsync.KnownDefinition{Owner: owner, Definition: serfsync.Definition{
			VIPA: netip.MustParseAddr(vipa), Ports: serfsync.NewPortSet(ports),
			DestIP: []string{dest}, Distmethod: "roundrobin", RoutingNode: routing,
		}}
	}
	port := func(lo, hi uint16) serfsync.PortRange { return serfsync.PortRange{Lo: lo, Hi: hi} }
	f := &fleet{cfg: config{node: "caddy-b", advertise: netip.MustParseAddr("127.0.0.2")}}
	f.known = []serfsync.KnownDefinition{
		known("127.0.0.100", "all", "caddy-a", true, port(8080, 8080), port(9000, 9002)),
		known("127.0.0.101", "127.0.0.2", "caddy-a", true, port(8080, 8080), port(7000, 7000)), // by address; 8080 again
		known("127.0.0.102", "caddy-c", "caddy-a", true, port(6000, 6000)),                     // not a candidate
		known("127.0.0.103", "all", "caddy-a", false, port(5000, 5000)),                        // a conflict's loser
		known("127.0.0.104", "all", "caddy-b", true, port(4000, 4000)),                         // routed here: candidate
		known("127.0.0.2", "all", "caddy-a", true, port(3000, 3000)),                           // the VIPA is the advertise address
	}
	var got []string
	for _, ap := range f.probeAddrs() {
		got = append(got, ap.String())
	}
	slices.Sort(got)
	want := []string{"127.0.0.2:4000", "127.0.0.2:7000", "127.0.0.2:8080", "127.0.0.2:9000", "127.0.0.2:9001", "127.0.0.2:9002"}
	if !slices.Equal(got, want) {
		t.Fatalf("probed %v, want %v", got, want)
	}
}
