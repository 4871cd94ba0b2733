package fleet

import (
	"net/netip"
	"testing"
	"time"
)

// releases records the addresses an ending hand-over removes.
type releases struct {
	noAddresses
	released []netip.Addr
}

func (r *releases) Release(v netip.Addr) error {
	r.released = append(r.released, v)
	return nil
}

// TestLingerGrace: a handed-over VIPA keeps its address for lingerGrace
// after the successor's claim is first seen (its announcement may still be
// on the way to the clients), a claim that vanishes starts the grace
// again, and lingerMax ends the hand-over whatever the claims.
func TestLingerGrace(t *testing.T) {
	v, w := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	r := &releases{}
	d := newDyn(nil)
	d.addrs = r
	t0 := time.Now()
	d.linger[v], d.linger[w] = t0, t0
	claimed := map[netip.Addr]bool{v: true}

	steps := []struct {
		at      time.Duration
		claimed map[netip.Addr]bool
		ended   bool
	}{
		{10 * time.Millisecond, claimed, false},             // v's claim seen: the grace starts
		{10*time.Millisecond + lingerGrace/2, nil, false},   // v's claim gone: the grace is void
		{10*time.Millisecond + lingerGrace, claimed, false}, // seen again: a new grace
		{10*time.Millisecond + 2*lingerGrace - time.Millisecond, claimed, false},
		{10*time.Millisecond + 2*lingerGrace, claimed, true}, // v's grace is over
		{lingerMax, nil, true},                               // w never claimed: lingerMax
	}
	for i, s := range steps {
		if got := d.endLingers(s.claimed, t0.Add(s.at)); got != s.ended {
			t.Fatalf("step %d (%s): ended %v, want %v; released %v", i, s.at, got, s.ended, r.released)
		}
	}
	if len(r.released) != 2 || r.released[0] != v || r.released[1] != w {
		t.Fatalf("released %v, want [%v %v]", r.released, v, w)
	}
	if len(d.linger) != 0 || len(d.claimAt) != 0 {
		t.Fatalf("left linger %v, claimAt %v", d.linger, d.claimAt)
	}
}
