package fleet

import (
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

// Rules naming a departed node go, and the list with them once no quiesce
// is left; a node that failed is not departed.
func TestQuiesceRulesWithout(t *testing.T) {
	var q quiesceRules
	for _, r := range []quiesceRule{
		{Selector{Node: "b"}, true}, {Selector{Node: "b", Port: 80}, false},
		{Selector{Node: "c", VIPA: vA}, true}, {Selector{Node: "x", Port: 81}, true},
	} {
		var err error
		if q, err = q.set(r.sel, r.quiesced); err != nil {
			t.Fatal(err)
		}
	}
	status := map[string]string{"b": "left", "c": "failed", "x": "alive"}
	q = q.without(func(n string) bool { return departed(status[n]) })
	if len(q) != 2 || q.quiesced(vB, 8000, "b") || !q.quiesced(vA, 80, "c") || !q.quiesced(vB, 81, "x") {
		t.Fatalf("after b left: %v", q)
	}
	delete(status, "c") // reaped
	q = q.without(func(n string) bool { return departed(status[n]) })
	if len(q) != 1 || q.quiesced(vA, 80, "c") || !q.quiesced(vA, 81, "x") {
		t.Fatalf("after c was reaped: %v", q)
	}
	q, _ = q.set(Selector{Node: "x", Port: 81, VIPA: vB}, false)
	if q = q.without(func(string) bool { return false }); len(q) != 2 {
		t.Fatalf("nothing departed: %v", q)
	}
	if q = q.without(func(n string) bool { return n == "x" }); q != nil {
		t.Fatalf("a lone resume kept: %v", q)
	}
	for s, want := range map[string]bool{"": true, "leaving": true, "left": true, "failed": false, "alive": false} {
		if departed(s) != want {
			t.Errorf("departed(%q) = %v", s, !want)
		}
	}
}

// A routing node forgets its drain of a target that leaves the fleet, over
// real gossip, and keeps it while the target is failed. The target stops
// only once its join has returned: serf joins in the background, and a
// leave racing it is seen as a failure (one before the join's push-pull
// broadcasts nothing; one during it has a Lamport time below the join
// intent that follows, so the routing node drops it as old). Should a
// leave still come as a failure, the target rejoins and leaves again.
func TestDrainOfDepartedTarget(t *testing.T) {
	f := New()
	a := netip.MustParseAddr("127.0.3.1")
	err := f.Start(serfsync.Config{NodeName: "caddy-a", BindAddr: netip.AddrPortFrom(a, 0), Advertise: a, Profile: "fast"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Destruct() })
	join := []string{f.agentOf().BindAddr().String()}
	status := func(name string) string {
		for _, m := range f.Members() {
			if m.Name == name {
				return m.Status
			}
		}
		return ""
	}
	drains := func() quiesceRules {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.drains
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: drains %v, members %v", what, drains(), f.Members())
			}
		}
	}
	b := netip.MustParseAddr("127.0.3.2")
	for attempt := 1; ; attempt++ {
		tb, err := serfsync.New(serfsync.Config{NodeName: "caddy-b", BindAddr: netip.AddrPortFrom(b, 0), Advertise: b, Profile: "fast", Join: join})
		if err != nil {
			t.Fatal(err)
		}
		if err := tb.Start(); err != nil {
			t.Fatal(err)
		}
		poll("caddy-b alive and its join returned", func() bool { return status("caddy-b") == "alive" && tb.JoinTried() })
		f.mu.Lock()
		f.drains, _ = f.drains.set(Selector{Node: "caddy-b"}, true)
		f.drains, _ = f.drains.set(Selector{Node: "caddy-c"}, true) // drained, then reaped
		f.mu.Unlock()
		f.pruneDrains()
		if got := drains(); len(got) != 1 || !got.quiesced(vA, 80, "caddy-b") {
			t.Fatalf("drains with caddy-b alive: %v", got)
		}
		if err := tb.Stop(); err != nil {
			t.Fatal(err)
		}
		poll("caddy-b gone", func() bool { s := status("caddy-b"); return s == "left" || s == "failed" })
		// A late leave turns failed into left (never back): the status
		// read after the prune and the drains says what the prune saw.
		f.pruneDrains()
		got := drains()
		if status("caddy-b") != "failed" {
			poll("the drain of caddy-b dropped", func() bool { return len(drains()) == 0 })
			return
		}
		if !got.quiesced(vA, 80, "caddy-b") {
			t.Fatalf("drain of a failed caddy-b dropped: %v", got)
		}
		if attempt == 5 {
			t.Fatal("five leaves of caddy-b were all seen as failures")
		}
		t.Logf("leave %d seen as a failure; again", attempt)
	}
}
