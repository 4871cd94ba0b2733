package tables

import (
	"math"
	"net/netip"
	"testing"
)

// scoreHashed is sourcehash by its definition: every eligible row's score
// w / -ln u, the first highest wins.
func scoreHashed(g *Group, client netip.Addr) int {
	a := client.As16()
	x := mix(leUint64(a[:8]) ^ mix(leUint64(a[8:])))
	best, bestS := -1, 0.0
	for i := range g.active {
		if !g.eligible(i) {
			continue
		}
		if s := float64(g.eff[i]) / -math.Log(unitOf(x, g.seeds[i])); best < 0 || s > bestS {
			best, bestS = i, s
		}
	}
	if best < 0 {
		return int(g.order[0])
	}
	return best
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// The bounds that spare hashed its logarithms change no client's row:
// for 100,000 clients it agrees with the scores computed in full, with
// unequal weights, an unhealthy row, and more rows than it keeps bounds
// of.
func TestHashedIsRendezvous(t *testing.T) {
	for _, n := range []int{1, 2, 4, maxBounded, maxBounded + 3} {
		var names []string
		for i := range n {
			names = append(names, string(rune('a'+i)))
		}
		f := newFixture(t, &Policy{Distmethod: "sourcehash"}, names...)
		g := f.group()
		for i := range g.eff {
			g.eff[i] = int32(1 + 37*i%250)
		}
		if n > 2 {
			g.active[1].DialFailed(Now(), true)
		}
		for i := range 100_000 {
			c := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			if got, want := g.hashed(c), scoreHashed(g, c); got != want {
				t.Fatalf("%d rows: client %v hashed to row %d, its scores say %d", n, c, got, want)
			}
		}
	}
}
