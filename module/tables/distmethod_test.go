package tables

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func TestPolicyErrors(t *testing.T) {
	for _, name := range []string{"", "roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight"} {
		if err := NewDPT().SetPolicy(vipa1, &Policy{Distmethod: name}); err != nil {
			t.Errorf("distmethod %q: %v", name, err)
		}
	}
	if err := NewDPT().SetPolicy(vipa1, &Policy{Distmethod: "random"}); err == nil || !strings.Contains(err.Error(), `"random"`) {
		t.Errorf("unknown method: error %v does not name it", err)
	}
	if err := NewDPT().SetPolicy(vipa1, &Policy{Distmethod: "hotstandby"}); err == nil {
		t.Error("hotstandby without a preferred destination: no error")
	}
	if err := NewDPT().SetPolicy(vipa1, &Policy{MaxConns: -1}); err == nil {
		t.Error("negative max_conns: no error")
	}
}

// fixture is one VIPA port with a policy, its rows and a CRT.
type fixture struct {
	t   testing.TB
	d   *DPT
	crt *CRT
	now time.Time
}

func newFixture(t testing.TB, p *Policy, names ...string) *fixture {
	t.Helper()
	f := &fixture{t: t, d: NewDPT(), crt: NewCRT(), now: time.Now()}
	if err := f.d.SetPolicy(vipa1, p); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		f.d.Set(row(vipa1, 80, n, 1))
	}
	return f
}

// weights lists destinations with weights: "a", 3, "b", 1, …
func weights(kv ...any) []vipa.Destination {
	var ds []vipa.Destination
	for i := 0; i < len(kv); i += 2 {
		ds = append(ds, vipa.Destination{Node: kv[i].(string), Weight: kv[i+1].(int)})
	}
	return ds
}

func (f *fixture) group() *Group { return f.d.Lookup(vipa1, 80) }

func (f *fixture) target(node string) *Target {
	g := f.group()
	return g.All()[must(findNode(g.All(), node))]
}

func must(i int, ok bool) int {
	if !ok {
		panic("no such row")
	}
	return i
}

// ip is the i-th test client address.
func ip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
}

// open routes one connection from client to the first candidate, as the
// handler does when its dial succeeds, and returns its CRT entry, or nil
// when there is no candidate.
func (f *fixture) open(client netip.Addr) *Entry {
	c := f.group().Pick(f.crt, client, f.now)
	t := c.Next()
	if t == nil {
		return nil
	}
	e := f.crt.Acquire()
	e.Client, e.VIPA, e.Port, e.Target = netip.AddrPortFrom(client, 40000), vipa1, 80, t
	f.crt.Insert(e)
	c.Commit(e)
	return e
}

func (f *fixture) close(e *Entry) { f.crt.Release(e) }

// seq picks n times without opening connections and names the choices.
func (f *fixture) seq(n int) string {
	var out []string
	for i := range n {
		c := f.group().Pick(f.crt, ip(i), f.now)
		out = append(out, c.Next().Node)
	}
	return strings.Join(out, " ")
}

func TestRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		dests []vipa.Destination
		names []string
		want  string
	}{
		{nil, []string{"a", "b", "c"}, "a b c a b c"},
		{weights("a", 3, "b", 1), []string{"a", "b"}, "a a b a a a b a"},
		{weights("a", 5, "b", 1, "c", 1), []string{"a", "b", "c"}, "a a b a c a a a a b a c a a"},
		{weights("a", 2, "b", 4), []string{"a", "b"}, "b a b b a b"},
		// a destination named by its address
		{weights("127.0.0.2", 2), []string{"a", "b"}, "b a b b a b"},
	} {
		f := newFixture(t, &Policy{Destinations: tc.dests}, tc.names...)
		n := len(strings.Fields(tc.want))
		if got := f.seq(n); got != tc.want {
			t.Errorf("weights %v: %s, want %s", tc.dests, got, tc.want)
		}
	}
}

func TestRoundRobinAcrossSnapshots(t *testing.T) {
	f := newFixture(t, nil, "a", "b", "c")
	if got := f.seq(4); got != "a b c a" {
		t.Fatalf("%s", got)
	}
	// The rotation continues across snapshots, whether the change touched
	// this group or another one.
	f.d.Set(row(vipa2, 80, "a", 1))
	f.d.Set(row(vipa1, 80, "a", 5))
	f.d.Refresh(time.Now())
	if got := f.seq(2); got != "b c" {
		t.Errorf("after unrelated and ready updates: %s, want b c", got)
	}
	f.d.Delete(vipa1, 80, "b")
	q := row(vipa1, 80, "c", 1)
	q.State = Quiesced
	f.d.Set(q)
	f.d.Set(row(vipa1, 80, "d", 1))
	got := f.seq(4)
	if n := strings.Count(got, "a"); n != 2 || strings.Count(got, "d") != 2 {
		t.Errorf("after removing b, quiescing c, adding d: %s", got)
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	f := newFixture(t, &Policy{Destinations: weights("a", 2)}, "a", "b", "c")
	const workers, each = 8, 3000
	counts := make([]map[string]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			counts[w] = map[string]int{}
			for i := range each {
				c := f.group().Pick(nil, ip(i), f.now)
				counts[w][c.Next().Node]++
			}
		})
	}
	wg.Wait()
	total := map[string]int{}
	for _, c := range counts {
		for n, k := range c {
			total[n] += k
		}
	}
	if want := map[string]int{"a": 12000, "b": 6000, "c": 6000}; !maps.Equal(total, want) {
		t.Errorf("concurrent picks = %v, want %v", total, want)
	}
}

func TestEmptyGroup(t *testing.T) {
	f := newFixture(t, nil)
	c := f.group().Pick(f.crt, ip(1), f.now)
	if c.Next() != nil || c.AllFull() || c.First() != nil {
		t.Error("candidates of an absent group")
	}
	q := row(vipa1, 80, "a", 1)
	q.State = Quiesced
	f.d.Set(q)
	c = f.group().Pick(f.crt, ip(1), f.now)
	if c.Next() != nil || c.AllFull() {
		t.Error("candidates of a quiesced group")
	}
}

func TestLeastConn(t *testing.T) {
	f := newFixture(t, &Policy{Distmethod: "leastconn", Destinations: weights("c", 2)}, "a", "b", "c")
	// With no connection open all tie: the choice rotates.
	if got := f.seq(3); got != "a b c" {
		t.Errorf("ties: %s, want a b c", got)
	}
	var es []*Entry
	for range 4 {
		es = append(es, f.open(ip(1)))
	}
	// 4 connections spread by active/weight: c takes two, a and b one.
	counts := map[string]int64{}
	for _, tg := range f.group().Targets() {
		counts[tg.Node] = tg.ActiveConns()
	}
	if want := map[string]int64{"a": 1, "b": 1, "c": 2}; !maps.Equal(counts, want) {
		t.Errorf("active = %v, want %v", counts, want)
	}
	f.close(es[0]) // frees one of a's or b's
	freed := es[0].Target
	_ = freed
	c := f.group().Pick(f.crt, ip(9), f.now)
	if got := c.Next(); got.ActiveConns() != 0 {
		t.Errorf("after a close: picked %s with %d active", got.Node, got.ActiveConns())
	}
	for _, e := range es[1:] {
		f.close(e)
	}
}

func hotstandby(auto, health bool) *Policy {
	return &Policy{Distmethod: "hotstandby", AutoSwitchBack: auto, HealthSwitch: health, Destinations: []vipa.Destination{
		{Node: "b", Role: vipa.RoleBackup, Rank: 50},
		{Node: "a", Role: vipa.RolePreferred},
		{Node: "c", Role: vipa.RoleBackup, Rank: 100},
	}}
}

func states(d *DPT) string {
	var out []string
	for _, r := range d.Rows() {
		out = append(out, r.Node+"="+r.State.String())
	}
	return strings.Join(out, " ")
}

func TestHotStandby(t *testing.T) {
	f := newFixture(t, hotstandby(true, true), "a", "b", "c")
	if got := f.seq(3); got != "a a a" {
		t.Errorf("preferred ready: %s", got)
	}
	if got, want := states(f.d), "a=active b=standby c=standby"; got != want {
		t.Errorf("states %s, want %s", got, want)
	}
	c := f.group().Pick(f.crt, ip(1), f.now)
	var order []string
	for tg := c.Next(); tg != nil; tg = c.Next() {
		order = append(order, tg.Node)
	}
	if got := strings.Join(order, " "); got != "a c b" {
		t.Errorf("candidates %s, want a c b (preferred, then backups by rank)", got)
	}
	// The preferred's application stops: the highest-ranked backup.
	f.d.Delete(vipa1, 80, "a")
	if got := f.seq(2); got != "c c" {
		t.Errorf("preferred gone: %s", got)
	}
	if got, want := states(f.d), "b=standby c=active"; got != want {
		t.Errorf("states %s, want %s", got, want)
	}
	if c := f.group().Pick(f.crt, ip(1), f.now); c.Reason() != ReasonBackup {
		t.Errorf("reason %v", c.Reason())
	}
	// autoswitchback on: back to the preferred as soon as it is there.
	f.d.Set(row(vipa1, 80, "a", 1))
	if got := f.seq(2); got != "a a" {
		t.Errorf("preferred back: %s", got)
	}
	// healthswitch on: an unhealthy preferred is left.
	f.target("a").DialFailed(f.now, true)
	if got := f.seq(2); got != "c c" {
		t.Errorf("preferred unhealthy: %s", got)
	}
}

func TestHotStandbyNoSwitchBack(t *testing.T) {
	f := newFixture(t, hotstandby(false, true), "a", "b", "c")
	f.open(ip(1))
	f.d.Delete(vipa1, 80, "a")
	f.open(ip(2))
	f.d.Set(row(vipa1, 80, "a", 1))
	if got := f.seq(2); got != "c c" {
		t.Errorf("autoswitchback off, preferred back: %s, want the backup in use", got)
	}
	if got, want := states(f.d), "a=standby b=standby c=active"; got != want {
		t.Errorf("states %s, want %s", got, want)
	}
	f.d.Delete(vipa1, 80, "c")
	if got := f.seq(1); got != "a" {
		t.Errorf("backup in use gone: %s, want the preferred", got)
	}
}

func TestHotStandbyNoHealthSwitch(t *testing.T) {
	f := newFixture(t, hotstandby(true, false), "a", "b", "c")
	f.target("a").DialFailed(f.now, true)
	c := f.group().Pick(f.crt, ip(1), f.now)
	if tg := c.Next(); tg.Node != "a" {
		t.Errorf("healthswitch off: first candidate %s, want the unhealthy preferred", tg.Node)
	}
	if tg := c.Next(); tg.Node != "c" {
		t.Errorf("then %s, want c", tg.Node)
	}
}

// TestHotStandbyStateInUse: a row that holds connections or takes the new
// ones reads active in Rows and WhatIf, whichever row the method prefers;
// standby is only for rows not in use.
func TestHotStandbyStateInUse(t *testing.T) {
	whatIf := func(f *fixture) string {
		var out []string
		for _, k := range f.group().WhatIf(f.crt, ip(99), netip.AddrPort{}, f.now).Candidates {
			out = append(out, k.Node+"="+k.State.String())
		}
		return strings.Join(out, " ")
	}
	check := func(t *testing.T, f *fixture, want string) {
		t.Helper()
		if got := states(f.d); got != want {
			t.Errorf("Rows states %s, want %s", got, want)
		}
		if got := whatIf(f); got != want {
			t.Errorf("WhatIf states %s, want %s", got, want)
		}
	}
	t.Run("timedaffinity to a backup after the switch back", func(t *testing.T) {
		p := hotstandby(true, true)
		p.TimedAffinity = time.Minute
		f := newFixture(t, p, "a", "b", "c")
		f.d.Delete(vipa1, 80, "a")
		e1 := f.open(ip(1))
		f.d.Set(row(vipa1, 80, "a", 1))
		e2 := f.open(ip(1)) // the client's affinity keeps it on c
		if e1.Target.Node != "c" || e2.Target.Node != "c" {
			t.Fatalf("connections to %s and %s, want c by the affinity", e1.Target.Node, e2.Target.Node)
		}
		if got := f.seq(1); got != "a" {
			t.Fatalf("other clients: %s, want the preferred", got)
		}
		check(t, f, "a=active b=standby c=active")
		f.close(e1)
		f.close(e2)
		// The affinity holds for a minute: the client's next connection
		// still goes to c.
		check(t, f, "a=active b=standby c=active")
		if e := f.open(ip(1)); e.Target.Node != "c" {
			t.Fatalf("within the affinity: %s, want c", e.Target.Node)
		} else {
			f.close(e)
		}
		if n := f.crt.SweepAffinity(time.Now()); n != 1 {
			t.Fatalf("sweep before expiry left %d affinities", n)
		}
		check(t, f, "a=active b=standby c=active")
		f.now = time.Now().Add(2 * time.Minute)
		f.crt.SweepAffinity(f.now)
		check(t, f, "a=active b=standby c=standby")
		// Each row counts the records that point at it: a new client's
		// only, on a.
		e3 := f.open(ip(2))
		if e3.Target.Node != "a" {
			t.Fatalf("a new client: %s, want a", e3.Target.Node)
		}
		f.close(e3)
		for _, n := range []string{"a", "b", "c"} {
			want := int64(0)
			if n == "a" {
				want = 1
			}
			if got := f.target(n).stats.affined(); got != want {
				t.Errorf("%s: %d affinities counted, want %d", n, got, want)
			}
		}
	})
	t.Run("max_conns overflow", func(t *testing.T) {
		p := hotstandby(true, true)
		p.MaxConns = 2
		f := newFixture(t, p, "a", "b", "c")
		var es []*Entry
		for i, want := range []string{"a", "a", "c"} {
			e := f.open(ip(i))
			if e == nil || e.Target.Node != want {
				t.Fatalf("connection %d: %v, want %s", i, e, want)
			}
			es = append(es, e)
		}
		// a is full and keeps its connections, c takes the new ones
		check(t, f, "a=active b=standby c=active")
		f.close(es[0]) // a has room again; c only holds its connection
		if got := f.seq(1); got != "a" {
			t.Fatalf("a with room: %s, want a", got)
		}
		check(t, f, "a=active b=standby c=active")
		f.close(es[2])
		check(t, f, "a=active b=standby c=standby")
		f.close(es[1])
		check(t, f, "a=active b=standby c=standby")
	})
}

// remapped is the fraction of clients whose sourcehash row differs.
func remapped(before, after map[int]string) float64 {
	n := 0
	for k, v := range before {
		if after[k] != v {
			n++
		}
	}
	return float64(n) / float64(len(before))
}

func TestSourceHash(t *testing.T) {
	const clients, rows = 100_000, 5
	names := []string{"a", "b", "c", "d", "e", "f"}
	f := newFixture(t, &Policy{Distmethod: "sourcehash"}, names[:rows]...)
	assign := func() map[int]string {
		g := f.group()
		m := make(map[int]string, clients)
		for i := range clients {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			c := g.Pick(f.crt, a, f.now)
			m[i] = c.Next().Node
		}
		return m
	}
	base := assign()
	if again := assign(); remapped(base, again) != 0 {
		t.Fatal("the same clients hashed differently")
	}
	f.d.Delete(vipa1, 80, "c")
	less := assign()
	if r, lim := remapped(base, less), 1.2/rows; r > lim {
		t.Errorf("removing 1 of %d rows remapped %.4f of clients, want <= %.4f", rows, r, lim)
	}
	for k, v := range base {
		if v != "c" && less[k] != v {
			t.Fatalf("client %d moved from %s although its row stayed", k, v)
		}
	}
	f.d.Set(row(vipa1, 80, "c", 1))
	if remapped(base, assign()) != 0 {
		t.Error("the row came back but its clients did not")
	}
	f.d.Set(row(vipa1, 80, "f", 1))
	if r, lim := remapped(base, assign()), 1.2/(rows+1); r > lim {
		t.Errorf("adding a row to %d remapped %.4f of clients, want <= %.4f", rows, r, lim)
	}
	// An unhealthy row's clients go elsewhere; the others stay.
	f.target("a").DialFailed(f.now, true)
	for k, v := range assign() {
		if base[k] != "a" && v != base[k] && v != "f" {
			t.Fatalf("client %d moved from %s to %s when a turned unhealthy", k, base[k], v)
		}
		if v == "a" {
			t.Fatal("a client hashed to the unhealthy row")
		}
	}
}

func TestTimedAffinity(t *testing.T) {
	const ttl = time.Minute
	f := newFixture(t, &Policy{TimedAffinity: ttl}, "a", "b", "c")
	client := ip(7)
	e1 := f.open(client)
	node := e1.Target.Node
	for i := range 5 {
		if e := f.open(client); e.Target.Node != node {
			t.Fatalf("connection %d went to %s, the client's affinity is %s", i, e.Target.Node, node)
		}
	}
	if c := f.group().Peek(f.crt, client, f.now); c.Reason() != ReasonAffinity {
		t.Errorf("reason %v", c.Reason())
	}
	aff := f.crt.Affinities(f.now)
	if len(aff) != 1 || aff[0].Node != node || aff[0].ActiveConns != 6 || !aff[0].Expires.IsZero() || aff[0].Client != client || aff[0].Port != 80 {
		t.Fatalf("Affinities = %+v", aff)
	}
	// Close them all: the affinity runs for ttl from the last close.
	var open []*Entry
	f.crt.Range(func(e *Entry) bool { open = append(open, e); return true })
	for _, e := range open {
		f.crt.Remove(e)
	}
	aff = f.crt.Affinities(time.Now())
	if len(aff) != 1 || aff[0].ActiveConns != 0 || time.Until(aff[0].Expires) > ttl || time.Until(aff[0].Expires) < ttl-time.Second {
		t.Fatalf("after the last close: %+v", aff)
	}
	f.now = time.Now().Add(ttl - time.Second)
	if e := f.open(client); e.Target.Node != node {
		t.Errorf("within the ttl: %s, want %s", e.Target.Node, node)
	} else {
		f.crt.Remove(e)
	}
	// Expired: the method decides again, and Sweep forgets it.
	later := time.Now().Add(2 * ttl)
	if n := f.crt.SweepAffinity(time.Now()); n != 1 {
		t.Errorf("sweep before expiry left %d", n)
	}
	if c := f.group().Peek(f.crt, client, later); c.Reason() == ReasonAffinity {
		t.Error("an expired affinity still routes")
	}
	if n := f.crt.SweepAffinity(later); n != 0 || len(f.crt.Affinities(later)) != 0 {
		t.Errorf("after expiry: %d affinities left", n)
	}
	// A quiesced row takes no new connection, affinities included.
	f.now = time.Now()
	e := f.open(client)
	q := row(vipa1, 80, e.Target.Node, 1)
	q.State = Quiesced
	f.d.Set(q)
	if e2 := f.open(client); e2.Target.Node == e.Target.Node {
		t.Errorf("a quiesced row got a connection by affinity")
	}
	for _, e := range open {
		f.crt.Release(e)
	}
}

// TestAffinityCommitAfterSweep: a record swept between ranking and commit
// and reused by another client is not the first client's any more.
func TestAffinityCommitAfterSweep(t *testing.T) {
	f := newFixture(t, &Policy{TimedAffinity: time.Millisecond}, "a", "b")
	f.crt.Release(f.open(ip(1)))
	f.now = time.Now().Add(time.Second)
	c := f.group().Pick(f.crt, ip(1), f.now) // finds ip(1)'s expired record
	if n := f.crt.SweepAffinity(f.now); n != 0 {
		t.Fatalf("%d affinities left", n)
	}
	e2 := f.open(ip(2)) // reuses the swept record
	e1 := f.crt.Acquire()
	e1.Client, e1.VIPA, e1.Port, e1.Target = netip.AddrPortFrom(ip(1), 1), vipa1, 80, c.Next()
	f.crt.Insert(e1)
	c.Commit(e1)
	got := f.crt.Affinities(f.now)
	if len(got) != 2 || got[0].Client != ip(1) || got[0].ActiveConns != 1 || got[1].Client != ip(2) || got[1].ActiveConns != 1 {
		t.Errorf("affinities %+v", got)
	}
	f.crt.Release(e1)
	f.crt.Release(e2)
}

func TestOptLocal(t *testing.T) {
	f := newFixture(t, &Policy{LocalNode: "b"}, "a", "b", "c")
	if got := f.seq(3); got != "b b b" {
		t.Errorf("optlocal: %s", got)
	}
	if c := f.group().Peek(f.crt, ip(1), f.now); c.Reason() != ReasonOptLocal {
		t.Errorf("reason %v", c.Reason())
	}
	f.target("b").DialFailed(f.now, true)
	if got := f.seq(3); strings.Contains(got, "b") {
		t.Errorf("optlocal with the local row unhealthy: %s", got)
	}
}

func TestMaxConns(t *testing.T) {
	f := newFixture(t, &Policy{MaxConns: 2}, "a", "b")
	var es []*Entry
	for i := range 4 {
		es = append(es, f.open(ip(i)))
	}
	for _, tg := range f.group().Targets() {
		if tg.ActiveConns() != 2 {
			t.Errorf("%s has %d", tg.Node, tg.ActiveConns())
		}
	}
	c := f.group().Pick(f.crt, ip(9), f.now)
	if tg := c.Next(); tg != nil || !c.AllFull() {
		t.Errorf("all full: Next = %v, AllFull = %v", tg, c.AllFull())
	}
	f.close(es[0])
	if e := f.open(ip(9)); e == nil || e.Target != es[1].Target && e.Target.Node != "a" {
		t.Errorf("after a close the freed row takes the next: %v", e)
	}
}

func TestSlowStart(t *testing.T) {
	const ramp = 10 * time.Second
	f := newFixture(t, &Policy{SlowStart: ramp, Destinations: weights("a", 4)}, "a")
	start := time.Now()
	eff := func(at time.Duration) float64 {
		f.d.Refresh(start.Add(at))
		return f.target("a").EffectiveWeight()
	}
	for _, tc := range []struct {
		at   time.Duration
		want float64
	}{{0, 0.4}, {ramp / 2, 2.2}, {ramp, 4}, {2 * ramp, 4}} {
		if got := eff(tc.at); math.Abs(got-tc.want) > 0.05 {
			t.Errorf("at %v: effective weight %.2f, want %.2f", tc.at, got, tc.want)
		}
	}
	// A recovered row ramps again, from its recovery: at half the ramp it
	// has 55% of weight × TSR (without the new ramp it would have all of it).
	tg := f.target("a")
	tg.DialFailed(start, true)
	tg.ProbeDone(start.Add(time.Hour), true)
	want := 4 * float64(tg.TSR()) / 100 * 0.55
	if got := eff(time.Hour + ramp/2); math.Abs(got-want) > 0.05 {
		t.Errorf("recovered at half the ramp: effective weight %.2f, want %.2f (TSR %d)", got, want, tg.TSR())
	}
	if got := eff(time.Hour + ramp); math.Abs(got-4*float64(tg.TSR())/100) > 0.05 {
		t.Errorf("recovered, the ramp over: effective weight %.2f, want %.2f", got, 4*float64(tg.TSR())/100)
	}
}

func TestTSR(t *testing.T) {
	f := newFixture(t, nil, "a", "b")
	a := f.target("a")
	now := time.Now()
	// One refusal among thousands barely moves the score.
	for i := range 5000 {
		if i == 2500 {
			a.DialFailed(now, false)
		} else {
			a.DialSucceeded(now)
		}
		if a.TSR() < 90 || a.Health() != Healthy {
			t.Fatalf("dial %d: TSR %d, %v", i, a.TSR(), a.Health())
		}
	}
	// A dead row drops within a few attempts.
	b := f.target("b")
	var tsr []int
	for range 6 {
		b.DialFailed(now, false)
		tsr = append(tsr, b.TSR())
	}
	if tsr[5] > 25 || tsr[0] < 90 || !slices.IsSortedFunc(tsr, func(x, y int) int { return y - x }) {
		t.Errorf("TSR of a dead row over 6 refusals: %v", tsr)
	}
	if b.Health() != Unhealthy {
		t.Error("a row refusing 6 dials is healthy")
	}
	f.d.Refresh(now)
	if r := f.d.Rows()[1]; r.TSR != b.TSR() || r.Health != Unhealthy || r.EffectiveWeight > 0.25 {
		t.Errorf("row %+v", r)
	}
}

// TestDemote: a node taken as down has every row unhealthy at once, on
// every port, reported once; the others' rows stay healthy, and a probe
// brings a row back.
func TestDemote(t *testing.T) {
	f := newFixture(t, nil, "a", "b")
	f.d.Set(row(vipa1, 443, "a", 1))
	now := time.Now()
	got := f.d.Demote("a", now)
	if len(got) != 2 || got[0].Node != "a" || got[1].Node != "a" {
		t.Fatalf("demoted %v, want a's two rows", nodes(got))
	}
	if f.target("a").Health() != Unhealthy || f.target("b").Health() != Healthy {
		t.Fatalf("health after demoting a: a %v, b %v", f.target("a").Health(), f.target("b").Health())
	}
	if again := f.d.Demote("a", now); len(again) != 0 {
		t.Errorf("demoted twice: %v", nodes(again))
	}
	for i := range 20 {
		c := f.group().Pick(f.crt, ip(i), now)
		if n := c.Next(); n == nil || n.Node != "b" {
			t.Fatalf("a new connection offered %v first, want b", n)
		}
	}
	if due := f.d.Due(now.Add(ProbeBackoff)); len(due) != 2 {
		t.Fatalf("probes due after the backoff: %v, want a's two rows", nodes(due))
	}
	if !f.target("a").ProbeDone(now.Add(ProbeBackoff), true) || f.target("a").Health() != Healthy {
		t.Fatal("a probe that answered did not bring the row back")
	}
}

func TestHealthTransitions(t *testing.T) {
	f := newFixture(t, nil, "a", "b")
	a := f.target("a")
	now := time.Now()
	if a.DialFailed(now, false) || a.Health() != Healthy {
		t.Fatal("one refusal made the row unhealthy")
	}
	if !a.DialFailed(now, false) || a.Health() != Unhealthy {
		t.Fatal("two refusals in a row did not make it unhealthy")
	}
	if a.DialFailed(now, false) {
		t.Error("the transition was reported twice")
	}
	if b := f.target("b"); !b.DialFailed(now, true) {
		t.Error("a timed-out dial did not make the row unhealthy at once")
	}
	// Probes: due after the backoff, handed out once, backoff doubles.
	if due := f.d.Due(now.Add(ProbeBackoff - time.Millisecond)); len(due) != 0 {
		t.Errorf("due before the backoff: %v", nodes(due))
	}
	due := f.d.Due(now.Add(ProbeBackoff))
	if got := nodes(due); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("due = %v", got)
	}
	if again := f.d.Due(now.Add(ProbeBackoff)); len(again) != 0 {
		t.Errorf("handed out twice: %v", nodes(again))
	}
	t1 := now.Add(ProbeBackoff)
	if a.ProbeDone(t1, false) {
		t.Error("a failed probe recovered the row")
	}
	if got := f.d.Due(t1.Add(2*ProbeBackoff - time.Millisecond)); len(got) != 0 {
		t.Errorf("due before the doubled backoff: %v", nodes(got))
	}
	if got := f.d.Due(t1.Add(2 * ProbeBackoff)); len(got) != 1 || got[0] != a {
		t.Fatalf("due after the doubled backoff: %v", nodes(got))
	}
	if !a.ProbeDone(t1.Add(2*ProbeBackoff), true) || a.Health() != Healthy {
		t.Error("a probe that answered did not return the row")
	}
	f.target("b").ProbeDone(t1, false)
	if got := f.d.Due(t1.Add(2 * ProbeBackoff)); len(got) != 1 || got[0].Node != "b" {
		t.Errorf("b, its probe failed, is not due again: %v", nodes(got))
	}
	// A client that fell back to an unhealthy row and got through returns it.
	b := f.target("b")
	if !b.DialSucceeded(now) || b.Health() != Healthy {
		t.Error("a successful dial did not return the row")
	}
}

// TestNeverClosedWhileHealthy: with any number of dead rows ahead, the
// first candidate is a healthy row with room; unhealthy rows come only
// after every healthy one.
func TestNeverClosedWhileHealthy(t *testing.T) {
	for _, m := range []string{"roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight", "hotstandby"} {
		t.Run(m, func(t *testing.T) {
			names := []string{"a", "b", "c", "d", "e", "f"}
			p := &Policy{Distmethod: m, MaxConns: 3}
			if m == "hotstandby" {
				p.HealthSwitch = true
				p.Destinations = []vipa.Destination{{Node: "a", Role: vipa.RolePreferred}}
			}
			f := newFixture(t, p, names...)
			for _, n := range names[:4] {
				f.target(n).DialFailed(f.now, true)
			}
			for i := range 6 {
				c := f.group().Pick(f.crt, ip(i), f.now)
				var order []string
				for tg := c.Next(); tg != nil; tg = c.Next() {
					order = append(order, tg.Node)
				}
				if len(order) != 6 || !strings.Contains("ef", order[0]) || !strings.Contains("ef", order[1]) {
					t.Fatalf("pick %d: candidates %v, want e and f first, then the 4 unhealthy", i, order)
				}
			}
			// Fill e and f: the unhealthy rows are all that is left.
			for range 6 {
				f.open(ip(1))
			}
			c := f.group().Pick(f.crt, ip(2), f.now)
			if tg := c.Next(); tg == nil || tg.Health() != Unhealthy || !c.Unhealthy() || c.Reason() != ReasonUnhealthy {
				t.Fatalf("healthy rows full: %v, %v", tg, c.Reason())
			}
			var all []*Entry
			f.crt.Range(func(e *Entry) bool { all = append(all, e); return true })
			for _, e := range all {
				f.crt.Remove(e)
			}
		})
	}
}

// TestFailedRowNotOfferedAgain: a row whose dial for this connection
// failed and turned it unhealthy is not offered again in the unhealthy
// pass (a blackholed row would cost the client a second dial timeout);
// a row unhealthy before the connection still is, once.
func TestFailedRowNotOfferedAgain(t *testing.T) {
	f := newFixture(t, nil, "a", "b")
	c := f.group().Pick(f.crt, ip(1), f.now)
	for range 2 {
		tg := c.Next()
		if tg == nil || tg.Health() != Healthy {
			t.Fatalf("pass 1 offered %v", tg)
		}
		tg.DialFailed(f.now, true) // timed out: unhealthy at once
		c.DialFailed()
	}
	if tg := c.Next(); tg != nil {
		t.Fatalf("offered %s again after its dial for this connection failed", tg.Node)
	}
	// The next connection tries each unhealthy row once.
	c = f.group().Pick(f.crt, ip(2), f.now)
	var got []string
	for tg := c.Next(); tg != nil; tg = c.Next() {
		if !c.Unhealthy() {
			t.Fatalf("%s offered as healthy", tg.Node)
		}
		got = append(got, tg.Node)
		c.DialFailed()
	}
	if slices.Sort(got); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("the next connection was offered %v, want a and b once each", got)
	}
}

// TestPeek: the what-if answer is the choice Pick makes next, and asking
// changes nothing.
func TestPeek(t *testing.T) {
	for _, m := range []string{"roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight"} {
		f := newFixture(t, &Policy{Distmethod: m, TimedAffinity: time.Minute, Destinations: weights("a", 2)}, "a", "b", "c")
		for i := range 50 {
			client := ip(i % 7)
			p1 := f.group().Peek(f.crt, client, f.now)
			p2 := f.group().Peek(f.crt, client, f.now)
			if p1.First() != p2.First() {
				t.Fatalf("%s: Peek changed state", m)
			}
			before := len(f.crt.Affinities(f.now))
			c := f.group().Pick(f.crt, client, f.now)
			if c.First() != p1.First() || c.Reason() != p1.Reason() {
				t.Fatalf("%s pick %d: Peek said %s (%v), Pick chose %s (%v)", m, i, p1.First().Node, p1.Reason(), c.First().Node, c.Reason())
			}
			if len(f.crt.Affinities(f.now)) != before {
				t.Fatalf("%s: Pick changed affinities before Commit", m)
			}
			f.open(client)
		}
		var all []*Entry
		f.crt.Range(func(e *Entry) bool { all = append(all, e); return true })
		for _, e := range all {
			f.crt.Remove(e)
		}
	}
}

// TestPickAllocs: ranking, iterating and committing allocate nothing.
func TestPickAllocs(t *testing.T) {
	for _, m := range []string{"roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight", "hotstandby"} {
		p := &Policy{Distmethod: m, TimedAffinity: time.Minute, LocalNode: "z", MaxConns: 1 << 40, SlowStart: time.Second}
		if m == "hotstandby" {
			p.Destinations = []vipa.Destination{{Node: "a", Role: vipa.RolePreferred}, {Node: "b", Role: vipa.RoleBackup, Rank: 1}}
		}
		f := newFixture(t, p, "a", "b", "c")
		f.target("c").DialFailed(f.now, true)
		e := f.open(ip(1)) // the affinity exists: commits update it in place
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			c := f.group().Pick(f.crt, ip(i%2), f.now)
			for c.Next() != nil {
			}
			c.Commit(e)
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocs per pick", m, allocs)
		}
		f.crt.Release(e)
	}
}

func TestReasons(t *testing.T) {
	for r := ReasonNone; r <= ReasonUnhealthy; r++ {
		if r != ReasonNone && r.String() == "" {
			t.Errorf("reason %d has no name", r)
		}
	}
	if got := fmt.Sprint(ReasonLeastConn); got != "leastconn" {
		t.Errorf("%q", got)
	}
}

// TestMaxConnsBeyondSlack: a bound far above the counts' slack is kept
// exactly too: rows fill to it, not one connection more or less.
func TestMaxConnsBeyondSlack(t *testing.T) {
	const bound = 300
	f := newFixture(t, &Policy{MaxConns: bound}, "a", "b")
	var es []*Entry
	for i := range 2 * bound {
		e := f.open(ip(i))
		if e == nil {
			t.Fatalf("connection %d refused", i)
		}
		es = append(es, e)
	}
	for _, tg := range f.group().Targets() {
		if tg.ActiveConns() != bound {
			t.Errorf("%s has %d", tg.Node, tg.ActiveConns())
		}
	}
	if c := f.group().Pick(f.crt, ip(9), f.now); c.Next() != nil || !c.AllFull() {
		t.Errorf("all full, yet Next offered a row")
	}
	freed := es[0].Target.Node
	f.close(es[0])
	if e := f.open(ip(9)); e == nil || e.Target.Node != freed {
		t.Errorf("after a close the freed row %s takes the next: %v", freed, e)
	} else {
		es[0] = e
	}
	for _, e := range es {
		f.close(e)
	}
}
