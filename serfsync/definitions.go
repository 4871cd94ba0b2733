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

// KnownDefinition is a definition known in the fleet and its conflict, if any.
type KnownDefinition struct {
	vipa.Definition

	// Conflict is empty, or says which other nodes define the same VIPA,
	// e.g. "VIPA 127.0.0.100 is also defined by caddy-b".
	Conflict string

	// Owner is true for the one definition of its VIPA that targets follow
	// and whose routing node builds the DPT: the earliest (Since), then
	// the lowest routing node name.
	Owner bool
}

// Bounds of one node's definitions on the wire. The decoder enforces these
// on the body; each definition must then pass vipa's rules, which are
// stricter (a destination is a node name of at most vipa.MaxNodeName
// bytes or an address), so a definition the wire could carry but no node
// should accept is dropped alone, not with the body.
const (
	maxDefs       = vipa.MaxDefinitions
	maxRanges     = vipa.MaxPortRanges
	maxDests      = vipa.MaxDestinations
	maxDestLen    = 255
	maxMethodLen  = 64
	defsVersionNo = 2

	// maxDefsBody leaves room in one answer frame for the report body
	// (under 128 KiB within its bounds) and the header.
	maxDefsBody = maxFrame * 3 / 4
)

// defsVersion is one version of a node's definitions.
type defsVersion struct {
	digest
	defs []*vipa.Definition // canonical: sorted by VIPA, ports merged
	body []byte
}

// canonicalDefs copies defs with this node as routing node, sorted by VIPA;
// a repeated VIPA keeps its first definition. A definition that breaks a
// rule (see vipa.Definition.Validate) is left out and passed to refused.
func canonicalDefs(defs []*vipa.Definition, node string, refused func(*vipa.Definition, error)) []*vipa.Definition {
	out := make([]*vipa.Definition, 0, len(defs))
	for _, d := range defs {
		if d == nil {
			continue
		}
		c := &vipa.Definition{
			VIPA:        d.VIPA.Unmap(),
			Ports:       vipa.NewPortSet(d.Ports),
			DestIP:      slices.Clone(d.DestIP),
			Distmethod:  d.Distmethod,
			RoutingNode: node,
			Since:       d.Since,
		}
		if err := c.Validate(); err != nil {
			refused(d, err)
			continue
		}
		out = append(out, c)
	}
	slices.SortStableFunc(out, func(x, y *vipa.Definition) int { return x.VIPA.Compare(y.VIPA) })
	return slices.CompactFunc(out, func(x, y *vipa.Definition) bool { return x.VIPA == y.VIPA })
}

// encodeDefs encodes canonical definitions; none is empty. Definitions
// that would take the body past maxDefsBody are left out and passed to
// refused; the result lists those encoded.
//
//	version count{ vipa since(u64) count(range){lo hi} count(dest){string} distmethod }
func encodeDefs(defs []*vipa.Definition, refused func(*vipa.Definition, error)) ([]*vipa.Definition, []byte) {
	var items [][]byte
	kept := defs[:0:0]
	size := 0
	for _, d := range defs {
		item := encodeDef(d)
		if size+len(item) > maxDefsBody {
			refused(d, errSize)
			continue
		}
		size += len(item)
		items = append(items, item)
		kept = append(kept, d)
	}
	if len(kept) == 0 {
		return nil, nil
	}
	e := enc{b: make([]byte, 0, size+4)}
	e.byte(defsVersionNo)
	e.uvarint(uint64(len(kept)))
	for _, item := range items {
		e.b = append(e.b, item...)
	}
	return kept, e.b
}

func encodeDef(d *vipa.Definition) []byte {
	e := enc{b: make([]byte, 0, 64)}
	e.addr(d.VIPA)
	e.u64(uint64(d.Since))
	e.uvarint(uint64(len(d.Ports)))
	for _, r := range d.Ports {
		e.u16(r.Lo)
		e.u16(r.Hi)
	}
	e.uvarint(uint64(len(d.DestIP)))
	for _, s := range d.DestIP {
		e.string(s)
	}
	e.string(d.Distmethod)
	return e.b
}

// decodeDefs decodes definitions routed by node and insists they are
// canonical, so the hash names one meaning. A body that breaks the wire's
// bounds is an error; a definition that decodes but breaks vipa's rules is
// left out alone and passed to dropped.
func decodeDefs(body []byte, node string, dropped func(*vipa.Definition, error)) ([]*vipa.Definition, error) {
	if len(body) == 0 {
		return nil, nil
	}
	d := dec{b: body}
	if d.byte() != defsVersionNo {
		return nil, errDecode
	}
	n := d.uvarint()
	if n == 0 || n > maxDefs {
		return nil, sizeOrDecode(d.err, n == 0)
	}
	if uint64(len(d.b)) < 17*n { // each definition takes at least 17 bytes
		return nil, errDecode
	}
	out := make([]*vipa.Definition, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		def := &vipa.Definition{VIPA: d.addr(), RoutingNode: node}
		if i > 0 && def.VIPA.Compare(out[i-1].VIPA) <= 0 {
			d.fail()
		}
		def.Since = int64(d.u64())
		nr := d.uvarint()
		if nr == 0 || nr > maxRanges || uint64(len(d.b)) < 4*nr {
			return nil, sizeOrDecode(d.err, nr == 0 || nr <= maxRanges)
		}
		def.Ports = make(vipa.PortSet, 0, nr)
		for k := uint64(0); k < nr; k++ {
			r := vipa.PortRange{Lo: d.u16(), Hi: d.u16()}
			if r.Lo == 0 || r.Hi < r.Lo || k > 0 && int(r.Lo) <= int(def.Ports[k-1].Hi)+1 {
				d.fail()
			}
			def.Ports = append(def.Ports, r)
		}
		nd := d.uvarint()
		if nd == 0 || nd > maxDests || uint64(len(d.b)) < 2*nd {
			return nil, sizeOrDecode(d.err, nd == 0 || nd <= maxDests)
		}
		def.DestIP = make([]string, 0, nd)
		for k := uint64(0); k < nd; k++ {
			s := d.string(maxDestLen)
			if s == "" {
				d.fail()
			}
			def.DestIP = append(def.DestIP, s)
		}
		def.Distmethod = d.string(maxMethodLen)
		out = append(out, def)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(out, func(def *vipa.Definition) bool {
		err := def.Validate()
		if err != nil {
			dropped(def, err)
		}
		return err != nil
	}), nil
}

// SetDefinitions sets the definitions this node routes; their RoutingNode
// becomes this node's name. Call it before or after Start and on reload.
// Definitions and OnDefinitions reflect it after the worker's next round
// (at once once started).
//
// A definition the fleet could not carry (it breaks a rule of vipa's, or
// would make the body too large for the state channel) is logged as an
// error and left out; the others go out.
func (a *Agent) SetDefinitions(defs []*vipa.Definition) {
	refused := func(d *vipa.Definition, err error) {
		a.logger.Error("definition not sent to the fleet", zap.Stringer("vipa", d.VIPA), zap.Error(err))
	}
	c := canonicalDefs(defs, a.cfg.NodeName, refused)
	a.mu.Lock()
	own := a.own.Load()
	now := time.Now().UnixMilli()
	for _, d := range c {
		d.Since = now
		for _, o := range own.defs.defs {
			if o.VIPA == d.VIPA {
				d.Since = o.Since // defined all along
			}
		}
	}
	c, body := encodeDefs(c, refused)
	if slices.Equal(body, own.defs.body) {
		a.mu.Unlock()
		return
	}
	next := *own
	next.defs = defsVersion{defs: c, body: body}
	next.defs.digest = digest{gen: a.gen, seq: own.defs.seq + 1, hash: hashBody(kindDefs, body)}
	a.own.Store(&next)
	a.defsDirty = true
	// Tell every member now rather than after a gossip round: each answers
	// by fetching the new version.
	for name, m := range a.members {
		if m.alive() && name != a.cfg.NodeName {
			a.scheduleLocked(name, true)
		}
	}
	a.mu.Unlock()
	a.kickTags()
	a.kick()
}

// Definitions lists every definition known here, this node's included,
// sorted by VIPA then routing node; conflict losers are marked.
func (a *Agent) Definitions() []KnownDefinition {
	a.mu.Lock()
	defer a.mu.Unlock()
	return cloneKnown(a.known)
}

// cloneKnown copies known definitions deep, so callers own what they get.
func cloneKnown(ks []KnownDefinition) []KnownDefinition {
	out := slices.Clone(ks)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
		out[i].DestIP = slices.Clone(out[i].DestIP)
	}
	return out
}

// viewLocked computes the known definitions from this node's and every live
// peer's, and who owns each VIPA.
func (a *Agent) viewLocked() ([]KnownDefinition, map[netip.Addr]*vipa.Definition) {
	byVIPA := map[netip.Addr][]*vipa.Definition{}
	add := func(defs []*vipa.Definition) {
		for _, d := range defs {
			byVIPA[d.VIPA] = append(byVIPA[d.VIPA], d)
		}
	}
	add(a.own.Load().defs.defs)
	for name, p := range a.peers {
		if p.defs != nil && a.members[name].alive() {
			add(p.defs.defs)
		}
	}
	var known []KnownDefinition
	owners := make(map[netip.Addr]*vipa.Definition, len(byVIPA))
	for v, ds := range byVIPA {
		slices.SortFunc(ds, func(x, y *vipa.Definition) int {
			if x.Since != y.Since {
				return cmp.Compare(x.Since, y.Since)
			}
			return strings.Compare(x.RoutingNode, y.RoutingNode)
		})
		owners[v] = ds[0]
		for i, d := range ds {
			k := KnownDefinition{Definition: *d, Owner: i == 0}
			if len(ds) > 1 {
				var others []string
				for _, o := range ds {
					if o != d {
						others = append(others, o.RoutingNode)
					}
				}
				k.Conflict = "VIPA " + v.String() + " is also defined by " + strings.Join(others, ", ")
			}
			known = append(known, k)
		}
	}
	slices.SortFunc(known, func(x, y KnownDefinition) int {
		if c := x.VIPA.Compare(y.VIPA); c != 0 {
			return c
		}
		return strings.Compare(x.RoutingNode, y.RoutingNode)
	})
	return known, owners
}

// updateViewLocked recomputes the view; it reports whether it changed and
// whether the set of VIPAs this node owns changed.
func (a *Agent) updateViewLocked() (changed, ownedChanged bool) {
	known, owners := a.viewLocked()
	if equalKnown(known, a.known) {
		return false, false
	}
	for _, k := range known {
		if k.Conflict != "" && k.RoutingNode == a.cfg.NodeName && !slices.ContainsFunc(a.known, func(o KnownDefinition) bool {
			return o.VIPA == k.VIPA && o.RoutingNode == k.RoutingNode && o.Conflict == k.Conflict
		}) {
			a.logger.Error("VIPA defined by more than one node", zap.String("vipa", k.VIPA.String()),
				zap.String("conflict", k.Conflict), zap.String("owner", owners[k.VIPA].RoutingNode))
		}
	}
	ownerOf := make(map[netip.Addr]string, len(owners))
	owned := map[netip.Addr]*vipa.Definition{}
	for v, d := range owners {
		ownerOf[v] = d.RoutingNode
		if d.RoutingNode == a.cfg.NodeName {
			owned[v] = d
		}
	}
	ownedChanged = !sameOwned(owned, a.owned)
	a.known, a.ownerOf, a.owned, a.defOf = known, ownerOf, owned, owners
	return true, ownedChanged
}

func sameOwned(x, y map[netip.Addr]*vipa.Definition) bool {
	if len(x) != len(y) {
		return false
	}
	for k, d := range x {
		o, ok := y[k]
		if !ok || !sameDefinition(d, o) {
			return false
		}
	}
	return true
}

func sameDefinition(x, y *vipa.Definition) bool {
	return x.VIPA == y.VIPA && slices.Equal(x.Ports, y.Ports) && slices.Equal(x.DestIP, y.DestIP) &&
		x.Distmethod == y.Distmethod && x.RoutingNode == y.RoutingNode && x.Since == y.Since
}

func equalKnown(x, y []KnownDefinition) bool {
	return slices.EqualFunc(x, y, func(a, b KnownDefinition) bool {
		return a.Conflict == b.Conflict && a.Owner == b.Owner && sameDefinition(&a.Definition, &b.Definition)
	})
}
