package tables

import (
	"net/netip"
	"time"
)

// Candidate is one DPT row of a what-if answer: whether it could take a new
// connection now and, if not, why.
type Candidate struct {
	Row
	Eligible bool
	WhyNot   string // "quiesced", "this listener itself", "at max_conns", "unhealthy"; empty when eligible
}

// Answer is what a new connection from one client would get now.
type Answer struct {
	Target     *Target // the row dialed first; nil when none would be
	Why        Why
	Affinity   string // the node of the client's timed affinity in force, or ""
	Candidates []Candidate
}

// WhatIf answers which row a new connection from client, arriving at local,
// would be dialed first now, and why, changing no state: it ranks with Peek
// and walks the candidates as the handler does, skipping a row at local
// (the listener itself). Rows whose dial would fail are not foreseen: the
// handler then goes on to the next candidate.
func (g *Group) WhatIf(crt *CRT, client netip.Addr, local netip.AddrPort, now time.Time) Answer {
	var a Answer
	if g == nil || len(g.all) == 0 {
		return a
	}
	if g.pol.affinity > 0 && crt != nil {
		if node, ok, _, _ := crt.aff.lookup(affKeyOf(g.vipa, g.port, client), mono(now)); ok {
			a.Affinity = node
		}
	}
	var c Candidates
	if g.Len() > 0 {
		c = g.Peek(crt, client, now)
		for t := c.Next(); t != nil; t = c.Next() {
			if t.Address != local {
				a.Target, a.Why = t, c.Why()
				break
			}
		}
	}
	inUse := g.inUse()
	for _, t := range g.all {
		k := Candidate{Row: t.Row()}
		switch {
		case k.State != Active:
			k.WhyNot = k.State.String()
		case t.Address == local:
			k.WhyNot = "this listener itself"
		case !g.room(t):
			k.WhyNot = "at max_conns"
		case !t.healthy() && !(t == a.Target && c.keep && a.Why.Offered == a.Why.Rule):
			k.WhyNot = "unhealthy"
		default:
			k.Eligible = true
		}
		shown(&k.Row, t, inUse)
		a.Candidates = append(a.Candidates, k)
	}
	return a
}
