package serfsync

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

var (
	vipaA = netip.MustParseAddr("127.0.0.100")
	vipaB = netip.MustParseAddr("127.0.0.101")
)

// routed sets up n00 as routing node of two VIPAs: A for every node on
// 8080-8089, B on 9000-9009 for n02 by name and n03 by address only.
func routed(nodes []*tnode) []*vipa.Definition {
	defs := []*vipa.Definition{
		def(vipaA.String(), "n00", ports("8080-8089")),
		def(vipaB.String(), "n00", ports("9000-9009"), "n02", testIP(3).String()),
	}
	nodes[0].SetDefinitions(defs)
	return defs
}

func TestConvergence(t *testing.T) {
	nodes := startFleet(t, 8, fleetOpts{})
	defs := routed(nodes)
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 5 {
		for _, n := range nodes {
			n.set(randomListeners(rng, []netip.Addr{vipaA, vipaB}, 8078, 8091, round%2 == 0))
		}
		d := waitExact(t, 3*time.Second, nodes[0], nodes, defs)
		t.Logf("round %d: exact after %v", round, d)
	}
	// Targets quiesce lines and weigh themselves (report version 3): the
	// routing node's rows say so, and say nothing again once they stop.
	for round := range 2 {
		for i, n := range nodes {
			ls := randomListeners(rng, []netip.Addr{vipaA, vipaB}, 8078, 8091, false)
			for k := range ls {
				if round == 0 && (i+k)%3 == 0 {
					ls[k].State = vipa.StateQuiesced
				}
				if round == 0 && (i+k)%2 == 0 {
					ls[k].Weight = 1 + (i+k)%100
				}
			}
			n.set(ls)
		}
		d := waitExact(t, 3*time.Second, nodes[0], nodes, defs)
		t.Logf("quiesce round %d: exact after %v", round, d)
	}
	// Every node learns the definitions, none in conflict.
	for _, n := range nodes {
		waitFor(t, 3*time.Second, n.name+" learns definitions", func() bool {
			ds := n.Definitions()
			return len(ds) == 2 && ds[0].VIPA == vipaA && ds[0].RoutingNode == "n00" && ds[0].Owner && ds[1].Conflict == ""
		})
	}
	// Only the routing node builds a DPT.
	for _, n := range nodes[1:] {
		if len(n.dpt()) != 0 {
			t.Errorf("%s got rows: %v", n.name, n.dpt())
		}
	}
}

func TestConvergenceUnderLoss(t *testing.T) {
	fn := &faultNet{}
	rng := rand.New(rand.NewPCG(3, 4))
	lose := func(p float64) bool { return rand.Float64() < p }
	period := 300 * time.Millisecond
	nodes := startFleet(t, 6, fleetOpts{net: fn, reconcile: period, hooks: func(h *hooks) {
		h.dropTag = func() bool { return lose(0.5) }
		h.failTag = func() bool { return lose(0.3) }
		h.dropRequest = func(string) bool { return lose(0.2) }
		h.dropAnswer = func(string) bool { return lose(0.2) }
	}})
	fn.setLoss(0.1)
	defs := routed(nodes)
	for round := range 6 {
		for _, n := range nodes {
			n.set(randomListeners(rng, []netip.Addr{vipaA, vipaB}, 8080, 8089, false))
		}
		// Each sync fails one time in three: allow ten periods of retries.
		d := waitExact(t, 10*period, nodes[0], nodes, defs)
		t.Logf("round %d: exact after %v", round, d)
	}
	s := nodes[0].Stats()
	t.Logf("routing node stats: %v", s)
}

func TestGracefulStopRemovesRows(t *testing.T) {
	nodes := startFleet(t, 3, fleetOpts{})
	defs := routed(nodes)
	nodes[1].set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	nodes[2].set([]vipa.Listener{{VIPA: vipaA, Port: 8081, Ready: 2}})
	waitExact(t, 2*time.Second, nodes[0], nodes, defs)
	start := time.Now()
	go func() { _ = nodes[2].Stop() }()
	d := waitExact(t, time.Second, nodes[0], nodes[:2], defs)
	t.Logf("graceful stop: rows gone after %v", d)
	_ = start
}

func TestRestartNewGeneration(t *testing.T) {
	o := fleetOpts{}
	nodes := startFleet(t, 3, o)
	defs := routed(nodes)
	old := nodes[2]
	old.set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}, {VIPA: vipaA, Port: 8081, Ready: 1}})
	waitExact(t, 2*time.Second, nodes[0], nodes, defs)

	// Crash and come back at once on the same address, before failure
	// detection: the new process reports one other port, and the old
	// generation's rows must not survive next to it.
	addr := old.BindAddr()
	old.kill()
	cfg := o.config(old.name, old.ip, addr.Port(), []string{nodes[0].BindAddr().String()})
	fresh := startNode(t, cfg)
	t.Cleanup(func() { _ = fresh.Stop() })
	fresh.set([]vipa.Listener{{VIPA: vipaA, Port: 8085, Ready: 3}})
	live := []*tnode{nodes[0], nodes[1], fresh}
	d := waitExact(t, 5*time.Second, nodes[0], live, defs)
	t.Logf("new generation replaced the old after %v", d)

	// And a restart with nothing to report wipes the rows too.
	addr = fresh.BindAddr()
	fresh.kill()
	again := startNode(t, o.config(old.name, old.ip, addr.Port(), []string{nodes[0].BindAddr().String()}))
	t.Cleanup(func() { _ = again.Stop() })
	live[2] = again
	waitExact(t, 5*time.Second, nodes[0], live, defs)
}

func TestPartitionAndHeal(t *testing.T) {
	fn := &faultNet{}
	nodes := startFleet(t, 6, fleetOpts{net: fn})
	defs := routed(nodes)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range nodes {
		n.set(randomListeners(rng, []netip.Addr{vipaA}, 8080, 8089, false))
	}
	waitExact(t, 2*time.Second, nodes[0], nodes, defs)

	// A short cut: changes on the far side wait for the heal, then arrive.
	near, far := nodes[:3], nodes[3:]
	fn.partition(near, far)
	for _, n := range far {
		n.set(randomListeners(rng, []netip.Addr{vipaA}, 8080, 8089, false))
	}
	time.Sleep(300 * time.Millisecond)
	fn.heal()
	d := waitExact(t, 2*time.Second, nodes[0], nodes, defs)
	t.Logf("short partition healed: exact after %v", d)

	// A long cut: the far side is declared failed and its rows go; after
	// the heal serf reconnects and the rows come back.
	fn.partition(near, far)
	d = waitExact(t, 10*time.Second, nodes[0], near, defs)
	t.Logf("long partition: far rows gone after %v", d)
	for _, n := range far {
		n.set(randomListeners(rng, []netip.Addr{vipaA}, 8080, 8089, false))
	}
	fn.heal()
	waitFor(t, 20*time.Second, "far side rejoins", func() bool { return alive(nodes[0]) == len(nodes) })
	d = waitExact(t, 2*time.Second, nodes[0], nodes, defs)
	t.Logf("long partition healed: exact %v after rejoin", d)
}

func TestConflict(t *testing.T) {
	nodes := startFleet(t, 4, fleetOpts{})
	d0 := def(vipaA.String(), "n00", ports("8080-8089"))
	d1 := def(vipaA.String(), "n01", ports("8080"))
	nodes[0].SetDefinitions([]*vipa.Definition{d0})
	nodes[1].SetDefinitions([]*vipa.Definition{d1})
	for _, n := range nodes {
		n.set([]vipa.Listener{{VIPA: vipaA, Port: 8080, Ready: 1}})
	}
	for _, n := range nodes {
		waitFor(t, 3*time.Second, n.name+" sees the conflict", func() bool {
			ds := n.Definitions()
			return len(ds) == 2 &&
				ds[0].RoutingNode == "n00" && ds[0].Owner && ds[0].Conflict == "VIPA 127.0.0.100 is also defined by n01" &&
				ds[1].RoutingNode == "n01" && !ds[1].Owner && ds[1].Conflict == "VIPA 127.0.0.100 is also defined by n00"
		})
	}
	all := []*vipa.Definition{d0, d1}
	waitExact(t, 2*time.Second, nodes[0], nodes, all)
	waitExact(t, 2*time.Second, nodes[1], nodes, all) // the loser: empty
	for _, n := range nodes[:2] {
		if n.logs.FilterMessage("VIPA defined by more than one node").Len() == 0 {
			t.Errorf("%s logged no conflict error", n.name)
		}
	}
	for _, n := range nodes[2:] {
		if n.logs.FilterMessage("VIPA defined by more than one node").Len() != 0 {
			t.Errorf("%s logged the conflict as its own", n.name)
		}
	}
	// The owner leaves: the other definition takes over and builds its DPT.
	_ = nodes[0].Stop()
	d := waitExact(t, 3*time.Second, nodes[1], nodes[1:], []*vipa.Definition{d1})
	t.Logf("owner left: the other routing node exact after %v", d)
}

func TestWrongKeyNotAdmitted(t *testing.T) {
	key := make([]byte, 32)
	other := make([]byte, 32)
	other[0] = 1
	nodes := startFleet(t, 2, fleetOpts{keys: [][]byte{key}})
	routed(nodes)

	join := []string{nodes[0].BindAddr().String()}
	bad := startNode(t, fleetOpts{keys: [][]byte{other}}.config("intruder", testIP(40), 0, join))
	plain := startNode(t, fleetOpts{}.config("plain", testIP(41), 0, join))
	t.Cleanup(func() { stopAll([]*tnode{bad, plain}) })

	// Neither can talk on the state channel either.
	for _, n := range []*tnode{bad, plain} {
		if _, err := n.exchange("n00", nodes[0].BindAddr(), (&syncRequest{from: n.name}).encode()); err == nil {
			t.Errorf("%s: state channel accepted a peer without the fleet key", n.name)
		}
	}
	time.Sleep(time.Second)
	for _, m := range nodes[0].Members() {
		if m.Name == "intruder" || m.Name == "plain" {
			t.Errorf("admitted %s", m.Name)
		}
	}
	if nodes[0].Stats()["auth_fail"] < 2 {
		t.Errorf("auth failures not counted: %v", nodes[0].Stats())
	}
	// Key rotation: a server with both keys opens a stream sealed with
	// its secondary.
	srv := startNode(t, fleetOpts{keys: [][]byte{key, other}}.config("server", testIP(43), 0, nil))
	rot := startNode(t, fleetOpts{keys: [][]byte{other, key}}.config("rotated", testIP(42), 0, nil))
	t.Cleanup(func() { stopAll([]*tnode{srv, rot}) })
	if _, err := rot.exchange("server", srv.BindAddr(), (&syncRequest{from: "rotated"}).encode()); err != nil {
		t.Errorf("secondary key refused: %v", err)
	}
}
