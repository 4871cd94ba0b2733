package serfsync

import (
	"net/netip"
	"slices"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// KnownDefinition is a definition known in the fleet and its conflict, if any.
type KnownDefinition struct {
	vipa.Definition

	// Conflict is empty, or says which other nodes define the same VIPA,
	// e.g. "VIPA 127.0.0.100 is also defined by caddy-b". A backup routing
	// a VIPA it took over defines nothing: its definition neither has nor
	// causes a conflict (two routing nodes after a partition heal are the
	// ownership rule's to settle).
	Conflict string

	// Owner is true for the one definition of its VIPA that targets follow
	// and whose routing node builds the DPT: a defining node's before a
	// backup's taken-over one; among defining nodes the earliest (Since),
	// then the lowest routing node name; among backups the higher rank,
	// then the lowest name.
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
	defsVersionNo = 3

	// maxDefsBody leaves room in one answer frame for the report body
	// (under 128 KiB within its bounds) and the header.
	maxDefsBody = maxFrame * 3 / 4

	flagAll = 1 // a definition's flags: port all
)

// defsVersion is one version of a node's definitions.
type defsVersion struct {
	digest
	defs []*vipa.Definition // canonical: sorted by VIPA, ports merged
	body []byte
}

// defines reports whether v holds a definition: only then does dropping
// or replacing it change the view.
func (v *defsVersion) defines() bool { return v != nil && len(v.defs) > 0 }

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
			All:         d.All,
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
//	version count{ vipa since(u64) count(range){lo hi} count(dest){string} distmethod flags }
//
// flags: bit 0, port all (the ranges are every port but the excluded ones).
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
	var flags byte
	if d.All {
		flags |= flagAll
	}
	e.byte(flags)
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
	if uint64(len(d.b)) < 18*n { // each definition takes at least 18 bytes
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
		switch d.byte() {
		case 0:
		case flagAll:
			def.All = true
		default:
			d.fail()
		}
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

// cloneKnown copies known definitions deep, so callers own what they get.
func cloneKnown(ks []KnownDefinition) []KnownDefinition {
	out := slices.Clone(ks)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
		out[i].DestIP = slices.Clone(out[i].DestIP)
	}
	return out
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
	return x.VIPA == y.VIPA && slices.Equal(x.Ports, y.Ports) && x.All == y.All && slices.Equal(x.DestIP, y.DestIP) &&
		x.Distmethod == y.Distmethod && x.RoutingNode == y.RoutingNode && x.Since == y.Since
}

func equalKnown(x, y []KnownDefinition) bool {
	return slices.EqualFunc(x, y, func(a, b KnownDefinition) bool {
		return a.Conflict == b.Conflict && a.Owner == b.Owner && sameDefinition(&a.Definition, &b.Definition)
	})
}
