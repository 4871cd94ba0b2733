package tables

import (
	"math/rand/v2"
	"testing"
)

// TestRoughSettlesExactly: whenever the rough counts settle leastconn's or
// weightedactive's choice, the exact counts make it their only choice
// (and the scan returns it, untied); rows far apart are settled without
// reading the stripes. Each row's count is near its weight's share (as
// both methods keep them) or off it by up to 300 slacks, spread over the
// stripes at random, its rough count anywhere within slack of it; rows
// turn unhealthy at random.
func TestRoughSettlesExactly(t *testing.T) {
	for _, m := range []string{"leastconn", "weightedactive"} {
		f := newFixture(t, &Policy{Distmethod: m, Destinations: weights("a", 1, "b", 2, "c", 3, "d", 7, "e", 100)},
			"a", "b", "c", "d", "e")
		g := f.group()
		n, s := len(g.active), g.active[0].stats.slack()
		rng := rand.New(rand.NewPCG(7, 8))
		exact := make([]int64, n)
		const trials = 100_000
		settled := 0
		for trial := range trials {
			base, width := rng.Int64N(50), []int64{3, 2 * s, 20 * s, 300 * s}[trial%4]
			for i, tg := range g.active {
				st := tg.stats
				exact[i] = base*int64(g.weight[i]) + rng.Int64N(width)
				left := exact[i]
				for k := range st.stripes {
					v := left
					if k < len(st.stripes)-1 {
						v = rng.Int64N(left + 1)
					}
					st.stripes[k].active.Store(v)
					left -= v
				}
				st.approx.Store(exact[i] + rng.Int64N(2*s+1) - s)
				tg.health.down.Store(rng.IntN(6) == 0)
				if !tg.healthy() {
					exact[i] = -1
				}
			}
			var got, want int
			var only bool
			var scan func(int) (int, bool)
			if m == "leastconn" {
				got, scan = g.clearlyLeast(), g.leastLoaded
				want, only = exactLeast(g, exact)
			} else {
				got, scan = g.clearlyBehind(), g.mostBehind
				want, only = exactBehind(g, exact)
			}
			if got < 0 {
				continue
			}
			settled++
			if !only || got != want {
				t.Fatalf("%s: rough choice %d, exact %d (only one: %v); exact counts %v, rough %v", m, got, want, only, exact, roughOf(g))
			}
			if i, tied := scan(rng.IntN(n)); i != want || tied {
				t.Fatalf("%s: scan chose %d (tied %v), want %d", m, i, tied, want)
			}
		}
		t.Logf("%s: %d of %d settled", m, settled, trials)
		// a quarter of the trials have rows within 3 of their shares,
		// which only the exact counts can rank
		if settled < trials/4 || settled > trials*3/4+trials/20 {
			t.Errorf("%s: the rough counts settled %d of %d choices", m, settled, trials)
		}
	}
}

// exactLeast is leastconn by the exact counts (-1 for a row not eligible):
// the row with the fewest per unit of weight, and whether no other has as few.
func exactLeast(g *Group, a []int64) (int, bool) {
	best, only := -1, false
	for i := range a {
		if a[i] < 0 {
			continue
		}
		switch l, r := a[i]*int64(g.eff[max(best, 0)]), a[max(best, 0)]*int64(g.eff[i]); {
		case best < 0 || l < r:
			best, only = i, true
		case l == r:
			only = false
		}
	}
	return best, only
}

// exactBehind is weightedactive by the exact counts.
func exactBehind(g *Group, a []int64) (int, bool) {
	var total, sum int64
	for i := range a {
		if a[i] >= 0 {
			total += a[i]
			sum += int64(g.eff[i])
		}
	}
	best, only, bestD := -1, false, int64(0)
	for i := range a {
		if a[i] < 0 {
			continue
		}
		switch d := int64(g.eff[i])*(total+1) - a[i]*sum; {
		case best < 0 || d > bestD:
			best, only, bestD = i, true, d
		case d == bestD:
			only = false
		}
	}
	return best, only
}

func roughOf(g *Group) []int64 {
	var out []int64
	for _, t := range g.active {
		out = append(out, t.stats.approx.Load())
	}
	return out
}
