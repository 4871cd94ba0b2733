package tables

import (
	"net/netip"
	"sync/atomic"
)

// Group is the set of rows for one (VIPA, port) in one DPT snapshot. It never
// changes after Lookup returns it; callers must not modify its slices. All
// methods accept a nil *Group, which has no rows.
type Group struct {
	vipa   netip.Addr
	port   uint16
	all    []*Target // every row, sorted by Node
	active []*Target // the Active rows of all, in the same order
	rr     *counter  // shared with the (VIPA, port)'s later groups
}

// counter survives snapshot replacement so that a rotation is not reset by
// an unrelated report; padded because every new connection bumps it.
type counter struct {
	n atomic.Uint64
	_ [56]byte
}

func newGroup(k key, all []*Target, rr *counter) *Group {
	g := &Group{vipa: k.vipa, port: k.port, all: all, rr: rr}
	for _, t := range all {
		if t.State() == Active {
			g.active = append(g.active, t)
		}
	}
	return g
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

// Targets returns the Active rows, sorted by Node. It is what a Distmethod
// indexes into.
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
