package serfsync

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func TestCanonicalListeners(t *testing.T) {
	v6 := netip.MustParseAddr("::ffff:127.0.0.100") // mapped form of vipaA
	got := canonicalListeners([]Listener{
		{VIPA: vipaB, Port: 9000, Ready: 1},
		{VIPA: vipaA, Port: 8081, Ready: 1},
		{VIPA: v6, Port: 8081, Ready: 2},    // same line: Ready adds up
		{VIPA: vipaA, Port: 8080, Ready: 0}, // claims nothing
		{VIPA: vipaA, Port: 0, Ready: 1},
		{Port: 80, Ready: 1},
		{VIPA: vipaA, Port: 8082, Ready: 1 << 20}, // capped
	})
	want := []Listener{{vipaA, 8081, 3}, {vipaA, 8082, maxReady}, {vipaB, 9000, 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReportCodec(t *testing.T) {
	adv := netip.MustParseAddr("fd00::2")
	lines := canonicalListeners([]Listener{{vipaA, 8080, 1}, {vipaA, 8443, 2}, {netip.MustParseAddr("fd00::100"), 80, 7}})
	body := encodeReport(adv, lines)
	gotAdv, got, err := decodeReport(body)
	if err != nil || gotAdv != adv || !slices.Equal(got, lines) {
		t.Fatalf("round trip: %v %v %v", gotAdv, got, err)
	}
	if b := encodeReport(adv, nil); b != nil {
		t.Fatalf("empty report encodes as %x", b)
	}
	bad := map[string][]byte{
		"trailing byte":  append(slices.Clone(body), 0),
		"truncated":      body[:len(body)-1],
		"ports unsorted": encodeReport(adv, []Listener{{vipaA, 8443, 1}, {vipaA, 8080, 1}}),
		"VIPA repeated":  encodeReport(adv, []Listener{{vipaA, 80, 1}, {vipaB, 80, 1}, {vipaA, 81, 1}}),
		"version":        append([]byte{9}, body[1:]...),
		"mapped address": {1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, 1, 4, 127, 0, 0, 100, 1, 0, 80, 1},
	}
	for name, b := range bad {
		if _, _, err := decodeReport(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var many []Listener
	for p := range maxReportLines + 1 {
		many = append(many, Listener{VIPA: netip.AddrFrom4([4]byte{10, 0, 0, byte(p / 60000)}), Port: uint16(1 + p%60000), Ready: 1})
	}
	if _, _, err := decodeReport(encodeReport(adv, many)); !errors.Is(err, errSize) {
		t.Errorf("oversized report: %v", err)
	}
	if n := boundedLines(many); n != maxReportLines {
		t.Errorf("boundedLines = %d", n)
	}
}

func TestDefinitionsCodec(t *testing.T) {
	in := []*Definition{
		def(vipaB.String(), "x", ports("9000-9009"), "caddy-b", "10.0.0.3"),
		def(vipaA.String(), "x", ports("8443", "8080", "8081")),
		def(vipaA.String(), "x", ports("1")), // repeated VIPA: the first stays
	}
	c := canonicalDefs(in, "me")
	if len(c) != 2 || c[0].VIPA != vipaA || c[0].RoutingNode != "me" || !slices.Equal(c[0].Ports, ports("8080-8081", "8443")) {
		t.Fatalf("canonical: %+v", c)
	}
	got, err := decodeDefs(encodeDefs(c), "me")
	if err != nil || len(got) != 2 || !sameDefinition(got[0], c[0]) || !sameDefinition(got[1], c[1]) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	unmerged := &Definition{VIPA: vipaA, Ports: PortSet{{80, 80}, {81, 81}}, DestIP: []string{DestAll}}
	if _, err := decodeDefs(encodeDefs([]*Definition{unmerged}), "me"); err == nil {
		t.Error("accepted unmerged port ranges")
	}
	noDest := &Definition{VIPA: vipaA, Ports: ports("80")}
	if _, err := decodeDefs(encodeDefs([]*Definition{noDest}), "me"); err == nil {
		t.Error("accepted an empty destip list")
	}
}

func TestDigestTag(t *testing.T) {
	d := digest{gen: 0xdeadbeef, seq: 42, hash: emptyReportHash}
	got, ok := parseDigest(d.String())
	if !ok || got != d {
		t.Fatalf("%q parses as %v %v", d.String(), got, ok)
	}
	for _, s := range []string{"", "1.2", "1.2.3.4", "x.1.1", "1.-1.1", "01.1.1", "1.1.+1", "1.99999999999999999999.1"} {
		if _, ok := parseDigest(s); ok {
			t.Errorf("accepted %q", s)
		}
	}
	if !(digest{1, 5, 9}).covers(digest{1, 4, 8}) || (digest{1, 5, 9}).covers(digest{2, 1, 1}) || (digest{1, 3, 9}).covers(digest{1, 4, 9}) {
		t.Error("covers")
	}
}

// TestTagsFit checks the worst case against serf's 512-byte tag limit.
func TestTagsFit(t *testing.T) {
	a, err := New(Config{NodeName: "n", BindAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		Advertise: netip.MustParseAddr("fd00:1234:5678:9abc:def0:1234:5678:9abc")})
	if err != nil {
		t.Fatal(err)
	}
	top := digest{^uint64(0), ^uint64(0), ^uint64(0)}
	a.own.Store(&ownState{report: report{digest: top}, defs: defsVersion{digest: top}})
	size := 0
	for k, v := range a.tags() {
		size += len(k) + len(v) + 4 // msgpack: map entry headers
	}
	if size > 200 {
		t.Fatalf("tags take %d bytes", size)
	}
}
