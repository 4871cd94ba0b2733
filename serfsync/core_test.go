package serfsync

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// testCores are cores wired by hand: syncs run at once, in order.
type testCores struct {
	now   time.Time
	cores map[string]*core
	rows  map[string]map[string][]vipa.Listener // node → DPT
}

func newTestCores(names ...string) *testCores {
	tc := &testCores{now: time.Unix(1_700_000_000, 0), cores: map[string]*core{}, rows: map[string]map[string][]vipa.Listener{}}
	for i, name := range names {
		tc.cores[name] = newCore(name, coreIP(i), uint64(i+1), time.Second, zap.NewNop(), &stats{})
		tc.rows[name] = map[string][]vipa.Listener{}
	}
	return tc
}

func coreIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}) }

// views is serf's list as every core sees it: all alive, current tags.
func (tc *testCores) views() []memberView {
	var vs []memberView
	for i, name := range slices.Sorted(mapKeysC(tc.cores)) {
		c := tc.cores[name]
		vs = append(vs, memberView{name: name, addr: netip.AddrPortFrom(coreIP(i), 7946), alive: true,
			tags: map[string]string{tagAdvertise: c.adv.String(), tagReport: c.own.report.digest.String(), tagDefs: c.own.defs.digest.String(), tagVIPADyn: c.vipadynTag}})
	}
	return vs
}

func mapKeysC(m map[string]*core) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// settle steps every core and runs the syncs they hand out until none
// does; it returns how many syncs ran.
func (tc *testCores) settle(t *testing.T) int {
	t.Helper()
	syncs := 0
	for range 20 {
		var jobs []func()
		for _, name := range slices.Sorted(mapKeysC(tc.cores)) {
			c := tc.cores[name]
			acts := c.step(tc.now)
			for _, r := range acts.reports {
				if len(r.rows) == 0 {
					delete(tc.rows[name], r.node)
				} else {
					tc.rows[name][r.node] = r.rows
				}
			}
			for _, j := range acts.syncs {
				jobs = append(jobs, func() {
					ans := tc.cores[j.peer].answer(j.req)
					c.answered(j, ans, nil, tc.now)
				})
			}
		}
		if len(jobs) == 0 {
			return syncs
		}
		syncs += len(jobs)
		for _, j := range jobs {
			j()
		}
	}
	t.Fatal("syncs never ended")
	return 0
}

// A routing node and two targets: definitions reach the targets, reports
// reach the routing node, a change travels by one sync each way, and a
// member gone takes its rows with it.
func TestCoreConverges(t *testing.T) {
	tc := newTestCores("r", "t1", "t2")
	r, t1, t2 := tc.cores["r"], tc.cores["t1"], tc.cores["t2"]
	r.setDefinitions([]*vipa.Definition{def(vipaA.String(), "", ports("80-81"))}, tc.now)
	t1.setReport([]vipa.Listener{{VIPA: vipaA, Port: 80, Ready: 1}, {VIPA: vipaA, Port: 99, Ready: 1}})
	t2.setReport([]vipa.Listener{{VIPA: vipaA, Port: 81, Ready: 2, Conns: 3}})
	for _, c := range tc.cores {
		c.membersListed(tc.views(), tc.now)
	}
	tc.settle(t)
	want := map[string][]vipa.Listener{
		"t1": {{VIPA: vipaA, Port: 80, Address: netip.MustParseAddrPort("10.0.0.2:80"), Ready: 1}},
		"t2": {{VIPA: vipaA, Port: 81, Address: netip.MustParseAddrPort("10.0.0.3:81"), Ready: 2, Conns: 3}},
	}
	if !equalDPT(tc.rows["r"], want) {
		t.Fatalf("DPT %v, want %v", tc.rows["r"], want)
	}
	for _, c := range []*core{t1, t2} {
		if len(c.known) != 1 || !c.known[0].Owner || c.known[0].RoutingNode != "r" {
			t.Fatalf("%s knows %v", c.name, c.known)
		}
	}
	if r.stats.snapshot()["drop_port"] != 1 {
		t.Errorf("port 99 not counted: %v", r.stats.snapshot())
	}

	// A change: the target tells its routing node, which fetches it.
	t1.setReport([]vipa.Listener{{VIPA: vipaA, Port: 81, Ready: 4}})
	if n := tc.settle(t); n != 2 {
		t.Errorf("a change took %d syncs, want 2", n)
	}
	if got := tc.rows["r"]["t1"]; len(got) != 1 || got[0].Port != 81 || got[0].Ready != 4 {
		t.Errorf("t1's rows %v", got)
	}

	// t2 fails: its rows go at once.
	vs := tc.views()
	vs[2].alive = false
	r.membersChanged(vs[2:])
	if acts := r.step(tc.now); !slices.Equal(acts.gone, []string{"t2"}) {
		t.Errorf("gone %v", acts.gone)
	}
}

// Dispatch runs at most fetchers syncs, at most half of them anti-entropy,
// news first and, within a class, the first waiting first.
func TestCoreDispatch(t *testing.T) {
	c := newCore("r", coreIP(0), 1, time.Second, zap.NewNop(), &stats{})
	now := time.Unix(1_700_000_000, 0)
	var vs []memberView
	for i := range 20 {
		vs = append(vs, memberView{name: fmt.Sprintf("m%02d", i), addr: netip.AddrPortFrom(coreIP(i+1), 7946), alive: true})
	}
	c.membersListed(vs, now)
	for i := 19; i >= 0; i-- {
		c.scheduleRoutine(vs[i].name)
	}
	c.schedule("m07", true)
	c.schedule("m03", true)
	jobs, _ := c.dispatch(now)
	var got []string
	for _, j := range jobs {
		got = append(got, j.peer)
	}
	// Two urgent ones, then anti-entropy up to half the fetchers, oldest first.
	if want := []string{"m07", "m03", "m19", "m18"}; !slices.Equal(got, want) {
		t.Fatalf("dispatched %v, want %v", got, want)
	}
	// A failure backs off; an answer frees a fetcher for the next.
	c.answered(jobs[0], syncAnswer{}, errors.New("timeout"), now)
	jobs, next := c.dispatch(now)
	if len(jobs) != 1 || jobs[0].peer != "m17" || !next.Equal(now.Add(minBackoff)) {
		t.Fatalf("after a failure: %v, next %v", jobs, next)
	}
	// Retried when due, ahead of anti-entropy, which has its half.
	if jobs, _ := c.dispatch(now.Add(minBackoff)); len(jobs) != 1 || jobs[0].peer != "m07" {
		t.Errorf("retry: %v", jobs)
	}
}

// The member list is read at most once per refreshGap.
func TestCoreListGap(t *testing.T) {
	c := newCore("r", coreIP(0), 1, time.Second, zap.NewNop(), &stats{})
	now := time.Unix(1_700_000_000, 0)
	if due, _ := c.listDue(now); !due {
		t.Fatal("no list at start")
	}
	c.membersListed(nil, now)
	if due, _ := c.listDue(now); due {
		t.Fatal("listed twice")
	}
	c.answer(syncRequest{from: "newcomer"})
	due, retry := c.listDue(now.Add(time.Millisecond))
	if due || !retry.Equal(now.Add(refreshGap)) {
		t.Fatalf("due %v, retry %v", due, retry)
	}
	if due, _ := c.listDue(now.Add(refreshGap)); !due {
		t.Fatal("a newcomer's sync does not list the members")
	}
}
