package tables

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// allMethods are the distmethods with the policy each is tested with.
func allMethods() map[string]*Policy {
	ps := map[string]*Policy{}
	for _, m := range []string{"roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight", "hotstandby"} {
		p := &Policy{Distmethod: m, TimedAffinity: time.Minute, Destinations: weights("a", 3, "b", 1), MaxConns: 4}
		if m == "hotstandby" {
			p.Destinations = []vipa.Destination{{Node: "a", Role: vipa.RolePreferred}, {Node: "b", Role: vipa.RoleBackup, Rank: 1}, {Node: "c", Role: vipa.RoleBackup, Rank: 2}}
			p.HealthSwitch = true
		}
		ps[m] = p
	}
	return ps
}

// TestWhatIfIsNextPick: for every distmethod, the what-if answer is the
// row and explanation the next connection gets, as rows fill up, fail and
// clients come back within their affinity.
func TestWhatIfIsNextPick(t *testing.T) {
	for m, p := range allMethods() {
		t.Run(m, func(t *testing.T) {
			f := newFixture(t, p, "a", "b", "c")
			local := netip.AddrPortFrom(vipa1, 80)
			var open []*Entry
			for i := range 60 {
				client := ip(i % 9)
				if i == 20 {
					f.target("a").DialFailed(f.now, true) // unhealthy
				}
				if i == 40 {
					f.target("a").ProbeDone(f.now, true)
				}
				a := f.group().WhatIf(f.crt, client, local, f.now)
				c := f.group().Pick(f.crt, client, f.now)
				tg := c.Next()
				if a.Target != tg || (tg != nil && a.Why != c.Why()) {
					t.Fatalf("connection %d: what-if %v (%+v), next connection %v (%+v)", i, nodeOf(a.Target), a.Why, nodeOf(tg), c.Why())
				}
				if tg == nil {
					continue
				}
				e := f.crt.Acquire()
				e.Client, e.VIPA, e.Port, e.Target, e.Why = netip.AddrPortFrom(client, 40000), vipa1, 80, tg, c.Why()
				f.crt.Insert(e)
				c.Commit(e)
				open = append(open, e)
				if i%3 == 0 { // some connections end
					f.crt.Release(open[0])
					open = open[1:]
				}
			}
			for _, e := range open {
				f.crt.Release(e)
			}
		})
	}
}

func nodeOf(t *Target) string {
	if t == nil {
		return "<none>"
	}
	return t.Node
}

// TestWhatIfChangesNothing: a thousand questions leave the rotation, the
// hotstandby row in use, the counters and the affinities as they were.
func TestWhatIfChangesNothing(t *testing.T) {
	for m, p := range allMethods() {
		p.AutoSwitchBack = false
		t.Run(m, func(t *testing.T) {
			f := newFixture(t, p, "a", "b", "c")
			e := f.open(ip(1))
			defer f.close(e)
			g := f.group()
			rr, inUse := g.st.rr.Load(), g.st.inUse.Load()
			rows, aff := f.d.Rows(), f.crt.Affinities(f.now)
			for i := range 1000 {
				g.WhatIf(f.crt, ip(i), netip.AddrPortFrom(vipa1, 80), f.now)
			}
			if g.st.rr.Load() != rr || g.st.inUse.Load() != inUse {
				t.Fatalf("rotation %d -> %d, in use %v -> %v", rr, g.st.rr.Load(), inUse, g.st.inUse.Load())
			}
			if got := f.d.Rows(); !reflect.DeepEqual(got, rows) {
				t.Fatalf("rows changed:\n%+v\n%+v", rows, got)
			}
			if got := f.crt.Affinities(f.now); !reflect.DeepEqual(got, aff) {
				t.Fatalf("affinities changed:\n%+v\n%+v", aff, got)
			}
		})
	}
}

// TestWhatIfCandidates: each row says why it cannot take the connection.
func TestWhatIfCandidates(t *testing.T) {
	f := newFixture(t, &Policy{MaxConns: 1, TimedAffinity: time.Minute}, "a", "b", "c", "d", "e")
	q := row(vipa1, 80, "d", 1)
	q.State = Quiesced
	f.d.Set(q)
	f.target("c").DialFailed(f.now, true)
	c := f.group().Pick(f.crt, ip(9), f.now) // ip(9) fills b and has its affinity
	c.Next()
	b := f.crt.Acquire()
	b.Client, b.VIPA, b.Port, b.Target = netip.AddrPortFrom(ip(9), 1), vipa1, 80, f.target("b")
	f.crt.Insert(b)
	c.Commit(b)
	defer f.close(b)
	local := addrOf("e", 80) // e is the listener itself
	a := f.group().WhatIf(f.crt, ip(9), local, f.now)
	want := map[string]string{"a": "", "b": "at max_conns", "c": "unhealthy", "d": "quiesced", "e": "this listener itself"}
	for _, c := range a.Candidates {
		if c.WhyNot != want[c.Node] || c.Eligible != (want[c.Node] == "") {
			t.Errorf("%s: eligible %v, why not %q; want %q", c.Node, c.Eligible, c.WhyNot, want[c.Node])
		}
	}
	if len(a.Candidates) != 5 || a.Target == nil || a.Target.Node != "a" {
		t.Fatalf("answer %v, %d candidates", nodeOf(a.Target), len(a.Candidates))
	}
	if a.Affinity != "b" || a.Why.Rule != ReasonRoundRobin {
		t.Fatalf("affinity %q (want b, full, so not taken), why %q", a.Affinity, a.Why.Text(""))
	}
}

func TestWhyText(t *testing.T) {
	for _, c := range []struct {
		w    Why
		last string
		want string
	}{
		{Why{}, "", ""},
		{Why{Rule: ReasonRoundRobin, Offered: ReasonRoundRobin}, "", "roundrobin"},
		{Why{Rule: ReasonRoundRobin, Offered: ReasonNext, Failed: 1}, "caddy-b", "roundrobin; retry after dial to caddy-b failed"},
		{Why{Rule: ReasonLeastConn, Offered: ReasonNext}, "", "leastconn; that row could not take it, next candidate"},
		{Why{Rule: ReasonAffinity, Offered: ReasonUnhealthy, Failed: 3}, "caddy-c", "timedaffinity; no healthy row with room, unhealthy fallback; retry after 3 failed dials, the last to caddy-c"},
	} {
		if got := c.w.Text(c.last); got != c.want {
			t.Errorf("%+v: %q, want %q", c.w, got, c.want)
		}
	}
}

// TestCRTExplain: an entry moved after a failed dial names it while it is
// in the table, and the name goes with the entry.
func TestCRTExplain(t *testing.T) {
	f := newFixture(t, &Policy{}, "a", "b", "c")
	c := f.group().Pick(f.crt, ip(1), f.now)
	first := c.Next()
	e := f.crt.Acquire()
	e.Client, e.VIPA, e.Port, e.Target, e.Why = netip.AddrPortFrom(ip(1), 1), vipa1, 80, first, c.Why()
	f.crt.Insert(e)
	explain := func() string {
		var got string
		f.crt.Range(func(e *Entry) bool { got = f.crt.Explain(e); return true })
		return got
	}
	if got := explain(); got != "roundrobin" {
		t.Fatalf("dialing: explain %q", got)
	}
	c.DialFailed()
	tg := c.Next()
	if c.LastFailed() != first {
		t.Fatalf("last failed %v, want %v", nodeOf(c.LastFailed()), first.Node)
	}
	f.crt.Move(e, tg, c.Why(), c.LastFailed().Node)
	if want := "roundrobin; retry after dial to " + first.Node + " failed"; explain() != want {
		t.Fatalf("explain %q, want %q", explain(), want)
	}
	f.crt.Release(e)
	if n := len(f.crt.failed); n != 0 {
		t.Fatalf("the CRT keeps %d names of removed entries", n)
	}
}

// TestShardSize: a shard fills falseShare bytes, so neighbouring shards'
// locks are not on one line pair.
func TestShardSize(t *testing.T) {
	if n := unsafe.Sizeof(shard{}); n != falseShare {
		t.Fatalf("shard is %d bytes, not %d", n, falseShare)
	}
}
