package serfsync

import (
	"net/netip"
	"slices"
	"time"

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

	// Released is true for the kept definition of a live routing node
	// that stopped defining the VIPA (it hands it over), while a live node
	// stands by for it and no live node defines it: targets keep reporting
	// and the standbys keep their rows. Its routing node claims nothing by
	// it. (A gone routing node's definition is kept the same way, and is
	// its last claim.)
	Released bool
}

// Bounds of one node's definitions on the wire. The decoder enforces these
// on the body; each definition must then pass vipa's rules, which are
// stricter (a destination is a node name of at most vipa.MaxNodeName
// bytes or an address), so a definition the wire could carry but no node
// should accept is dropped alone, not with the body.
const (
	maxDefs      = vipa.MaxDefinitions
	maxRanges    = vipa.MaxPortRanges
	maxDests     = vipa.MaxDestinations
	maxDestLen   = 255
	maxMethodLen = 64

	// Definitions' body versions: 3 carries no options, 4 adds each
	// definition's (see encodeDefs). A sender writes 3 unless some
	// definition has an option, so a fleet without options sends what
	// older nodes read.
	defsVersion3 = 3
	defsVersion4 = 4

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
			Options:     d.Options.Canonical(),
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
//	version count{ vipa since(u64) count(range){lo hi} count(dest){string} distmethod flags [options] }
//
// flags: bit 0, port all (the ranges are every port but the excluded ones).
// Version 4 adds options to every definition:
//
//	oflags(byte) affinity(ns) max_conns slow_start(ns) count(destination){node weight role rank}
//
// oflags: bit 0 optlocal, bit 1 autoswitchback off, bit 2 healthswitch
// off; the numbers are uvarints; weight is 1-100, role 0 none, 1
// preferred, 2 backup, rank 0 or 1-254 (bytes). Version 4 is written only
// when some definition has an option: a body has one version.
func encodeDefs(defs []*vipa.Definition, refused func(*vipa.Definition, error)) ([]*vipa.Definition, []byte) {
	version := byte(defsVersion3)
	for _, d := range defs {
		if !d.Options.IsZero() {
			version = defsVersion4
		}
	}
	var items [][]byte
	kept := defs[:0:0]
	size := 0
	for _, d := range defs {
		item := encodeDef(d, version)
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
	if version == defsVersion4 && !slices.ContainsFunc(kept, func(d *vipa.Definition) bool { return !d.Options.IsZero() }) {
		// the definitions with options were left out: the rest is version 3
		return encodeDefs(kept, refused)
	}
	e := enc{b: make([]byte, 0, size+4)}
	e.byte(version)
	e.uvarint(uint64(len(kept)))
	for _, item := range items {
		e.b = append(e.b, item...)
	}
	return kept, e.b
}

// Option flags and destination roles on the wire (version 4).
const (
	optLocal            = 1 << 0
	optNoAutoSwitchBack = 1 << 1
	optNoHealthSwitch   = 1 << 2
	optAll              = optLocal | optNoAutoSwitchBack | optNoHealthSwitch
)

var wireRoles = []vipa.Role{vipa.RoleNone, vipa.RolePreferred, vipa.RoleBackup}

func encodeDef(d *vipa.Definition, version byte) []byte {
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
	if version == defsVersion4 {
		encodeOptions(&e, &d.Options)
	}
	return e.b
}

func encodeOptions(e *enc, o *vipa.Options) {
	var flags byte
	if o.OptLocal {
		flags |= optLocal
	}
	if o.NoAutoSwitchBack {
		flags |= optNoAutoSwitchBack
	}
	if o.NoHealthSwitch {
		flags |= optNoHealthSwitch
	}
	e.byte(flags)
	e.uvarint(uint64(o.TimedAffinity))
	e.uvarint(uint64(o.MaxConns))
	e.uvarint(uint64(o.SlowStart))
	e.uvarint(uint64(len(o.Destinations)))
	for _, dst := range o.Destinations {
		e.string(dst.Node)
		e.byte(byte(dst.Weight))
		e.byte(byte(slices.Index(wireRoles, dst.Role)))
		e.byte(byte(dst.Rank))
	}
}

// decodeOptions reads one definition's options (version 4). The checks
// against the distmethod and destip are vipa's (Validate), after decoding.
func decodeOptions(d *dec) vipa.Options {
	var o vipa.Options
	flags := d.byte()
	if flags&^optAll != 0 {
		d.fail()
	}
	o.OptLocal = flags&optLocal != 0
	o.NoAutoSwitchBack = flags&optNoAutoSwitchBack != 0
	o.NoHealthSwitch = flags&optNoHealthSwitch != 0
	o.TimedAffinity = time.Duration(d.uvarint())
	o.MaxConns = int64(d.uvarint())
	o.SlowStart = time.Duration(d.uvarint())
	if o.TimedAffinity < 0 || o.MaxConns < 0 || o.SlowStart < 0 {
		d.fail()
	}
	n := d.uvarint()
	if n > maxDests || uint64(len(d.b)) < 4*n {
		d.fail()
		return o
	}
	for range n {
		dst := vipa.Destination{Node: d.string(maxDestLen), Weight: int(d.byte())}
		role := int(d.byte())
		dst.Rank = int(d.byte())
		if role >= len(wireRoles) || dst.Weight == 0 {
			d.fail()
			return o
		}
		dst.Role = wireRoles[role]
		o.Destinations = append(o.Destinations, dst)
	}
	if d.err == nil && !o.Equal(ptr(o.Canonical())) {
		d.fail() // one meaning, one body
	}
	return o
}

func ptr[T any](v T) *T { return &v }

// decodeDefs decodes definitions routed by node and insists they are
// canonical, so the hash names one meaning. A body that breaks the wire's
// bounds is an error; a definition that decodes but breaks vipa's rules is
// left out alone and passed to dropped.
func decodeDefs(body []byte, node string, dropped func(*vipa.Definition, error)) ([]*vipa.Definition, error) {
	if len(body) == 0 {
		return nil, nil
	}
	d := dec{b: body}
	version := d.byte()
	if version != defsVersion3 && version != defsVersion4 {
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
		if version == defsVersion4 {
			def.Options = decodeOptions(&d)
		}
		out = append(out, def)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if version == defsVersion4 && !slices.ContainsFunc(out, func(def *vipa.Definition) bool { return !def.Options.IsZero() }) {
		return nil, errDecode // version 3 says this: a body has one version
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
		out[i].Definition = *out[i].Definition.Clone()
	}
	return out
}

func sameOwned(x, y map[netip.Addr]*vipa.Definition) bool {
	if len(x) != len(y) {
		return false
	}
	for k, d := range x {
		o, ok := y[k]
		if !ok || !d.Equal(o) {
			return false
		}
	}
	return true
}

func equalKnown(x, y []KnownDefinition) bool {
	return slices.EqualFunc(x, y, func(a, b KnownDefinition) bool {
		return a.Conflict == b.Conflict && a.Owner == b.Owner && a.Released == b.Released && a.Definition.Equal(&b.Definition)
	})
}
