package serfsync

import (
	"errors"
	"strings"
	"testing"
)

func TestProbeCodec(t *testing.T) {
	req := probeRequest{from: "b", target: "a"}
	got, err := decodeProbeRequest(req.encode())
	if err != nil || got != req {
		t.Fatalf("probe request round trip: %+v, %v", got, err)
	}
	for _, ans := range []probeAnswer{
		{from: "c", target: "a"},
		{from: "c", target: "a", alive: true},
		{from: "c", target: "a", reached: true},
	} {
		got, err := decodeProbeAnswer(ans.encode())
		if err != nil || got != ans {
			t.Fatalf("probe answer round trip: %+v, %v", got, err)
		}
	}
	bad := [][]byte{
		{},
		{msgSyncRequest, 1, 'b', 1, 'a'},
		append(req.encode(), 0),      // trailing byte
		{msgProbeRequest, 0, 1, 'a'}, // no sender
		{msgProbeRequest, 1, 'b', 0}, // no target
		(&probeRequest{from: strings.Repeat("n", maxName+1), target: "a"}).encode(),
	}
	for _, b := range bad {
		if _, err := decodeProbeRequest(b); err == nil {
			t.Errorf("malformed probe request %q decoded", b)
		}
	}
	if _, err := decodeProbeAnswer([]byte{msgProbeAnswer, 1, 'c', 1, 'a', 3}); err == nil {
		t.Error("a probe answer with word 3 decoded")
	}
}

// TestProbePaths: with the direct path between n00 and n01 cut, n01's
// ping of n00 goes unanswered and its port does not accept, but n02 pings
// n00 for it and hears it. Once n00 is killed, n02 finds it silent and
// its port refuses (gone); a killed member asked to confirm is gone too.
func TestProbePaths(t *testing.T) {
	fn := &faultNet{}
	nodes := startFleet(t, 3, fleetOpts{net: fn, keys: [][]byte{make([]byte, 32)}})
	n0, n1, n2 := nodes[0], nodes[1], nodes[2]
	if !n1.Ping("n00") {
		t.Fatal("n01's ping of n00 unanswered on a clear network")
	}
	fn.partition([]*tnode{n0}, []*tnode{n1})
	if n1.Ping("n00") {
		t.Fatal("n01's ping of n00 answered across the cut")
	}
	if ok, err := n1.Reachable("n00", n1.ProbeTimeout()); ok || err == nil {
		t.Fatalf("n00's port accepted n01 across the cut: %v %v", ok, err)
	}
	if c, err := n1.Confirm("n02", "n00"); err != nil || !c.Alive {
		t.Fatalf("n02 confirming n00 for n01: %+v %v, want alive", c, err)
	}
	if _, err := n1.Confirm("n00", "n99"); err == nil {
		t.Fatalf("a confirmation across the cut: %v, want an error", err)
	}
	if c, err := n1.Confirm("n02", "n99"); err != nil || c.Alive || c.Reached {
		t.Fatalf("n02 confirming a node it does not know: %+v %v, want silent", c, err)
	}
	fn.heal()

	// Every ping lost (n02's answer to n01 rides the state channel, a TCP
	// stream): n02 cannot hear n00, but n00's port accepts n02.
	fn.setLoss(1)
	if c, err := n1.Confirm("n02", "n00"); err != nil || c.Alive || !c.Reached {
		t.Fatalf("n02 confirming n00 with every ping lost: %+v %v, want silent but reached", c, err)
	}
	fn.setLoss(0)

	n0.kill()
	if c, err := n1.Confirm("n02", "n00"); err != nil || c.Alive || c.Reached {
		t.Fatalf("n02 confirming the killed n00: %+v %v, want silent, its port refusing", c, err)
	}
	if ok, err := n1.Reachable("n00", n1.ProbeTimeout()); ok || !errors.Is(err, ErrGone) {
		t.Fatalf("the killed n00's port: accepts=%v %v, want ErrGone", ok, err)
	}
	if _, err := n2.Confirm("n00", "n01"); !errors.Is(err, ErrGone) {
		t.Fatalf("asking the killed n00 to confirm: %v, want ErrGone", err)
	}
	if n2.Stats()["probe_in"] == 0 || n1.Stats()["probe_out"] == 0 {
		t.Fatalf("probes not counted: %v %v", n2.Stats(), n1.Stats())
	}
}
