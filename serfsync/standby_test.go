package serfsync

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestVIPADynTag(t *testing.T) {
	d := VIPADyn{
		Ranks: map[netip.Addr]int{vipaA: 100, vipaB: 0},
		Moves: map[netip.Addr]string{vipaB: "n02"},
	}
	tag, left := encodeVIPADyn(d)
	if len(left) != 0 {
		t.Fatalf("left out %v", left)
	}
	got := parseVIPADyn(tag)
	if got.Ranks[vipaA] != 100 || got.Ranks[vipaB] != 0 || got.Moves[vipaB] != "n02" || len(got.Moves) != 1 {
		t.Fatalf("%q read back as %+v", tag, got)
	}
	junk := parseVIPADyn("x=1,10.0.0.1=255,10.0.0.2=-1,10.0.0.3=5>bad name,10.0.0.4=7")
	if len(junk.Ranks) != 1 || junk.Ranks[netip.MustParseAddr("10.0.0.4")] != 7 {
		t.Fatalf("junk read as %+v", junk)
	}
	many := VIPADyn{Ranks: map[netip.Addr]int{}}
	for i := range 40 {
		many.Ranks[netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})] = 200
	}
	tag, left = encodeVIPADyn(many)
	if len(tag) > maxVIPADynTag || len(left) == 0 {
		t.Fatalf("tag of %d bytes, %d left out", len(tag), len(left))
	}
}

// TestVIPADynSetBeforeTaggerRuns: a vipadyn tag set right after Start,
// before the tagger goroutine has begun (a config installed at once on a
// loaded host), still reaches the fleet: the tagger starts from the tags
// given to serf, not from the newer ones. A routing node whose rank never
// reached its backups would be taken for a node that cannot own its VIPA.
func TestVIPADynSetBeforeTaggerRuns(t *testing.T) {
	begin := make(chan struct{})
	held := fleetOpts{hooks: func(h *hooks) { h.taggerStart = func() { <-begin } }}
	owner := startNode(t, held.config("n00", testIP(0), 0, nil))
	owner.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 0}})
	close(begin)
	peer := startNode(t, fleetOpts{}.config("n01", testIP(1), 0, []string{owner.BindAddr().String()}))
	t.Cleanup(func() { stopAll([]*tnode{owner, peer}) })
	waitFor(t, 10*time.Second, "the peer to see n00's rank", func() bool {
		ms := peer.Members()
		i := slices.IndexFunc(ms, func(m Member) bool { return m.Name == "n00" })
		if i < 0 {
			return false
		}
		r, ok := ms[i].VIPADyn.Ranks[vipaA]
		return ok && r == 0
	})
}

// TestStandbyStaysWarm: a standby takes the targets' reports for a VIPA
// another node routes, and keeps taking them after that node dies, until
// it defines the VIPA itself; the targets keep reporting throughout.
func TestStandbyStaysWarm(t *testing.T) {
	nodes := startFleet(t, 3, fleetOpts{profile: vipa.ProfileFast})
	owner, standby, target := nodes[0], nodes[1], nodes[2]
	d := def(vipaA.String(), "n00", ports("8080-8089"))
	owner.SetDefinitions([]*vipa.Definition{d})
	standby.SetVIPADyn(VIPADyn{Ranks: map[netip.Addr]int{vipaA: 100}})
	target.set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 2}})
	hasRow := func(n *tnode, port uint16) func() bool {
		return func() bool {
			rows := n.dpt()["n02"]
			return len(rows) == 1 && rows[0].Port == port
		}
	}
	waitFor(t, 5*time.Second, "the routing node's row", hasRow(owner, 8080))
	waitFor(t, 5*time.Second, "the standby's row", hasRow(standby, 8080))
	waitFor(t, 5*time.Second, "the standby's tag seen", func() bool {
		i := slices.IndexFunc(target.Members(), func(m Member) bool { return m.Name == "n01" })
		return i >= 0 && target.Members()[i].VIPADyn.Ranks[vipaA] == 100
	})

	owner.kill()
	waitFor(t, 15*time.Second, "the routing node failed", func() bool {
		for _, m := range target.Members() {
			if m.Name == "n00" {
				return m.Status != "alive"
			}
		}
		return false
	})
	if !slices.ContainsFunc(target.Definitions(), func(k KnownDefinition) bool { return k.VIPA == vipaA && k.Owner }) {
		t.Fatalf("the target forgot the definition of a VIPA with a standby: %+v", target.Definitions())
	}
	target.set([]vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: 1}})
	waitFor(t, 5*time.Second, "the standby's row after the routing node died", hasRow(standby, 8081))

	// The standby takes the VIPA over: it defines it; the rows stay.
	standby.SetDefinitions([]*vipa.Definition{d})
	waitFor(t, 5*time.Second, "the target follows the new routing node", func() bool {
		return slices.ContainsFunc(target.Definitions(), func(k KnownDefinition) bool {
			return k.VIPA == vipaA && k.Owner && k.RoutingNode == "n01"
		})
	})
	if !hasRow(standby, 8081)() {
		t.Fatalf("rows lost in the takeover: %v", standby.dpt())
	}
	if !standby.DefsKnown("n02") {
		t.Fatal("the target's definitions (none) not known")
	}
}
