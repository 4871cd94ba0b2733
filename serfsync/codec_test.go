package serfsync

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestCanonicalListeners(t *testing.T) {
	v6 := netip.MustParseAddr("::ffff:127.0.0.100") // mapped form of vipaA
	got := canonicalListeners([]vipa.Listener{
		{VIPA: vipaB, Port: 9000, Ready: 1},
		{VIPA: vipaA, Port: 8081, Ready: 1},
		{VIPA: v6, Port: 8081, Ready: 2},    // same line: Ready adds up
		{VIPA: vipaA, Port: 8080, Ready: 0}, // claims nothing
		{VIPA: vipaA, Port: 0, Ready: 1},
		{Port: 80, Ready: 1},
		{VIPA: vipaA, Port: 8082, Ready: 1 << 20}, // capped
	})
	want := []vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: 3}, {VIPA: vipaA, Port: 8082, Ready: vipa.MaxReady}, {VIPA: vipaB, Port: 9000, Ready: 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReportCodec(t *testing.T) {
	adv := netip.MustParseAddr("fd00::2")
	lines := canonicalListeners([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}, {VIPA: vipaA, Port: 8443, Ready: 2}, {VIPA: netip.MustParseAddr("fd00::100"), Port: 80, Ready: 7}})
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
		"ports unsorted": encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 8443, Ready: 1}, {VIPA: vipaA, Port: 8080, Ready: 1}}),
		"VIPA repeated":  encodeReport(adv, []vipa.Listener{{VIPA: vipaA, Port: 80, Ready: 1}, {VIPA: vipaB, Port: 80, Ready: 1}, {VIPA: vipaA, Port: 81, Ready: 1}}),
		"version":        append([]byte{9}, body[1:]...),
		"mapped address": {1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, 1, 4, 127, 0, 0, 100, 1, 0, 80, 1},
	}
	for name, b := range bad {
		if _, _, err := decodeReport(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var many []vipa.Listener
	for p := range maxReportLines + 1 {
		many = append(many, vipa.Listener{VIPA: netip.AddrFrom4([4]byte{10, 0, 0, byte(p / 60000)}), Port: uint16(1 + p%60000), Ready: 1})
	}
	if _, _, err := decodeReport(encodeReport(adv, many)); !errors.Is(err, errSize) {
		t.Errorf("oversized report: %v", err)
	}
	if n := boundedLines(many); n != maxReportLines {
		t.Errorf("boundedLines = %d", n)
	}
}

func TestDefinitionsCodec(t *testing.T) {
	in := []*vipa.Definition{
		def(vipaB.String(), "x", ports("9000-9009"), "caddy-b", "10.0.0.3"),
		def(vipaA.String(), "x", ports("8443", "8080", "8081")),
		def(vipaA.String(), "x", ports("1")), // repeated VIPA: the first stays
	}
	c := canonicalDefsT(in, "me")
	if len(c) != 2 || c[0].VIPA != vipaA || c[0].RoutingNode != "me" || !slices.Equal(c[0].Ports, ports("8080-8081", "8443")) {
		t.Fatalf("canonical: %+v", c)
	}
	got, err := decodeDefsT(encodeDefsT(c), "me")
	if err != nil || len(got) != 2 || !got[0].Equal(c[0]) || !got[1].Equal(c[1]) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	all := def(vipaA.String(), "x", vipa.AllPortsBut(ports("22", "8000-8100")))
	all.All = true
	got, err = decodeDefsT(encodeDefsT(canonicalDefsT([]*vipa.Definition{all}, "me")), "me")
	if err != nil || len(got) != 1 || !got[0].All || !slices.Equal(got[0].Ports.Excluded(), ports("22", "8000-8100")) {
		t.Fatalf("port all round trip: %+v %v", got, err)
	}
	badFlags := encodeDefsT(canonicalDefsT([]*vipa.Definition{all}, "me"))
	badFlags[len(badFlags)-1] = 2
	if _, err := decodeDefsT(badFlags, "me"); err == nil {
		t.Error("accepted an unknown definition flag")
	}
	unmerged := &vipa.Definition{VIPA: vipaA, Ports: vipa.PortSet{{Lo: 80, Hi: 80}, {Lo: 81, Hi: 81}}, DestIP: []string{vipa.DestAll}}
	if _, err := decodeDefsT(encodeDefsT([]*vipa.Definition{unmerged}), "me"); err == nil {
		t.Error("accepted unmerged port ranges")
	}
	noDest := &vipa.Definition{VIPA: vipaA, Ports: ports("80")}
	if _, err := decodeDefsT(encodeDefsT([]*vipa.Definition{noDest}), "me"); err == nil {
		t.Error("accepted an empty destip list")
	}
}

// A definition the wire can carry but vipa's rules refuse (a destination
// of 200 bytes is no node name) is dropped alone; its neighbours stay.
func TestDefinitionsDropOneBad(t *testing.T) {
	good := def(vipaA.String(), "me", ports("80"))
	bad := def(vipaB.String(), "me", ports("80"), strings.Repeat("d", 200))
	body := encodeDefsT([]*vipa.Definition{good, bad}) // as a peer without the rule sends it
	var dropped []netip.Addr
	got, err := decodeDefs(body, "me", func(d *vipa.Definition, err error) {
		if !strings.Contains(err.Error(), "node name is 200 characters") {
			t.Errorf("dropped %v for %v", d.VIPA, err)
		}
		dropped = append(dropped, d.VIPA)
	})
	if err != nil || len(got) != 1 || !got[0].Equal(good) {
		t.Fatalf("decoded %+v, %v; want the good definition alone", got, err)
	}
	if !slices.Equal(dropped, []netip.Addr{vipaB}) {
		t.Fatalf("dropped %v, want %v", dropped, vipaB)
	}

	// This node refuses to send it at all, and says which.
	var refused []netip.Addr
	c := canonicalDefs([]*vipa.Definition{bad, good}, "me", func(d *vipa.Definition, err error) { refused = append(refused, d.VIPA) })
	if len(c) != 1 || c[0].VIPA != vipaA || !slices.Equal(refused, []netip.Addr{vipaB}) {
		t.Fatalf("canonical %+v, refused %v", c, refused)
	}
}

// Definitions beyond what one answer frame carries are refused, the first
// ones kept.
func TestDefinitionsBodyBounded(t *testing.T) {
	dest := make([]string, vipa.MaxDestinations)
	for i := range dest {
		dest[i] = fmt.Sprintf("%0120d", i)
	}
	var defs []*vipa.Definition
	for i := range 10 { // ~125 KiB each
		defs = append(defs, def(fmt.Sprintf("10.0.0.%d", i+1), "me", ports("80"), dest...))
	}
	var refused int
	kept, body := encodeDefs(canonicalDefsT(defs, "me"), func(*vipa.Definition, error) { refused++ })
	if len(body) > maxDefsBody || len(kept) != 6 || refused != 4 || kept[0].VIPA.String() != "10.0.0.1" {
		t.Fatalf("kept %d (%d bytes), refused %d", len(kept), len(body), refused)
	}
	if got, err := decodeDefsT(body, "me"); err != nil || len(got) != len(kept) {
		t.Fatalf("decoded %d, %v", len(got), err)
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
	a.core.own = ownState{report: report{digest: top}, defs: defsVersion{digest: top}}
	a.Configured()
	if a.tags()[tagConfigured] == "" {
		t.Fatal("no configured tag after Configured")
	}
	size := 0
	for k, v := range a.tags() {
		size += len(k) + len(v) + 4 // msgpack: map entry headers
	}
	if size > 200 {
		t.Fatalf("tags take %d bytes", size)
	}
}

// A report whose lines count connections is version 2; one whose lines do
// not is version 1, as older nodes send it, and is still read.
func TestReportVersions(t *testing.T) {
	adv := netip.MustParseAddr("127.0.0.2")
	v2 := canonicalListeners([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1, Conns: 5}, {VIPA: vipaA, Port: 8443, Ready: 1}})
	body := encodeReport(adv, v2)
	if body[0] != reportV2 {
		t.Fatalf("version %d, want %d", body[0], reportV2)
	}
	if _, got, err := decodeReport(body); err != nil || !slices.Equal(got, v2) || got[0].Conns != 5 || got[1].Conns != 0 {
		t.Fatalf("version 2 round trip: %v %v", got, err)
	}
	// Version 1, byte for byte: 127.0.0.2, one VIPA 127.0.0.100, port 8080 ready 2.
	v1 := []byte{1, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 2}
	gotAdv, got, err := decodeReport(v1)
	want := []vipa.Listener{{VIPA: netip.MustParseAddr("127.0.0.100"), Port: 8080, Ready: 2, Conns: vipa.NoConns}}
	if err != nil || gotAdv != adv || !slices.Equal(got, want) {
		t.Fatalf("version 1: %v %v %v", gotAdv, got, err)
	}
	if b := encodeReport(adv, got); !bytes.Equal(b, v1) {
		t.Fatalf("version 1 lines encode as %x", b)
	}
	for name, b := range map[string][]byte{
		"v2 without conns": append([]byte{2}, v1[1:]...),
		"v1 with conns":    append([]byte{1}, body[1:]...),
		"conns too large":  append(append([]byte{2}, v1[1:]...), 0x80, 0x80, 0x80, 0x80, 0x10),
	} {
		if _, _, err := decodeReport(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Duplicate lines add their counts; one that does not count is 0.
	merged := canonicalListeners([]vipa.Listener{{VIPA: vipaA, Port: 80, Ready: 1, Conns: 2}, {VIPA: vipaA, Port: 80, Ready: 1, Conns: vipa.NoConns}})
	if len(merged) != 1 || merged[0].Conns != 2 || merged[0].Ready != 2 {
		t.Errorf("merged %v", merged)
	}
}

// A report with a quiesced or weighted line is version 3: each line says
// what it carries, so a line without a count keeps saying nothing.
func TestReportVersion3(t *testing.T) {
	adv := netip.MustParseAddr("127.0.0.2")
	v3 := canonicalListeners([]vipa.Listener{
		{VIPA: vipaA, Port: 8080, Ready: 1, Conns: 5, State: vipa.StateQuiesced},
		{VIPA: vipaA, Port: 8443, Ready: 2, Conns: vipa.NoConns, Weight: 40},
		{VIPA: vipaB, Port: 9000, Ready: 1, Conns: vipa.NoConns},
		{VIPA: vipaB, Port: 9001, Ready: 1, Conns: 0, State: vipa.StateActive, Weight: 101}, // say nothing
	})
	body := encodeReport(adv, v3)
	if body[0] != reportV3 {
		t.Fatalf("version %d, want %d", body[0], reportV3)
	}
	_, got, err := decodeReport(body)
	if err != nil || !slices.Equal(got, v3) {
		t.Fatalf("version 3 round trip:\n got %v %v\nwant %v", got, err, v3)
	}
	if got[0].State != vipa.StateQuiesced || got[1].Weight != 40 || got[1].Conns != vipa.NoConns || got[3].Weight != 0 || got[3].State != "" {
		t.Fatalf("lines %v", got)
	}
	// Version 3, byte for byte: 127.0.0.2, one VIPA 127.0.0.100, port 8080
	// ready 1, flags quiesced|weight, weight 7.
	raw := []byte{3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineQuiesced | lineWeight, 7}
	_, got, err = decodeReport(raw)
	want := []vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1, Conns: vipa.NoConns, State: vipa.StateQuiesced, Weight: 7}}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("raw version 3: %v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"says nothing":  {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, 0},
		"all count":     {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 2, 0x1f, 0x90, 1, lineConns, 3, 0x1f, 0x91, 1, lineConns, 0},
		"conns only":    {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineConns, 3},
		"unknown flag":  {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineQuiesced | 0x80},
		"weight 0":      {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineWeight, 0},
		"weight 101":    {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineWeight, 101},
		"weight absent": {3, 4, 127, 0, 0, 2, 1, 4, 127, 0, 0, 100, 1, 0x1f, 0x90, 1, lineWeight},
		"version 4":     append([]byte{4}, raw[1:]...),
	} {
		if _, _, err := decodeReport(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Some lines count connections, some do not: version 3, so the others
	// keep saying nothing (version 2 would say 0).
	mixed := canonicalListeners([]vipa.Listener{{VIPA: vipaA, Port: 80, Ready: 1, Conns: 4}, {VIPA: vipaB, Port: 81, Ready: 1, Conns: vipa.NoConns}})
	b := encodeReport(adv, mixed)
	if _, got, err := decodeReport(b); b[0] != reportV3 || err != nil || !slices.Equal(got, mixed) {
		t.Fatalf("mixed counts: version %d, %v %v, want %v", b[0], got, err, mixed)
	}
	// Duplicate lines: quiesced if either is, the higher weight.
	merged := canonicalListeners([]vipa.Listener{{VIPA: vipaA, Port: 80, Ready: 1, Weight: 3}, {VIPA: vipaA, Port: 80, Ready: 1, State: vipa.StateQuiesced, Weight: 9}})
	if len(merged) != 1 || merged[0].State != vipa.StateQuiesced || merged[0].Weight != 9 {
		t.Errorf("merged %v", merged)
	}
}

// withOptions is a definition with every distribution option set.
func withOptions() *vipa.Definition {
	d := def(vipaA.String(), "me", ports("8080"), "caddy-a", "caddy-b", "10.0.0.3")
	d.Distmethod = vipa.HotStandby
	d.Options = vipa.Options{
		Destinations: []vipa.Destination{
			{Node: "caddy-a", Role: vipa.RolePreferred},
			{Node: "caddy-b", Weight: 3, Role: vipa.RoleBackup, Rank: 200},
			{Node: "10.0.0.3", Role: vipa.RoleBackup, Rank: 1},
		},
		TimedAffinity: time.Minute, OptLocal: true, MaxConns: 10000, SlowStart: 30 * time.Second,
		NoAutoSwitchBack: true, NoHealthSwitch: true,
	}
	return d
}

// Options travel in version 4, which is written only when a definition has
// one: a fleet without options sends version 3, which older nodes read.
func TestDefinitionsOptionsCodec(t *testing.T) {
	plain := def(vipaB.String(), "me", ports("9000"), "caddy-a", "caddy-b")
	plain.Options.Destinations = []vipa.Destination{{Node: "caddy-a"}, {Node: "caddy-b", Weight: 1}} // weight 1 each: no option
	c := canonicalDefsT([]*vipa.Definition{plain}, "me")
	if body := encodeDefsT(c); body[0] != defsVersion3 || c[0].Options.Destinations != nil {
		t.Fatalf("plain destinations: version %d, options %+v", body[0], c[0].Options)
	}

	opt := withOptions()
	c = canonicalDefsT([]*vipa.Definition{plain, opt}, "me")
	body := encodeDefsT(c)
	if body[0] != defsVersion4 {
		t.Fatalf("version %d, want 4", body[0])
	}
	got, err := decodeDefsT(body, "me")
	if err != nil || len(got) != 2 || !got[0].Equal(c[0]) || !got[1].Equal(c[1]) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if o := got[0].Options; o.Destinations[0].Weight != 1 || o.Destinations[1].Weight != 3 || o.MaxConns != 10000 ||
		!o.OptLocal || !o.NoAutoSwitchBack || o.SlowStart != 30*time.Second {
		t.Fatalf("options %+v", o)
	}
	for _, w := range []*vipa.Definition{plain, opt} { // one weight option alone is enough
		d := def(vipaA.String(), "me", ports("80"), "caddy-a", "caddy-b")
		switch w {
		case plain:
			d.Options.Destinations = []vipa.Destination{{Node: "caddy-b", Weight: 2}}
		default:
			d.Options.MaxConns = 1
		}
		c := canonicalDefsT([]*vipa.Definition{d}, "me")
		if got, err := decodeDefsT(encodeDefsT(c), "me"); err != nil || len(got) != 1 || !got[0].Equal(c[0]) {
			t.Errorf("%+v: round trip %+v %v", d.Options, got, err)
		}
	}
}

// A version 4 body that breaks its rules is malformed; one whose options
// break vipa's rules loses that definition alone.
func TestDefinitionsOptionsRefused(t *testing.T) {
	one := canonicalDefsT([]*vipa.Definition{withOptions()}, "me")
	body := encodeDefsT(one)
	// offsets from the end: ... oflags affinity max_conns slow_start count {node weight role rank}...
	last := len(body) - 1 // rank of the last destination
	bad := map[string][]byte{
		"unknown version": append([]byte{5}, body[1:]...),
		"trailing byte":   append(slices.Clone(body), 0),
		"truncated":       body[:len(body)-2],
		"unknown role":    func() []byte { b := slices.Clone(body); b[last-1] = 3; return b }(),
		"weight 0":        func() []byte { b := slices.Clone(body); b[last-2] = 0; return b }(),
		// version 4 with no option anywhere: version 3 says it
		"version 4 without options": func() []byte {
			d := def(vipaA.String(), "me", ports("80"))
			e := enc{b: []byte{defsVersion4, 1}}
			e.b = append(e.b, encodeDef(d, defsVersion4)...)
			return e.b
		}(),
		"unknown option flag": func() []byte {
			d := def(vipaA.String(), "me", ports("80"))
			d.Options.MaxConns = 5
			item := encodeDef(d, defsVersion4)
			// oflags is right after the definition flags: find it from the end
			// (affinity 0, max_conns 5, slow_start 0, no destinations: 4 bytes)
			item[len(item)-5] = 8
			return append([]byte{defsVersion4, 1}, item...)
		}(),
		"plain destinations": func() []byte {
			d := def(vipaA.String(), "me", ports("80"), "caddy-a")
			d.Options = vipa.Options{MaxConns: 1, Destinations: []vipa.Destination{{Node: "caddy-a", Weight: 1}}}
			return append([]byte{defsVersion4, 1}, encodeDef(d, defsVersion4)...)
		}(),
	}
	for name, b := range bad {
		if _, err := decodeDefsT(b, "me"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// Options vipa refuses: a weighted destination not in destip, and a
	// hotstandby definition without its roles.
	good := canonicalDefsT([]*vipa.Definition{withOptions()}, "me")[0]
	stray := def(vipaB.String(), "me", ports("80"), "caddy-a")
	stray.Options.Destinations = []vipa.Destination{{Node: "caddy-z", Weight: 2}}
	noRoles := def("10.9.9.9", "me", ports("80"), "caddy-a")
	noRoles.Distmethod = vipa.HotStandby
	noRoles.Options.MaxConns = 3
	e := enc{b: []byte{defsVersion4, 3}}
	for _, d := range []*vipa.Definition{noRoles, good, stray} { // sorted by VIPA
		e.b = append(e.b, encodeDef(d, defsVersion4)...)
	}
	var dropped []string
	got, err := decodeDefs(e.b, "me", func(d *vipa.Definition, err error) { dropped = append(dropped, d.VIPA.String()+": "+err.Error()) })
	if err != nil || len(got) != 1 || !got[0].Equal(good) {
		t.Fatalf("decoded %+v %v, want the good definition", got, err)
	}
	if len(dropped) != 2 || !strings.Contains(dropped[0], "preferred or backup") || !strings.Contains(dropped[1], "caddy-z is not in destip") {
		t.Fatalf("dropped %q", dropped)
	}
}
