package tables

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Group is the set of rows for one (VIPA, port) in one DPT snapshot, with
// what its distmethod precomputed from them: weights, the round-robin
// schedule, the preference order. It never changes after Lookup returns
// it; callers must not modify its slices. All methods accept a nil *Group,
// which has no rows.
type Group struct {
	vipa   netip.Addr
	port   uint16
	all    []*Target // every row, sorted by Node
	active []*Target // the Active rows of all, in the same order
	st     *groupState
	pol    *compiled
	akey   *groupKey // the group's part of its clients' affinity keys

	// Indexed like active.
	weight []int32  // configured or reported weight, 1-100
	eff    []int32  // effective weight in hundredths, >= 1
	seeds  []uint64 // sourcehash: a hash of the row's node name

	order []uint16 // active indexes by preference: identity, or hotstandby's ranking
	posOf []uint16 // inverse of order
	sched []uint16 // smooth weighted round robin over eff: one period of active indexes
	local int      // index in active of the policy's LocalNode, or -1
	pref  int      // index in active of hotstandby's preferred row, or -1
}

// groupState survives snapshot replacement so that a rotation is not reset
// by an unrelated report. Every roundrobin and targetweight connection
// bumps rr, and a leastconn or weightedactive one that breaks a tie: 256
// bytes (a size class aligned to 256) keep it falseShare bytes away from
// anything else.
type groupState struct {
	rr    atomic.Uint64
	_     [falseShare - 8]byte
	inUse atomic.Pointer[Target] // hotstandby without autoswitchback: the row in use
	_     [falseShare - 8]byte
}

// schedCap bounds the round-robin schedule; larger weight sums are scaled
// down, which costs at most half a slot of each row's share.
const schedCap = 4096

func newGroup(k key, all []*Target, st *groupState, pol *compiled, now int64) *Group {
	g := &Group{vipa: k.vipa, port: k.port, all: all, st: st, pol: pol, local: -1, pref: -1,
		akey: groupKeyOf(k.vipa, k.port)}
	for _, t := range all {
		if t.State() == Active {
			g.active = append(g.active, t)
		}
	}
	n := len(g.active)
	g.weight = make([]int32, n)
	g.seeds = make([]uint64, n)
	dests := make([]vipa.Destination, n)
	for i, t := range g.active {
		dests[i] = pol.destination(t)
		w := dests[i].Weight
		if pol.method == targetWeight {
			w = t.ReportedWeight()
		}
		g.weight[i] = int32(min(max(w, 1), vipa.MaxWeight))
		h := fnv.New64a()
		h.Write([]byte(t.Node))
		g.seeds[i] = h.Sum64()
		if pol.LocalNode != "" && t.Node == pol.LocalNode {
			g.local = i
		}
		if pol.method == hotStandby && dests[i].Role == vipa.RolePreferred {
			g.pref = i
		}
	}
	for _, t := range all {
		if t.State() != Active {
			w := pol.destination(t).Weight
			if pol.method == targetWeight {
				w = t.ReportedWeight()
			}
			t.weight.Store(int32(min(max(w, 1), vipa.MaxWeight)))
			t.eff.Store(0) // takes no new connections
		}
	}
	g.order = make([]uint16, n)
	for i := range g.order {
		g.order[i] = uint16(i)
	}
	if pol.method == hotStandby {
		// preferred, then backups by rank (higher first), then the rest
		prio := func(d vipa.Destination) int {
			switch d.Role {
			case vipa.RolePreferred:
				return 1 << 20
			case vipa.RoleBackup:
				return d.Rank + 1
			}
			return 0
		}
		slices.SortStableFunc(g.order, func(a, b uint16) int { return cmp.Compare(prio(dests[b]), prio(dests[a])) })
	}
	g.posOf = make([]uint16, n)
	for p, i := range g.order {
		g.posOf[i] = uint16(p)
	}
	g.eff = g.effective(now)
	g.sched = schedule(g.eff)
	return g
}

// effective computes each active row's effective weight in hundredths:
// weight × TSR/100 × slow-start ramp, at least 1 so a struggling row still
// gets the odd connection that tells whether it recovered.
func (g *Group) effective(now int64) []int32 {
	eff := make([]int32, len(g.active))
	for i, t := range g.active {
		e := int64(g.weight[i]) * int64(t.TSR()) * t.ramp(now, g.pol.ramp) / 1000
		eff[i] = int32(max(e, 1))
		t.weight.Store(g.weight[i])
		t.eff.Store(eff[i])
	}
	return eff
}

// schedule lays out one period of nginx's smooth weighted round robin: each
// step every row gains its weight, the richest is picked and pays the sum.
// Weights 3:1 give a a b a, never a a a b.
func schedule(eff []int32) []uint16 {
	if len(eff) == 0 {
		return nil
	}
	w := make([]int64, len(eff))
	var gcd, sum int64
	for i, e := range eff {
		w[i] = int64(e)
		gcd = gcdOf(gcd, w[i])
	}
	for i := range w {
		w[i] /= gcd
		sum += w[i]
	}
	if sum > schedCap {
		s := sum
		sum = 0
		for i := range w {
			w[i] = max(1, (w[i]*schedCap+s/2)/s)
			sum += w[i]
		}
	}
	cur := make([]int64, len(w))
	out := make([]uint16, sum)
	for k := range out {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out[k] = uint16(best)
	}
	return out
}

func gcdOf(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// VIPA is the group's distributed address.
func (g *Group) VIPA() netip.Addr {
	if g == nil {
		return netip.Addr{}
	}
	return g.vipa
}

// Port is the group's distributed port.
func (g *Group) Port() uint16 {
	if g == nil {
		return 0
	}
	return g.port
}

// Distmethod is the name of the group's distmethod.
func (g *Group) Distmethod() string {
	if g == nil {
		return defaultPolicy.method.String()
	}
	return g.pol.method.String()
}

// Targets returns the Active rows, sorted by Node.
func (g *Group) Targets() []*Target {
	if g == nil {
		return nil
	}
	return g.active
}

// Len is len(Targets()): the number of Active rows. A group whose rows are
// all quiesced has Len 0.
func (g *Group) Len() int {
	if g == nil {
		return 0
	}
	return len(g.active)
}

// All returns every row of the group whatever its state, sorted by Node.
func (g *Group) All() []*Target {
	if g == nil {
		return nil
	}
	return g.all
}

// index finds node among the Active rows.
func (g *Group) index(node string) int {
	i, ok := findNode(g.active, node)
	if !ok {
		return -1
	}
	return i
}
