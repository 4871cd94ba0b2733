package serfsync

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// simSeed is VIPA_SIM_SEED, or a fresh seed; either is logged so a
// failing run can be replayed.
func simSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("VIPA_SIM_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("VIPA_SIM_SEED: %v", err)
		}
		return seed
	}
	return rand.Uint64()
}

// simScenario is the fleet the simulations run: three routing nodes and
// every node reporting ports on their VIPAs.
type simScenario struct {
	*sim
	routers []*simNode
	vipaA   netip.Addr // n000, 8000-8019 for all; n002 defines it later (8000-8009)
	vipaB   netip.Addr // n001, 9000-9004 for some nodes by name, some by address
}

func newScenario(seed uint64, cfg simConfig) *simScenario {
	s := &simScenario{sim: newSim(seed, cfg), vipaA: vipaA, vipaB: vipaB}
	s.routers = s.nodes[:3]
	s.nodes[0].defs = []*vipa.Definition{s.defA(cfg.ports)}
	s.nodes[1].defs = []*vipa.Definition{s.defB()}
	for _, n := range s.nodes {
		n.ls = s.draw(n)
		n.lines = canonicalListeners(n.ls)
	}
	return s
}

func (s *simScenario) defA(nports int) *vipa.Definition {
	return def(s.vipaA.String(), "", ports(fmt.Sprintf("8000-%d", 8000+nports-1)))
}

// defB's candidates: nodes 3–12 by name, 13–20 by address (or fewer).
func (s *simScenario) defB() *vipa.Definition {
	var dest []string
	for i := 3; i <= 20 && i < len(s.nodes); i++ {
		if i <= 12 {
			dest = append(dest, s.nodes[i].name)
		} else {
			dest = append(dest, s.nodes[i].ip.String())
		}
	}
	if len(dest) == 0 {
		dest = []string{vipa.DestAll}
	}
	return def(s.vipaB.String(), "", ports("9000-9004"), dest...)
}

// draw is a node's listeners: every port of A (and a few beyond it), and
// on one node in four five ports of B, candidate or not; some lines count
// connections, a few are quiesced or weighted.
func (s *simScenario) draw(n *simNode) []vipa.Listener {
	var ls []vipa.Listener
	for p := range s.cfg.ports + 3 {
		if p >= s.cfg.ports && s.rng.IntN(2) == 0 {
			continue
		}
		l := vipa.Listener{VIPA: s.vipaA, Port: 8000 + uint16(p), Ready: 1 + s.rng.IntN(4), Conns: vipa.NoConns}
		if s.rng.IntN(3) == 0 {
			l.Conns = s.rng.IntN(50)
		}
		switch s.rng.IntN(20) {
		case 0:
			l.State = vipa.StateQuiesced
		case 1:
			l.Weight = 1 + s.rng.IntN(vipa.MaxWeight)
		}
		ls = append(ls, l)
	}
	if n.i%4 == 0 {
		for p := range 5 {
			ls = append(ls, vipa.Listener{VIPA: s.vipaB, Port: 9000 + uint16(p), Ready: 1, Conns: vipa.NoConns})
		}
	}
	return ls
}

func (s *simScenario) pick() *simNode { return s.nodes[s.rng.IntN(len(s.nodes))] }

// chaos does one random thing to the fleet: a report changes, a process
// restarts, crashes or stops, a partition starts or heals, the loss rate
// moves, or a routing node reloads its definitions.
func (s *simScenario) chaos(log func(string, ...any)) {
	switch r := s.rng.IntN(100); {
	case r < 55:
		n := s.pick()
		s.setReport(n, s.draw(n))
	case r < 70:
		n := s.pick()
		s.stop(n, false)
		s.at(s.between(0, 3*time.Second), func() {
			if !n.up {
				s.start(n)
			}
		})
	case r < 75:
		s.stop(s.pick(), r%2 == 0)
	case r < 80:
		if s.side[0]+s.side[len(s.side)-1] == 0 && !s.partitioned() {
			var far []*simNode
			for _, n := range s.nodes {
				if s.rng.IntN(100) < 5+r%3*5 {
					far = append(far, n)
				}
			}
			s.partition(far)
			log("%v: partition: %d nodes cut off", s.now, len(far))
			s.at(s.between(time.Second, 6*time.Second), func() {
				if s.partitioned() {
					s.heal()
					log("%v: healed", s.now)
				}
			})
		}
	case r < 90:
		s.loss = []float64{0, 0.05, 0.1, 0.3}[s.rng.IntN(4)]
	case r < 95:
		a := s.defA(s.cfg.ports - 5 + s.rng.IntN(10))
		s.setDefinitions(s.routers[0], []*vipa.Definition{a})
		log("%v: n000 reloads A on %v", s.now, a.Ports)
	default:
		b := s.defB()
		if s.rng.IntN(2) == 0 {
			b.DestIP = b.DestIP[:len(b.DestIP)/2]
		}
		s.setDefinitions(s.routers[1], []*vipa.Definition{b})
		log("%v: n001 reloads B for %d destinations", s.now, len(b.DestIP))
	}
}

func (s *simScenario) partitioned() bool {
	for _, v := range s.side {
		if v != 0 {
			return true
		}
	}
	return false
}

// viewsRight: each routing node's serf sees every node as it is, and
// every node sees the routing nodes as they are: all the core can ask of
// serf before its own guarantees start.
func (s *simScenario) viewsRight() bool {
	for _, r := range s.routers {
		for _, n := range s.nodes {
			if r.up && n != r && (r.view[n.i] == nil && n.up || r.view[n.i] != nil && r.view[n.i].alive != n.up) {
				return false
			}
			if n.up && n != r && (n.view[r.i] == nil && r.up || n.view[r.i] != nil && n.view[r.i].alive != r.up) {
				return false
			}
		}
	}
	return true
}

// runScenario starts the fleet, runs chaos for chaosFor, then stops the
// faults (heals, no loss; most stopped nodes restart) and runs until the
// routing nodes' DPTs and every node's definitions are right, failing the
// test if that takes more than two reconcile periods once serf's views
// are right. It returns the run's fingerprint.
func runScenario(t *testing.T, s *simScenario, chaosFor time.Duration, verbose bool) uint64 {
	t.Helper()
	logf := func(f string, a ...any) {
		if verbose {
			t.Logf(f, a...)
		}
	}
	for _, r := range s.routers[:2] {
		s.start(r)
	}
	for _, n := range s.nodes[2:] {
		s.at(s.between(0, time.Second), func() { s.start(n) })
	}
	// The newcomer: n002 defines A too, later than n000.
	s.at(1500*time.Millisecond, func() {
		s.setDefinitions(s.routers[2], []*vipa.Definition{def(s.vipaA.String(), "", ports("8000-8009"))})
	})
	s.dup, s.slow = 0.05, 0.05
	start := 2 * time.Second
	s.run(start)
	// n000 restarts once mid-chaos: n002's definition of A is now the
	// earliest, so it takes A over.
	s.at(chaosFor/2, func() {
		s.stop(s.routers[0], false)
		s.at(500*time.Millisecond, func() { s.start(s.routers[0]) })
		logf("%v: n000 restarts", s.now)
	})
	for s.now < start+chaosFor {
		s.chaos(logf)
		s.run(s.now + s.between(20*time.Millisecond, 200*time.Millisecond))
	}
	end := s.now
	s.loss, s.dup, s.slow = 0, 0, 0
	if s.partitioned() {
		s.heal()
	}
	down := 0
	for _, n := range s.nodes {
		if !n.up {
			if s.rng.IntN(2) == 0 || n.i < len(s.routers) {
				s.start(n)
			} else {
				down++
			}
		}
	}
	logf("%v: faults stop; %d nodes stay down", s.now, down)

	period := s.cfg.period
	var viewsAt, exactAt time.Duration
	for step := 50 * time.Millisecond; ; {
		s.run(s.now + step)
		if !s.viewsRight() {
			viewsAt, exactAt = 0, 0
			if s.now > end+10*time.Minute {
				t.Fatalf("seed %d: serf's views not right 10 minutes after the faults stopped", s.seed())
			}
			continue
		}
		if viewsAt == 0 {
			viewsAt = s.now
		}
		wrong := s.wrongDPTs(s.routers)
		wrongK := s.wrongKnown()
		if len(wrong)+len(wrongK) == 0 {
			if exactAt == 0 {
				exactAt = s.now
			}
			if s.now >= exactAt+period { // and it stays so
				break
			}
			continue
		}
		exactAt = 0
		if s.now > viewsAt+2*period {
			if len(wrongK) > 3 {
				wrongK = append(wrongK[:3], fmt.Sprintf("and %d more", len(wrongK)-3))
			}
			t.Fatalf("seed %d: %v after serf's views were right, not converged:\nDPTs: %v\ndefinitions: %v\nrouting node counters: %v",
				s.seed(), s.now-viewsAt, wrong, wrongK, s.routers[0].stats.snapshot())
		}
	}
	t.Logf("%d nodes × %d ports, seed %d: faults stopped at %v; serf's views right %v later; DPTs and definitions exact %v after that (bound %v); %d events, %d syncs (%d failed)",
		len(s.nodes), s.cfg.ports, s.seed(), end, viewsAt-end, exactAt-viewsAt, 2*period, s.events, s.syncs, s.failed)
	return s.fingerprint(s.routers)
}

// simFleet is the fleet of TestSimFleet: the timing of the lan profile.
// A lost tag update is learned at the next push-pull, 30 s on: the
// reconcile period, not serf, must make up for it.
var simFleet = simConfig{nodes: 500, ports: 20, period: 3 * time.Second,
	pushPull: 30 * time.Second, detect: 2 * time.Second, reconnect: 3 * time.Second}

// TestSimFleet runs 500 cores of 20 ports each through 10 s of random
// faults (lost, duplicated, delayed and reordered syncs and tag updates,
// partitions, crashes, restarts, graceful stops, definition reloads and a
// routing node's restart that hands its VIPA to the other definer), then
// checks that within two reconcile periods of serf's views being right
// every routing node's DPT is what every live target reports, and every
// node knows every definition. The seed is logged; VIPA_SIM_SEED replays
// a run.
func TestSimFleet(t *testing.T) {
	seed := simSeed(t)
	t.Logf("seed %d: VIPA_SIM_SEED=%d replays this run", seed, seed)
	cfg := simFleet
	if v := os.Getenv("VIPA_SIM_NODES"); v != "" {
		cfg.nodes, _ = strconv.Atoi(v)
	}
	start := time.Now()
	runScenario(t, newScenario(seed, cfg), 10*time.Second, testing.Verbose())
	t.Logf("simulated in %v", time.Since(start).Round(time.Millisecond))
}

// TestSimReplays: one seed, one run, event for event.
func TestSimReplays(t *testing.T) {
	seed := simSeed(t)
	cfg := simFleet
	cfg.nodes = 40
	a := runScenario(t, newScenario(seed, cfg), 5*time.Second, false)
	b := runScenario(t, newScenario(seed, cfg), 5*time.Second, false)
	if a != b {
		t.Fatalf("seed %d: two runs differ (%x, %x)", seed, a, b)
	}
}
