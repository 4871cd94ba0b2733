package tables

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// shareWeights are the weight sets the shares are measured for.
var shareWeights = [][]vipa.Destination{
	weights("a", 3, "b", 1, "c", 1),
	weights("a", 5, "b", 3, "c", 2),
}

func weightsName(ds []vipa.Destination) string {
	s := ""
	for i, d := range ds {
		if i > 0 {
			s += ":"
		}
		s += fmt.Sprint(d.Weight)
	}
	return s
}

// weighted is a fixture of one row per destination, weighted by the
// policy or, under targetweight, by what each row reports.
func weighted(t testing.TB, m string, dests []vipa.Destination) *fixture {
	p := &Policy{Distmethod: m, Destinations: dests}
	if m == "targetweight" {
		p.Destinations = nil
	}
	f := newFixture(t, p)
	for _, d := range dests {
		r := row(vipa1, 80, d.Node, 1)
		if m == "targetweight" {
			r.Weight = d.Weight
		}
		f.d.Set(r)
	}
	return f
}

// TestWeightedShares: over 30,000 connections, from 30,000 client
// addresses, each row's share of them is its weight's share ± 2%, whether
// the connections stay open or come and go (a few hundred open, ended in
// a seeded random order).
func TestWeightedShares(t *testing.T) {
	const picks, tolerance = 30_000, 0.02
	for _, m := range []string{"roundrobin", "weightedactive", "leastconn", "sourcehash", "targetweight"} {
		for _, dests := range shareWeights {
			for _, churn := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/held", m, weightsName(dests))
				if churn {
					name = fmt.Sprintf("%s/%s/churn", m, weightsName(dests))
				}
				t.Run(name, func(t *testing.T) {
					f := weighted(t, m, dests)
					rng := rand.New(rand.NewPCG(1, 2))
					var open []*Entry
					got := map[string]float64{}
					for i := range picks {
						// churn: up to 3 connections end before each new
						// one while more than 200 are open, and never
						// more than 400 are
						for churn && (len(open) > 400 || len(open) > 200 && rng.IntN(2) == 0) {
							k := rng.IntN(len(open))
							f.close(open[k])
							open[k] = open[len(open)-1]
							open = open[:len(open)-1]
						}
						e := f.open(ip(i))
						got[e.Target.Node]++
						open = append(open, e)
					}
					sum := 0
					for _, d := range dests {
						sum += d.Weight
					}
					worst := 0.0
					for _, d := range dests {
						share, want := got[d.Node]/picks, float64(d.Weight)/float64(sum)
						worst = max(worst, math.Abs(share-want))
						if math.Abs(share-want) > tolerance {
							t.Errorf("%s: share %.4f, want %.4f ± %.2f (%v)", d.Node, share, want, tolerance, got)
						}
					}
					t.Logf("largest deviation from the weights' shares: %.4f", worst)
					for _, e := range open {
						f.close(e)
					}
				})
			}
		}
	}
}

// TestWeightedActive keeps every row within one connection of its share
// of the active connections, sampled after each new connection, while
// connections come and go: the count grows to 3,000, then a connection
// chosen at random ends before each new one, and in one in four of the
// last 10,000 steps a second one ends too (the next step refills it).
func TestWeightedActive(t *testing.T) {
	for _, dests := range shareWeights {
		t.Run(weightsName(dests), func(t *testing.T) {
			f := weighted(t, "weightedactive", dests)
			sum := 0
			for _, d := range dests {
				sum += d.Weight
			}
			rng := rand.New(rand.NewPCG(3, 4))
			var open []*Entry
			closeOne := func() {
				i := rng.IntN(len(open))
				f.close(open[i])
				open[i] = open[len(open)-1]
				open = open[:len(open)-1]
			}
			worst := 0.0
			for step := range 30_000 {
				if len(open) >= 3000 {
					closeOne()
				}
				if step >= 20_000 && rng.IntN(4) == 0 {
					closeOne()
				}
				open = append(open, f.open(ip(step)))
				total := float64(len(open))
				for _, tg := range f.group().Targets() {
					want := total * float64(tg.Weight()) / float64(sum)
					d := math.Abs(float64(tg.ActiveConns()) - want)
					worst = max(worst, d)
					if d > 1 {
						t.Fatalf("step %d: %s has %d of %d active, proportional is %.2f", step, tg.Node, tg.ActiveConns(), len(open), want)
					}
				}
			}
			t.Logf("largest deviation from proportional: %.2f connections, %d open at the end", worst, len(open))
			for _, e := range open {
				f.close(e)
			}
		})
	}
}
