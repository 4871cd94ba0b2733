package tables

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"
)

// Reason says why a candidate was offered.
type Reason uint8

const (
	ReasonNone           Reason = iota
	ReasonAffinity              // the client's timed affinity
	ReasonOptLocal              // the routing node's own row (optlocal)
	ReasonRoundRobin            // its turn in the weighted rotation
	ReasonWeightedActive        // furthest below its weighted share of active connections
	ReasonLeastConn             // fewest active connections per unit of weight
	ReasonPreferred             // hotstandby's preferred destination
	ReasonBackup                // hotstandby's backup in use
	ReasonSourceHash            // the client address hashes to it
	ReasonTargetWeight          // its turn by the weights the targets report
	ReasonNext                  // the candidates before it were skipped or failed
	ReasonUnhealthy             // only unhealthy rows are left
)

var reasonNames = [...]string{
	ReasonNone:           "",
	ReasonAffinity:       "timedaffinity",
	ReasonOptLocal:       "optlocal",
	ReasonRoundRobin:     "roundrobin",
	ReasonWeightedActive: "weightedactive",
	ReasonLeastConn:      "leastconn",
	ReasonPreferred:      "hotstandby preferred",
	ReasonBackup:         "hotstandby backup",
	ReasonSourceHash:     "sourcehash",
	ReasonTargetWeight:   "targetweight",
	ReasonNext:           "next candidate",
	ReasonUnhealthy:      "unhealthy fallback",
}

func (r Reason) String() string { return reasonNames[r] }

// Candidates is the preference order of a group's rows for one new
// connection. Next offers first every healthy row with room, starting at
// the ranked choice, then every unhealthy one with room that has not
// failed a dial for this connection already: a connection is refused only
// when each row is full or has failed its dial.
//
// It is a value: ranking and iterating allocate nothing.
type Candidates struct {
	g      *Group
	crt    *CRT
	aff    *affinity // the client's affinity record as ranking found it, for Commit
	first  int32     // position in g.order of the ranked choice
	k      int32     // positions offered or skipped; pass 2 (unhealthy rows) from len(active)
	full   int32     // rows skipped in pass 1 for having no room
	affGen uint32
	reason Reason // of the ranked choice
	cur    Reason // of the last Next
	keep   bool   // hotstandby without healthswitch: the ranked choice counts as healthy
	commit bool   // from Pick, not Peek
	fails  uint8  // dials reported failed by DialFailed
	last   uint16 // index in g.active of the last failed dial's row
	// tried marks the pass-1 positions (below 64) whose dial failed: a
	// row that turned unhealthy by this connection's own dial is not
	// dialed again in pass 2.
	tried uint64
}

// Pick ranks the group's rows for a new connection from client: it
// advances the group's rotation. crt holds the affinities; it may be nil
// when the policy has none.
func (g *Group) Pick(crt *CRT, client netip.Addr, now time.Time) (c Candidates) {
	g.rank(&c, crt, client, mono(now), true)
	return c
}

// PickTo is Pick into c, for a caller with little stack to spare: the
// candidates are not copied on the way.
func (g *Group) PickTo(c *Candidates, crt *CRT, client netip.Addr, now time.Time) {
	g.rank(c, crt, client, mono(now), true)
}

// Peek is Pick without side effects: what a connection from client would
// get now.
func (g *Group) Peek(crt *CRT, client netip.Addr, now time.Time) (c Candidates) {
	g.rank(&c, crt, client, mono(now), false)
	return c
}

// rank fills c, which the caller holds.
func (g *Group) rank(c *Candidates, crt *CRT, client netip.Addr, now int64, commit bool) {
	*c = Candidates{g: g, crt: crt, commit: commit}
	if g.Len() == 0 {
		return
	}
	i, why := -1, ReasonNone
	if g.pol.affinity > 0 && crt != nil {
		node, ok, rec, gen := crt.aff.lookup(g.affKey(client), now)
		c.aff, c.affGen = rec, gen
		if ok {
			if j := g.index(node); j >= 0 && g.eligible(j) {
				i, why = j, ReasonAffinity
			}
		}
	}
	if i < 0 && g.local >= 0 && g.eligible(g.local) {
		i, why = g.local, ReasonOptLocal
	}
	if i < 0 {
		i, why = g.choose(client, commit)
	}
	c.first, c.reason = int32(g.posOf[i]), why
	c.keep = !g.pol.HealthSwitch && (why == ReasonPreferred || why == ReasonBackup)
}

// Next returns the next candidate, or nil when none is left.
func (c *Candidates) Next() *Target {
	g := c.g
	n := int32(g.Len())
	for c.k < 2*n {
		k := c.k
		c.k++
		p := k // position from the ranked choice, in either pass
		if p >= n {
			p -= n
		}
		i := c.first + p
		if i >= n {
			i -= n
		}
		t := g.active[g.order[i]]
		if !g.room(t) {
			if k < n {
				c.full++
			}
			continue
		}
		healthy := t.healthy() || (p == 0 && c.keep)
		switch {
		case k < n && healthy:
			c.cur = ReasonNext
			if p == 0 {
				c.cur = c.reason
			}
			return t
		case k >= n && !healthy && (p >= 64 || c.tried&(1<<p) == 0):
			// A row that recovered between the passes was skipped by
			// both: the next connection finds it.
			c.cur = ReasonUnhealthy
			return t
		}
	}
	return nil
}

// Reason says why the last Next offered its row; before Next it is the
// ranked choice's reason.
func (c *Candidates) Reason() Reason {
	if c.cur == ReasonNone {
		return c.reason
	}
	return c.cur
}

// Unhealthy reports whether the last Next offered an unhealthy row.
func (c *Candidates) Unhealthy() bool { return c.cur == ReasonUnhealthy }

// AllFull reports, once Next returned nil, that the group has rows and
// every one of them was at max_conns.
func (c *Candidates) AllFull() bool { return c.full > 0 && int(c.full) == c.g.Len() }

// First is the ranked choice without iterating: what Peek answers.
func (c *Candidates) First() *Target {
	if c.g.Len() == 0 {
		return nil
	}
	return c.g.active[c.g.order[c.first]]
}

// Commit records that the connection e, routed to e.Target, was placed by
// these candidates: the client's affinity and hotstandby's row in use.
// Candidates from Peek commit nothing. Call it once per entry, before the
// entry is removed; e.Client, VIPA and Port must be set, to the client
// Pick ranked for and the group's VIPA and port.
func (c *Candidates) Commit(e *Entry) {
	g := c.g
	if !c.commit || g.Len() == 0 || e.affine {
		return
	}
	if g.pol.affinity > 0 && c.crt != nil {
		e.aff = c.crt.aff.commit(e.VIPA, e.Port, e.Client.Addr(), e.Target, g.pol.affinity, g.pol.method == hotStandby, c.aff, c.affGen)
		e.affine = true
	}
	if g.pol.method == hotStandby && !g.pol.AutoSwitchBack && (c.cur == ReasonPreferred || c.cur == ReasonBackup) {
		if u := g.st.inUse.Load(); u == nil || u.Node != e.Target.Node {
			g.st.inUse.Store(e.Target)
		}
	}
}

// room reports whether t is below max_conns.
func (g *Group) room(t *Target) bool {
	return g.pol.MaxConns == 0 || t.stats.below(g.pol.MaxConns)
}

// eligible: the Active row i is healthy and has room.
func (g *Group) eligible(i int) bool {
	t := g.active[i]
	return t.healthy() && g.room(t)
}

// choose applies the distmethod; when no row is eligible it returns the
// most preferred one and lets Next sort it out.
func (g *Group) choose(client netip.Addr, commit bool) (int, Reason) {
	switch g.pol.method {
	case weightedActive:
		return g.tieTurn(g.mostBehind, commit), ReasonWeightedActive
	case leastConn:
		return g.tieTurn(g.leastLoaded, commit), ReasonLeastConn
	case hotStandby:
		return g.standby()
	case sourceHash:
		return g.hashed(client), ReasonSourceHash
	case targetWeight:
		return g.next(commit), ReasonTargetWeight
	}
	return g.next(commit), ReasonRoundRobin
}

// turn is the group's rotation, advanced for a connection (commit), read
// for a question.
func (g *Group) turn(commit bool) uint64 {
	if commit {
		return g.st.rr.Add(1) - 1
	}
	return g.st.rr.Load()
}

// tieTurn ranks with scan, which starts at a row of the rotation and
// reports whether another row tied with its choice. Only a tie takes a
// turn: a clear choice writes nothing, and a question (not commit) gets
// the answer the next connection will, tie or not.
func (g *Group) tieTurn(scan func(start int) (int, bool), commit bool) int {
	n := uint64(len(g.active))
	at := g.turn(false)
	i, tied := scan(int(at % n))
	if tied && commit {
		if t := g.turn(true); t != at {
			i, _ = scan(int(t % n))
		}
	}
	return i
}

// next is the smooth weighted round robin's turn.
func (g *Group) next(commit bool) int {
	return int(g.sched[g.turn(commit)%uint64(len(g.sched))])
}

// mostBehind is weightedactive: the eligible row furthest below its share
// eff/Σeff of the active connections once this one is added, the first
// from start among equals, and whether it had one.
func (g *Group) mostBehind(start int) (int, bool) {
	if i := g.clearlyBehind(); i >= 0 {
		return i, false
	}
	n := len(g.active)
	// each row's active count, -1 when it is not eligible; a larger
	// group's rows past maxBounded are read twice
	var act [maxBounded]int64
	var total, sum int64
	for i := range g.active {
		a := g.load(i)
		if a >= 0 {
			total += a
			sum += int64(g.eff[i])
		}
		if i < maxBounded {
			act[i] = a
		}
	}
	best, bestD, tied := -1, int64(math.MinInt64), false
	for k := range n {
		i := (start + k) % n
		a := int64(0)
		if i < maxBounded {
			a = act[i]
		} else {
			a = g.load(i)
		}
		if a < 0 {
			continue
		}
		switch d := int64(g.eff[i])*(total+1) - a*sum; {
		case d > bestD:
			best, bestD, tied = i, d, false
		case d == bestD:
			tied = true
		}
	}
	if best < 0 {
		return int(g.order[0]), false
	}
	return best, tied
}

// leastLoaded is leastconn: the eligible row with the fewest active
// connections per unit of effective weight, the first from start among
// equals, and whether it had one.
func (g *Group) leastLoaded(start int) (int, bool) {
	if i := g.clearlyLeast(); i >= 0 {
		return i, false
	}
	n := len(g.active)
	best, tied := -1, false
	var bestA, bestW int64
	for k := range n {
		i := (start + k) % n
		a, w := g.load(i), int64(g.eff[i])
		if a < 0 {
			continue
		}
		switch {
		case best < 0 || a*bestW < bestA*w:
			best, bestA, bestW, tied = i, a, w, false
		case a*bestW == bestA*w:
			tied = true
		}
	}
	if best < 0 {
		return int(g.order[0]), false
	}
	return best, tied
}

// load is the Active row i's exact count of active connections when it is
// eligible (healthy, below max_conns), else -1: what leastconn and
// weightedactive weigh, read once.
func (g *Group) load(i int) int64 {
	t := g.active[i]
	if !t.healthy() {
		return -1
	}
	a := t.stats.active()
	if g.pol.MaxConns > 0 && a >= g.pol.MaxConns {
		return -1
	}
	return a
}

// standby is hotstandby's row in use: the preferred destination, else the
// highest-ranked backup that can take the connection; without
// autoswitchback the backup in use keeps that role while it can.
func (g *Group) standby() (int, Reason) {
	usable := func(i int) bool {
		t := g.active[i]
		return g.room(t) && (t.healthy() || !g.pol.HealthSwitch)
	}
	why := func(i int) Reason {
		if i == g.pref {
			return ReasonPreferred
		}
		return ReasonBackup
	}
	if !g.pol.AutoSwitchBack {
		if u := g.st.inUse.Load(); u != nil {
			if i := g.index(u.Node); i >= 0 && usable(i) {
				return i, why(i)
			}
		}
	}
	for _, i := range g.order {
		if usable(int(i)) {
			return int(i), why(int(i))
		}
	}
	return int(g.order[0]), why(int(g.order[0]))
}

// inUse is hotstandby's row in use, the one new connections go to now
// (standby), or nil under another distmethod or with no Active row.
func (g *Group) inUse() *Target {
	if g.pol.method != hotStandby || g.Len() == 0 {
		return nil
	}
	i, _ := g.standby()
	return g.active[i]
}

// shown sets the state the operator views give r, t's row, where inUse is
// its group's inUse(): under hotstandby an Active row reads Standby unless
// it is the row in use, still holds connections (the overflow of a full
// preferred, the connections left on a preferred that turned unhealthy)
// or is the target of a client's timed affinity (after the switch back,
// until the sweep after the affinity expires): that client's next
// connection goes there.
func shown(r *Row, t, inUse *Target) {
	if inUse != nil && r.State == Active && t != inUse && r.ActiveConns == 0 && t.stats.affined() == 0 {
		r.State = Standby
	}
}

// hashed is sourcehash: weighted rendezvous hashing of the client address
// over the eligible rows, the row with the highest score w / -ln u where u
// in (0, 1) hashes the client and the row. A row that leaves takes only
// its own clients with it, and a row that joins takes only the clients it
// now wins.
//
// Since 1-u <= -ln u <= (1-u)/u, a score lies between w·u/(1-u) and
// w/(1-u): a row whose upper bound is below another's lower bound cannot
// win, and when one row is left it wins without a logarithm.
func (g *Group) hashed(client netip.Addr) int {
	a := client.As16()
	x := mix(binary.LittleEndian.Uint64(a[:8]) ^ mix(binary.LittleEndian.Uint64(a[8:])))
	if len(g.active) > maxBounded {
		return g.rendezvous(x)
	}
	var up [maxBounded]float64 // 0 for a row that is not eligible
	var us [maxBounded]float64
	lo := 0.0
	for i := range g.active {
		if !g.eligible(i) {
			continue
		}
		u := unitOf(x, g.seeds[i])
		w := float64(g.eff[i])
		us[i], up[i] = u, w/(1-u)
		lo = max(lo, w*u/(1-u))
	}
	lo *= 1 - 1e-9 // what rounding might take from the bounds
	best, left := -1, 0
	for i := range g.active {
		if up[i] > 0 && up[i] >= lo {
			best, left = i, left+1
		}
	}
	if left <= 1 {
		if best < 0 {
			return int(g.order[0])
		}
		return best
	}
	best, bestS := -1, 0.0
	for i := range g.active {
		if up[i] == 0 || up[i] < lo || (best >= 0 && up[i] <= bestS) {
			continue
		}
		if s := float64(g.eff[i]) / -math.Log(us[i]); best < 0 || s > bestS {
			best, bestS = i, s
		}
	}
	return best
}

// maxBounded is the most rows hashed keeps the bounds of on its stack.
const maxBounded = 16

// rendezvous is hashed for a group with many rows: a row whose upper
// bound cannot beat the best so far needs no logarithm.
func (g *Group) rendezvous(x uint64) int {
	best, bestS := -1, 0.0
	for i := range g.active {
		if !g.eligible(i) {
			continue
		}
		u := unitOf(x, g.seeds[i])
		w := float64(g.eff[i])
		if best >= 0 && w/(1-u) <= bestS {
			continue
		}
		if s := w / -math.Log(u); best < 0 || s > bestS {
			best, bestS = i, s
		}
	}
	if best < 0 {
		return int(g.order[0])
	}
	return best
}

// unitOf hashes a client (x) and a row's seed to a number in (0, 1).
func unitOf(x, seed uint64) float64 { return (float64(mix(x^seed)>>11) + 0.5) / (1 << 53) }

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
