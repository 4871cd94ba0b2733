package tables

// leastconn and weightedactive rank by each row's exact active count, a
// sum over stripes that every core writes on every connection: reading
// another core's stripe waits for its line. Each row's rough count
// (stats.approx) is within slack of the exact one and changes once every
// flushAt connections of a stripe. When the rough counts, give or take
// slack each, leave one row ahead of every other, that row is the exact
// ranking's choice as well, without a tie; only a choice they leave open
// reads the stripes.

// roughs reads the eligible rows' rough counts into a, -1 for a row that
// is not eligible (unhealthy or at max_conns), and returns their slack;
// 0 when the group has more rows than a holds.
func (g *Group) roughs(a *[maxBounded]int64) int64 {
	if len(g.active) > maxBounded {
		return 0
	}
	for i, t := range g.active {
		a[i] = -1
		if t.healthy() && g.room(t) {
			// approx may dip below 0 while two adds cross; an exact
			// count never does, so 0 is nearer to it
			a[i] = max(t.stats.approx.Load(), 0)
		}
	}
	return g.active[0].stats.slack()
}

// clearlyLeast is leastconn's choice when the rough counts settle it, else
// -1: the row with the fewest rough connections per unit of weight, if
// even with slack more of its own and slack fewer of every other's it
// still has fewer.
func (g *Group) clearlyLeast() int {
	var a [maxBounded]int64
	s := g.roughs(&a)
	if s == 0 {
		return -1
	}
	best := -1
	for i := range g.active {
		if a[i] >= 0 && (best < 0 || a[i]*int64(g.eff[best]) < a[best]*int64(g.eff[i])) {
			best = i
		}
	}
	if best < 0 {
		return -1
	}
	hi, w := a[best]+s, int64(g.eff[best])
	for j := range g.active {
		if j != best && a[j] >= 0 && hi*int64(g.eff[j]) >= (a[j]-s)*w {
			return -1
		}
	}
	return best
}

// clearlyBehind is weightedactive's choice when the rough counts settle
// it, else -1. Row b is ahead of row j by
//
//	(eff_b - eff_j)·(total+1) - (active_b - active_j)·Σeff
//
// where total is the eligible rows' active connections: each count may
// be slack off its rough one, total m·slack off theirs (m rows).
func (g *Group) clearlyBehind() int {
	var a [maxBounded]int64
	s := g.roughs(&a)
	if s == 0 {
		return -1
	}
	var total, sum, m int64
	for i := range g.active {
		if a[i] >= 0 {
			total += a[i]
			sum += int64(g.eff[i])
			m++
		}
	}
	best, bestD := -1, int64(0)
	for i := range g.active {
		if a[i] < 0 {
			continue
		}
		if d := int64(g.eff[i])*(total+1) - a[i]*sum; best < 0 || d > bestD {
			best, bestD = i, d
		}
	}
	if best < 0 {
		return -1
	}
	for j := range g.active {
		if j == best || a[j] < 0 {
			continue
		}
		de := int64(g.eff[best] - g.eff[j])
		t := max(total-m*s, 0) // the total that leaves b least ahead
		if de < 0 {
			t = total + m*s
		}
		if de*(t+1)-(a[best]-a[j]+2*s)*sum <= 0 {
			return -1
		}
	}
	return best
}
