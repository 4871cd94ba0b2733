package serfsync

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// setRawReport installs lines as this node's report without the
// canonical clean-up SetReport does, to send what a faulty peer would.
func (n *tnode) setRawReport(lines []vipa.Listener) {
	n.mu.Lock()
	n.Agent.mu.Lock()
	n.core.setLines(lines)
	n.Agent.mu.Unlock()
	n.mu.Unlock()
	n.kick()
}

func TestValidationRulesCounted(t *testing.T) {
	nodes := startFleet(t, 5, fleetOpts{})
	// n05 claims another advertise address in its tags than in its report.
	liar := startNode(t, fleetOpts{hooks: func(h *hooks) { h.advTag = "127.0.0.99" }}.config("n05", testIP(5), 0,
		[]string{nodes[0].BindAddr().String()}))
	t.Cleanup(func() { _ = liar.Stop() })
	waitFor(t, 5*time.Second, "liar joins", func() bool { return alive(nodes[0]) == 6 })
	defs := routed(nodes)

	unknown := netip.MustParseAddr("127.0.0.250")
	nodes[1].set([]vipa.Listener{
		{VIPA: vipaA, Port: 8080, Ready: 1}, // good
		{VIPA: vipaA, Port: 9999, Ready: 1}, // port
		{VIPA: vipaB, Port: 9000, Ready: 1}, // not_candidate: n01 is not in B's destip
		{VIPA: unknown, Port: 80, Ready: 1}, // unknown_vipa
	})
	nodes[2].set([]vipa.Listener{{VIPA: vipaB, Port: 9001, Ready: 1}}) // candidate by name
	nodes[3].set([]vipa.Listener{{VIPA: vipaB, Port: 9002, Ready: 2}}) // candidate by address
	nodes[4].setRawReport([]vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: vipa.MaxReady + 1}, {VIPA: vipaA, Port: 8082, Ready: 1}})
	nodes[4].mu.Lock()
	nodes[4].listeners = []vipa.Listener{{VIPA: vipaA, Port: 8082, Ready: 1}} // what the routing node may keep
	nodes[4].mu.Unlock()
	liar.SetReport([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})

	waitExact(t, 3*time.Second, nodes[0], nodes, defs) // liar not in the truth: no rows
	waitFor(t, 3*time.Second, "every drop counted", func() bool {
		s := nodes[0].Stats()
		return s["drop_port"] > 0 && s["drop_not_candidate"] > 0 && s["drop_unknown_vipa"] > 0 &&
			s["drop_ready"] > 0 && s["drop_address"] > 0
	})
	t.Logf("stats: %v", nodes[0].Stats())
}

// versionCore is a core with one live peer "p".
func versionCore() (*core, *peer) {
	c := newCore("r", netip.MustParseAddr("127.0.0.1"), 1, time.Second, zap.NewNop(), &stats{})
	c.members["p"] = &memberInfo{live: true, adv: netip.MustParseAddr("127.0.0.2"), advTag: true}
	return c, c.peer("p")
}

func TestVersionRulesCounted(t *testing.T) {
	c, p := versionCore()
	adv := netip.MustParseAddr("127.0.0.2")
	body := func(ls ...vipa.Listener) []byte { return encodeReport(adv, ls) }
	b1 := body(vipa.Listener{VIPA: vipaA, Port: 8080, Ready: 1})
	b2 := body(vipa.Listener{VIPA: vipaA, Port: 8081, Ready: 1})
	h := func(b []byte) uint64 { return hashBody(kindReport, b) }

	steps := []struct {
		name string
		d    digest
		body []byte
		drop string
		want []byte // the body held afterwards
	}{
		{"accepted", digest{7, 2, h(b1)}, b1, "", b1},
		{"seq back", digest{7, 1, h(b2)}, b2, "seq", b1},
		{"same seq, other hash", digest{7, 2, h(b2)}, nil, "hash", b1},
		{"body does not hash", digest{7, 3, h(b1)}, b2, "hash", b1},
		{"garbage", digest{7, 3, h([]byte{1, 2, 3})}, []byte{1, 2, 3}, "decode", b1},
		{"no generation", digest{0, 3, h(b2)}, b2, "decode", b1},
		{"newer", digest{7, 5, h(b2)}, b2, "", b2},
		{"new generation", digest{9, 1, h(b1)}, b1, "", b1},
		{"new generation, empty", digest{11, 1, emptyReportHash}, nil, "", nil},
	}
	for _, s := range steps {
		before := c.stats.snapshot()["drop_"+s.drop]
		c.applyReport(p, s.d, s.body)
		if s.drop != "" && c.stats.snapshot()["drop_"+s.drop] != before+1 {
			t.Errorf("%s: drop_%s not counted: %v", s.name, s.drop, c.stats.snapshot())
		}
		if string(p.report.body) != string(s.want) {
			t.Errorf("%s: holds %x, want %x", s.name, p.report.body, s.want)
		}
	}

	// Too many lines is a size drop, not a decode one.
	var many []vipa.Listener
	for i := range maxReportVIPAs + 1 {
		many = append(many, vipa.Listener{VIPA: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Port: 1, Ready: 1})
	}
	big := encodeReport(adv, many)
	c.applyReport(p, digest{11, 2, h(big)}, big)
	if c.stats.snapshot()["drop_size"] != 1 {
		t.Errorf("oversized report not counted: %v", c.stats.snapshot())
	}

	// An answer that names another node is dropped whole.
	c.applyAnswer(p, syncRequest{flags: wantReport}, syncAnswer{from: "q", report: digest{11, 9, h(b2)}, reportBody: b2})
	if c.stats.snapshot()["drop_identity"] != 1 || p.report.seq != 1 {
		t.Errorf("answer from another node applied: %v", c.stats.snapshot())
	}

	// Definitions follow the same rules.
	d1 := encodeDefsT(canonicalDefsT([]*vipa.Definition{def(vipaA.String(), "p", ports("80"))}, "p"))
	hd := hashBody(kindDefs, d1)
	c.applyDefs(p, digest{3, 4, hd}, d1)
	c.applyDefs(p, digest{3, 3, hd}, d1)
	if c.stats.snapshot()["drop_seq"] != 2 || p.defs == nil || p.defs.seq != 4 || p.defs.defs[0].RoutingNode != "p" {
		t.Errorf("definitions version rules: %v %+v", c.stats.snapshot(), p.defs)
	}
}
