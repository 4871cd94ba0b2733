//go:build linux

package tests

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/tests/internal/harness"
	"github.com/caddy-vipa/caddy-vipa/tests/internal/netlab"
)

// TestLabSlowLinkNoTakeover: the owner is alive but its link to the first
// backup loses packets, then all of them, while both reach the rest of the
// fleet. The backup's direct pings go unanswered and it suspects the owner,
// but the other backup still hears it: every confirmation is refuted, and
// no node changes owner or status.
func TestLabSlowLinkNoTakeover(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the lossy link needs nft (nftables); .ci/run installs it")
	}
	f := startTakeoverFleet(t, nil)
	a, b := f.lab.Node("a"), f.lab.Node("b")
	before := map[string]vipadynRow{}
	changes := map[string]int{}
	for _, name := range []string{"a", "b", "c"} {
		r, err := f.vipadyn(name)
		if err != nil {
			t.Fatal(err)
		}
		before[name] = r
		changes[name] = ownershipChanges(t, f.nodes[name])
	}

	// Half the packets between a and b, then all of them: each phase far
	// longer than the fast profile's window and confirmation.
	for _, loss := range []int{50, 100} {
		for _, p := range [][2]*netlab.Host{{a, b}, {b, a}} {
			if err := p[0].Lose(p[1], loss); err != nil {
				t.Fatal(err)
			}
		}
		end := time.Now().Add(10 * time.Second)
		for time.Now().Before(end) {
			for _, name := range []string{"a", "b", "c"} {
				r, err := f.vipadyn(name)
				if err != nil {
					t.Fatal(err)
				}
				if r != before[name] {
					t.Fatalf("with %d%% loss between a and b, caddy-%s's row changed: %+v, was %+v (%s)", loss, name, r, before[name], f.whoTookDown("caddy-a"))
				}
			}
			if !a.Holds(netlab.VIPAPrefix()) || b.Holds(netlab.VIPAPrefix()) || f.lab.Node("c").Holds(netlab.VIPAPrefix()) {
				t.Fatalf("with %d%% loss between a and b the VIPA's address moved (%s)", loss, f.whoTookDown("caddy-a"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if n := ownershipChanges(t, f.nodes[name]); n != changes[name] {
			t.Fatalf("caddy-%s counted %d ownership changes over the lossy link", name, n-changes[name])
		}
	}
	// The link did make b suspect a, and the fleet refuted it: without the
	// confirmation this would have been a takeover.
	log := f.nodes["b"].log.String()
	if !strings.Contains(log, `"outcome":"refuted"`) {
		t.Fatalf("b never had a suspicion of a refuted: the lossy link was not tested; b's log:\n%s", log)
	}
	if strings.Contains(log, `"taken_as_down":true`) {
		t.Fatal("b took a as down")
	}
	page, err := harness.Get(f.nodes["b"].client, labAdmin, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if n := metricValue(t, string(page), `caddy_vipa_owner_confirmations_total{outcome="refuted"}`); n == 0 {
		t.Fatal("b's metrics count no refuted confirmation")
	}
	if n := metricValue(t, string(page), `caddy_vipa_owner_confirmations_total{outcome="down"}`); n != 0 {
		t.Fatalf("b's metrics count %d confirmations that took a as down", n)
	}
	if _, err := clientGreeting(f.lab, 5*time.Second); err != nil {
		t.Fatalf("a client connection through a: %v", err)
	}
}

// whoTookDown says which nodes took node as gone, and by which path: serf's
// failure detection (SWIM) or this node's own confirmation through the
// fleet.
func (f *takeoverFleet) whoTookDown(node string) string {
	var by []string
	for _, name := range []string{"a", "b", "c"} {
		log := f.nodes[name].log.String()
		if strings.Contains(log, "EventMemberFailed: "+node+" ") {
			by = append(by, "caddy-"+name+"'s serf declared it failed")
		}
		if strings.Contains(log, `"node":"`+node+`","outcome":"down","taken_as_down":true`) {
			by = append(by, "caddy-"+name+"'s confirmation took it as down")
		}
	}
	if len(by) == 0 {
		return node + " taken as gone by no one"
	}
	return node + ": " + strings.Join(by, ", ")
}

// ownershipChanges is the node's caddy_vipa_ownership_changes_total.
func ownershipChanges(t *testing.T, n *labNode) int {
	t.Helper()
	page, err := harness.Get(n.client, labAdmin, "/metrics")
	if err != nil {
		t.Fatalf("%s: %v", n.host.Name, err)
	}
	const series = "\ncaddy_vipa_ownership_changes_total"
	if !strings.Contains(string(page), series+" ") {
		t.Fatalf("%s: no%s in /metrics", n.host.Name, series)
	}
	return metricValue(t, string(page), series)
}
