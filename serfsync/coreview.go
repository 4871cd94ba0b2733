package serfsync

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// setReport makes ls, canonical (see canonicalListeners) and within the
// report bounds, this node's report if it differs; see setLines.
func (c *core) setReport(ls []vipa.Listener) bool {
	lines := canonicalListeners(ls)
	if n := boundedLines(lines); n < len(lines) {
		c.logger.Error("listener report too large; truncated", zap.Int("lines", len(lines)), zap.Int("kept", n))
		lines = lines[:n]
	}
	return c.setLines(lines)
}

// setLines makes lines this node's report if they differ from it, and
// schedules syncs with the routing nodes of the VIPAs in the old or the new
// report. It reports whether the report changed.
func (c *core) setLines(lines []vipa.Listener) bool {
	old := c.own.report
	if slices.Equal(lines, old.lines) {
		return false
	}
	next := report{adv: c.adv, lines: lines}
	next.body = encodeReport(c.adv, lines)
	next.digest = digest{gen: c.gen, seq: old.seq + 1, hash: hashBody(kindReport, next.body)}
	c.own.report = next
	c.dirty[c.name] = true
	c.selfCount, c.tagsDirty = true, true
	for _, v := range vipasOf(old.lines, lines) {
		if owner := c.ownerOf[v]; owner != "" && owner != c.name && c.members[owner].alive() {
			c.schedule(owner, true)
		}
		for _, name := range c.standbys(v) {
			if name != c.ownerOf[v] {
				c.schedule(name, true)
			}
		}
	}
	return true
}

// setDefinitions makes defs, canonical (see canonicalDefs), the ones this
// node routes, at now: a VIPA it did not define before has Since now. Every
// live member is synced with at once rather than after a gossip round: each
// answers by fetching the new version. A definition the fleet could not
// carry is logged as an error and left out. It reports whether they changed.
func (c *core) setDefinitions(defs []*vipa.Definition, now time.Time) bool {
	refused := func(d *vipa.Definition, err error) {
		c.logger.Error("definition not sent to the fleet", zap.Stringer("vipa", d.VIPA), zap.Error(err))
	}
	defs = canonicalDefs(defs, c.name, refused)
	old := c.own.defs
	since := now.UnixMilli()
	for _, d := range defs {
		d.Since = since
		for _, o := range old.defs {
			if o.VIPA == d.VIPA {
				d.Since = o.Since // defined all along
			}
		}
	}
	defs, body := encodeDefs(defs, refused)
	if slices.Equal(body, old.body) {
		return false
	}
	c.keepOrphans(old.defs, defs, c.name)
	c.own.defs = defsVersion{defs: defs, body: body,
		digest: digest{gen: c.gen, seq: old.seq + 1, hash: hashBody(kindDefs, body)}}
	c.defsDirty, c.tagsDirty = true, true
	for _, name := range c.memberNames() {
		if c.members[name].alive() {
			c.schedule(name, true)
		}
	}
	return true
}

// keepOrphans keeps, as orphans, the definitions of the VIPAs node owned
// in old and no longer defines in defs: a routing node handing its VIPA
// over stops defining it before the successor defines it, and meanwhile
// the standbys' rows must not go (the view drops an orphan once a live
// node defines the VIPA, or no one stands by for it).
func (c *core) keepOrphans(old, defs []*vipa.Definition, node string) {
	for _, o := range old {
		if c.ownerOf[o.VIPA] == node && !slices.ContainsFunc(defs, func(d *vipa.Definition) bool { return d.VIPA == o.VIPA }) {
			c.orphans[o.VIPA] = o
			c.released[o.VIPA] = true
		}
	}
}

// view computes the known definitions from this node's and every live
// peer's, and who owns each VIPA.
func (c *core) view() ([]KnownDefinition, map[netip.Addr]*vipa.Definition) {
	byVIPA := map[netip.Addr][]*vipa.Definition{}
	add := func(defs []*vipa.Definition) {
		for _, d := range defs {
			byVIPA[d.VIPA] = append(byVIPA[d.VIPA], d)
		}
	}
	add(c.own.defs.defs)
	for name, p := range c.peers {
		if p.defs != nil && c.members[name].alive() {
			add(p.defs.defs)
		}
	}
	// A gone routing node's definition stays while a live node stands by
	// for its VIPA and no live node defines it: targets keep reporting to
	// the standbys, whose DPT stays current until one takes the VIPA over.
	orphan := map[*vipa.Definition]bool{}
	for v, d := range c.orphans {
		if len(byVIPA[v]) > 0 || (!c.standby[v] && len(c.standbys(v)) == 0) {
			delete(c.orphans, v)
			delete(c.released, v)
			continue
		}
		add([]*vipa.Definition{d})
		orphan[d] = c.released[v]
	}
	var known []KnownDefinition
	owners := make(map[netip.Addr]*vipa.Definition, len(byVIPA))
	own := parseVIPADyn(c.vipadynTag)
	rank := func(d *vipa.Definition) int { // 0: defined; 1-254: a backup's takeover
		if d.RoutingNode == c.name {
			return own.Ranks[d.VIPA]
		}
		if m := c.members[d.RoutingNode]; m != nil {
			return m.vipadyn.Ranks[d.VIPA]
		}
		return 0
	}
	for v, ds := range byVIPA {
		// Defined first (earliest, then lowest name), then takeovers
		// (higher rank, then lowest name): vipadyn's order.
		slices.SortFunc(ds, func(x, y *vipa.Definition) int {
			rx, ry := rank(x), rank(y)
			if (rx == 0) != (ry == 0) {
				return cmp.Compare(rx, ry)
			}
			if rx != ry {
				return cmp.Compare(ry, rx)
			}
			if x.Since != y.Since {
				return cmp.Compare(x.Since, y.Since)
			}
			return strings.Compare(x.RoutingNode, y.RoutingNode)
		})
		owners[v] = ds[0]
		for i, d := range ds {
			k := KnownDefinition{Definition: *d, Owner: i == 0, Released: orphan[d]}
			// A backup routing a taken-over VIPA is no second definer: the
			// ownership rule settles it. Only defining nodes conflict.
			var others []string
			for _, o := range ds {
				if o != d && rank(d) == 0 && rank(o) == 0 {
					others = append(others, o.RoutingNode)
				}
			}
			if len(others) > 0 {
				k.Conflict = "VIPA " + v.String() + " is also defined by " + strings.Join(others, ", ")
			}
			known = append(known, k)
		}
	}
	slices.SortFunc(known, func(x, y KnownDefinition) int {
		if d := x.VIPA.Compare(y.VIPA); d != 0 {
			return d
		}
		return strings.Compare(x.RoutingNode, y.RoutingNode)
	})
	return known, owners
}

// updateView recomputes the view; it reports whether it changed and
// whether the set of VIPAs this node owns changed.
func (c *core) updateView() (changed, ownedChanged bool) {
	known, owners := c.view()
	if equalKnown(known, c.known) {
		return false, false
	}
	for _, k := range known {
		if k.Conflict != "" && k.RoutingNode == c.name && !slices.ContainsFunc(c.known, func(o KnownDefinition) bool {
			return o.VIPA == k.VIPA && o.RoutingNode == k.RoutingNode && o.Conflict == k.Conflict
		}) {
			c.logger.Error("VIPA defined by more than one node", zap.String("vipa", k.VIPA.String()),
				zap.String("conflict", k.Conflict), zap.String("owner", owners[k.VIPA].RoutingNode))
		}
	}
	ownerOf := make(map[netip.Addr]string, len(owners))
	owned := map[netip.Addr]*vipa.Definition{}
	for v, d := range owners {
		ownerOf[v] = d.RoutingNode
		if d.RoutingNode == c.name {
			owned[v] = d
		}
	}
	ownedChanged = !sameOwned(owned, c.owned)
	c.known, c.ownerOf, c.owned, c.defOf = known, ownerOf, owned, owners
	return true, ownedChanged
}
