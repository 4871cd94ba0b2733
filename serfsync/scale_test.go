package serfsync

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// TestReportLatency measures, with the default (LAN) profile and timers,
// how long a target's listener change takes to reach the routing node's
// OnReport: listen → routable and stop listening → unroutable. Every
// change must arrive within 2 s; the p99 budget of 100 ms is a goal, which
// .ci/run asserts without -race (VIPA_SCALE_GOALS=1).
func TestReportLatency(t *testing.T) {
	nodes := startFleet(t, 3, fleetOpts{profile: "lan", reconcile: 3 * time.Second})
	defs := routed(nodes)
	waitFor(t, 5*time.Second, "definitions reach the target", func() bool { return len(nodes[2].Definitions()) == 2 })
	trials := 100
	if testing.Short() {
		trials = 20
	}
	var up, down []time.Duration
	for i := range 2 * trials {
		var ls []vipa.Listener
		if i%2 == 0 {
			ls = []vipa.Listener{{VIPA: vipaA, Port: 8080 + uint16(i%10), Ready: 1}}
		}
		start := time.Now()
		nodes[2].set(ls)
		for !equalDPT(nodes[0].dpt(), truth(nodes[0], nodes, defs)) {
			select {
			case <-nodes[0].changed:
			case <-time.After(2 * time.Second):
				t.Fatalf("trial %d: no report after 2 s; stats %v", i, nodes[0].Stats())
			}
		}
		d := time.Since(start)
		if i%2 == 0 {
			up = append(up, d)
		} else {
			down = append(down, d)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	}
	for _, s := range []struct {
		what string
		ds   []time.Duration
	}{{"listen → routable", up}, {"stop → unroutable", down}} {
		p50, p99 := percentiles(s.ds)
		t.Logf("%s over %d trials: p50 %v, p99 %v", s.what, len(s.ds), p50, p99)
		checkGoal(t, s.what+", p99", p99, 100*time.Millisecond)
	}
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[(len(s)*99+99)/100-1]
}

// Goals of TestScale100x20, on a 2-core machine with the whole fleet in one
// process.
const (
	scaleStartGoal  = time.Second            // DPT exact after all members are alive
	scaleChangeGoal = 250 * time.Millisecond // after one change, or ten at once
	scaleLossyGoal  = time.Second            // after ten changes with 20 % loss

	// A one-target trial during which the process's threads waited this
	// long in all for a CPU that other processes held is not judged; see
	// TestScale100x20.
	scaleStarvedWait = 50 * time.Millisecond
	scaleTrials      = 20 // one-target trials judged
	scaleTrialsMin   = 10 // fewer judged: the machine, not the fleet, is measured
	scaleTrialsMax   = 60 // trials run at most
)

// waitedSince is how long the process's threads waited for a CPU since w0
// (cpuWaited), or "not measured".
func waitedSince(w0 time.Duration, ok bool) string {
	w, _ := cpuWaited()
	if !ok {
		return "not measured"
	}
	return (w - w0).Round(time.Millisecond).String()
}

// checkGoal logs got against want. The test itself asserts that the DPT
// becomes exact; a miss of the timings fails it with VIPA_SCALE_GOALS=1,
// as .ci/run sets. A developer's shared machine, whose load moves them,
// gets them logged.
func checkGoal(t *testing.T, what string, got, want time.Duration) {
	t.Helper()
	if got <= want {
		t.Logf("goal met: %s: %v (goal %v)", what, got, want)
		return
	}
	if os.Getenv("VIPA_SCALE_GOALS") == "1" {
		t.Errorf("goal missed: %s: %v (goal %v)", what, got, want)
		return
	}
	t.Logf("goal missed: %s: %v (goal %v); VIPA_SCALE_GOALS=1 fails on it", what, got, want)
}

// TestScale100x20 starts 100 agents in this process, each reporting 20
// ports of one VIPA, and times the routing node's DPT to exact: after all
// members are alive, after one target changes (20 trials), after ten
// change at once, and after ten change while a fifth of tag updates, sync
// requests and answers are lost. Minutes of CPU under -race, so the race
// run skips it and .ci/run runs it without -race.
//
// The goals are the fleet's, on a machine that gives the process its
// cores. On a shared one a change's path (two exchanges over the state
// channel, about a dozen goroutine wake-ups between the target, the
// routing node and their fetchers) waits at each hop for the CPU other
// processes hold, and a trial's latency follows that wait: in runs beside
// three busy loops, every trial over 100 ms had the process's threads
// waiting 145-212 ms on the run queue, and at higher priority beside the
// same loops none passed 70 ms. So each one-target trial measures that
// wait (Linux: the threads' schedstat; a few ms when the process has the
// machine, its threads rarely outnumbering the cores), and one with more than
// scaleStarvedWait is logged with it and not judged; another trial takes
// its place, up to scaleTrialsMax. Its change must still arrive (10 s).
// Fewer than scaleTrialsMin judged trials is a missed goal: the machine
// was too busy to tell. The other figures log the wait beside them.
func TestScale100x20(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("100-agent scale test: .ci/run runs it without -race")
	}
	const count, nports = 100, 20
	var lossPct atomic.Int32 // injected loss, off until the last phase
	lose := func() bool { return rand.Int32N(100) < lossPct.Load() }
	// The default profile, as a fleet runs. The fast profile's 200 ms probe
	// timeout is for a fleet of hosts: a hundred agents sharing two cores
	// miss it whenever the process waits for CPU, and members flap.
	o := fleetOpts{profile: "lan", reconcile: 2 * time.Second, hooks: func(h *hooks) {
		h.dropTag = lose
		h.dropRequest = func(string) bool { return lose() }
		h.dropAnswer = func(string) bool { return lose() }
	}}
	defs := []*vipa.Definition{def(vipaA.String(), "n00", ports(fmt.Sprintf("8000-%d", 8000+nports-1)))}
	rng := rand.New(rand.NewPCG(7, 8))
	draw := func() []vipa.Listener {
		var ls []vipa.Listener
		for p := range nports {
			ls = append(ls, vipa.Listener{VIPA: vipaA, Port: 8000 + uint16(p), Ready: 1 + rng.IntN(4)})
		}
		return ls
	}
	nodes := make([]*tnode, count)
	var join []string
	cpu0 := cpuTime()
	w0, wok := cpuWaited()
	start := time.Now()
	for i := range count {
		cfg := o.config(fmt.Sprintf("n%02d", i), testIP(i), 0, join)
		n := startNodeWith(t, cfg, func(n *tnode) {
			if i == 0 {
				n.SetDefinitions(defs)
			}
			n.set(draw())
		})
		nodes[i] = n
		if i == 0 {
			join = []string{n.BindAddr().String()}
		}
	}
	t.Cleanup(func() { stopAll(nodes) })
	r := nodes[0]
	started := time.Since(start)
	joined := waitFor(t, 60*time.Second, "all members alive on the routing node", func() bool { return alive(r) == count })
	d := waitExact(t, 30*time.Second, r, nodes, defs)
	t.Logf("%d agents × %d ports: started in %v; all alive on the routing node %v later; DPT exact %v after that (goal %v); %v of CPU so far, %s waiting for one",
		count, nports, started.Round(time.Millisecond), joined.Round(time.Millisecond), d.Round(time.Millisecond), scaleStartGoal, (cpuTime() - cpu0).Round(10*time.Millisecond), waitedSince(w0, wok))
	t.Logf("routing node's counters: %v", r.Stats())
	checkGoal(t, "DPT exact after all members were alive", d, scaleStartGoal)

	// Targets n40 to n79; the changes at once below are n80 to n99's.
	var single []time.Duration
	var starved []string
	for i := 0; len(single) < scaleTrials && i < scaleTrialsMax; i++ {
		w0, wok := cpuWaited()
		nodes[count-60+i%40].set(draw())
		d := waitExact(t, 10*time.Second, r, nodes, defs)
		if w, _ := cpuWaited(); wok && w-w0 > scaleStarvedWait {
			starved = append(starved, fmt.Sprintf("%v (waited %v)", d.Round(100*time.Microsecond), (w-w0).Round(time.Millisecond)))
			continue
		}
		single = append(single, d)
	}
	if len(starved) > 0 {
		t.Logf("one target changes: %d trials not judged, the process's threads waiting over %v in all for a CPU: %s",
			len(starved), scaleStarvedWait, strings.Join(starved, ", "))
	}
	if len(single) < scaleTrialsMin {
		what := fmt.Sprintf("one target's change: %d trials of %d judged, the others starved of CPU (at least %d wanted)", len(single), len(single)+len(starved), scaleTrialsMin)
		if os.Getenv("VIPA_SCALE_GOALS") == "1" {
			t.Errorf("goal missed: %s", what)
		} else {
			t.Logf("goal missed: %s; VIPA_SCALE_GOALS=1 fails on it", what)
		}
	}
	if len(single) > 0 {
		p50, _ := percentiles(single)
		worst := slices.Max(single)
		t.Logf("one target changes (%d trials judged): DPT exact after p50 %v, max %v (goal %v)", len(single), p50, worst, scaleChangeGoal)
		checkGoal(t, fmt.Sprintf("one target's change, max of %d", len(single)), worst, scaleChangeGoal)
	}

	changeAtOnce := func(ns []*tnode) time.Duration {
		lss := make([][]vipa.Listener, len(ns))
		for i := range ns {
			lss[i] = draw()
		}
		var wg sync.WaitGroup
		for i, n := range ns {
			wg.Go(func() { n.set(lss[i]) })
		}
		wg.Wait()
		return waitExact(t, 10*time.Second, r, nodes, defs)
	}
	w0, wok = cpuWaited()
	d = changeAtOnce(nodes[count-10:])
	t.Logf("10 targets changed at once: DPT exact after %v (goal %v); %s waiting for a CPU", d, scaleChangeGoal, waitedSince(w0, wok))
	checkGoal(t, "10 targets changed at once", d, scaleChangeGoal)

	// One tag update, request and answer in five lost.
	lossPct.Store(20)
	w0, wok = cpuWaited()
	d = changeAtOnce(nodes[count-20 : count-10])
	lossPct.Store(0)
	t.Logf("10 targets changed with 20%% loss: DPT exact after %v (goal %v); %s waiting for a CPU", d, scaleLossyGoal, waitedSince(w0, wok))
	checkGoal(t, "10 targets changed with 20% loss", d, scaleLossyGoal)
	t.Logf("routing node's counters: %v", r.Stats())
}
