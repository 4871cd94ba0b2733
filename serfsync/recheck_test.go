package serfsync

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// claimsVIPAA says whether c holds a live claim of name's on vipaA.
func claimsVIPAA(c *core, name string) bool {
	for _, k := range c.known {
		if k.RoutingNode == name && k.VIPA == vipaA && !k.Released {
			return true
		}
	}
	return false
}

// TestRecheckRestarted: routing node a is killed and restarted before
// serf notices, so b's serf still shows the old process's tags, and b
// holds the old process's definitions as current. Recheck holds them as
// not known until a sync that began after it answers: the new process's
// (none: it has not claimed the VIPA) replace them; a's refuted tags then
// make them known.
func TestRecheckRestarted(t *testing.T) {
	tc := newTestCores("a", "b")
	b := tc.cores["b"]
	tc.cores["a"].setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	old := tc.views()
	for _, c := range tc.cores {
		c.membersListed(old, tc.now)
	}
	tc.settle(t)
	if !b.defsKnown("a") || !claimsVIPAA(b, "a") {
		t.Fatalf("b: known %v, claims %v", b.defsKnown("a"), b.known)
	}

	tc.cores["a"] = newCore("a", coreIP(0), 99, time.Second, zap.NewNop(), &stats{})
	tc.cores["a"].membersListed(tc.views(), tc.now)
	if !b.defsKnown("a") {
		t.Fatal("b should still take the old process's definitions as current: serf shows its tags")
	}
	b.recheck("a")
	if b.defsKnown("a") {
		t.Fatal("a's definitions known right after Recheck")
	}
	tc.settle(t)
	if claimsVIPAA(b, "a") {
		t.Fatalf("b still holds the old process's claim after a sync with the new one: %v", b.known)
	}
	if b.defsKnown("a") {
		t.Fatal("a's definitions known while serf still shows the old process's tags")
	}
	b.membersChanged(tc.views()[:1]) // the new process's tags reach b
	b.step(tc.now)
	if !b.defsKnown("a") {
		t.Fatal("a's definitions not known with its new tags and its new definitions held")
	}
}

// TestRecheckSameProcess: a member silent for a while without restarting
// answers the recheck with the version b holds: the same claims, known
// again. A sync already running when Recheck is called does not end it.
func TestRecheckSameProcess(t *testing.T) {
	tc := newTestCores("a", "b")
	a, b := tc.cores["a"], tc.cores["b"]
	a.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80"))}, tc.now)
	for _, c := range tc.cores {
		c.membersListed(tc.views(), tc.now)
	}
	tc.settle(t)

	b.schedule("a", true)
	running, _ := b.dispatch(tc.now)
	if len(running) != 1 {
		t.Fatalf("dispatched %v", running)
	}
	b.recheck("a")
	b.answered(running[0], a.answer(running[0].req), nil, tc.now)
	if b.defsKnown("a") {
		t.Fatal("a sync that began before Recheck ended it")
	}
	tc.settle(t)
	if !b.defsKnown("a") || !claimsVIPAA(b, "a") {
		t.Fatalf("after the recheck: known %v, claims %v", b.defsKnown("a"), b.known)
	}
}
