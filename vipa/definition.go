package vipa

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// MaxDefinitions bounds the definitions one routing node carries: the
// fleet's wire carries no more.
const MaxDefinitions = 1024

// Definition is one VIPADISTRIBUTE statement as the fleet knows it: the
// VIPA, its routable ports, its candidate targets and its routing node.
type Definition struct {
	VIPA        netip.Addr
	Ports       PortSet  // with All: every port but the excluded ones
	All         bool     // port all: the ports are the targets' listeners (claims 6, 19, 25)
	DestIP      []string // node names or advertise addresses; [DestAll] for every node
	Distmethod  string
	RoutingNode string

	// Options are the distribution options: weights, hotstandby roles,
	// affinity, limits. They travel with the definition, so a backup that
	// takes the VIPA over routes exactly as its routing node did.
	Options Options

	// Since is when the routing node began defining the VIPA (Unix ms),
	// kept across reloads that keep the VIPA: of two definitions of one
	// VIPA the earlier owns it, so a newcomer never displaces an
	// established routing node. The fleet's agent sets it.
	Since int64
}

// NewDefinition parses and checks a definition's parts as a config writes
// them: ports is a port list or "all", exclude only goes with "all".
// routingNode may be empty while it is not known yet. The definition has
// no options: the caller sets Options and checks them (CheckOptions).
func NewDefinition(vipa string, ports, exclude, destIP []string, distmethod, routingNode string) (*Definition, error) {
	v, err := ParseVIPA(vipa)
	if err != nil {
		return nil, err
	}
	d := &Definition{VIPA: v, DestIP: destIP, RoutingNode: routingNode}
	if len(ports) == 0 {
		return nil, errors.New("missing port")
	}
	var excluded PortSet
	if d.Ports, d.All, excluded, err = ParsePortSpec(ports, exclude); err != nil {
		return nil, err
	}
	if d.All {
		if d.Ports = AllPortsBut(excluded); len(d.Ports) == 0 {
			return nil, errors.New("exclude leaves no port")
		}
	}
	if len(destIP) == 0 {
		return nil, errors.New("missing destip")
	}
	if d.Distmethod, err = ParseDistmethod(distmethod); err != nil {
		return nil, err
	}
	if routingNode == "" {
		return d, d.check()
	}
	if err := ValidateNodeName(routingNode); err != nil {
		return nil, fmt.Errorf("routing node: %w", err)
	}
	return d, d.check() // the caller adds and checks the options
}

// Validate checks every rule of a definition, the bounds of the fleet's
// wire included: one that passes reaches every peer.
func (d *Definition) Validate() error {
	if err := ValidateNodeName(d.RoutingNode); err != nil {
		return fmt.Errorf("routing node: %w", err)
	}
	if err := d.check(); err != nil {
		return err
	}
	return d.CheckOptions()
}

func (d *Definition) check() error {
	if !unicast(d.VIPA) || d.VIPA.Zone() != "" {
		return fmt.Errorf("invalid VIPA %q: want a unicast IP address", d.VIPA)
	}
	switch {
	case len(d.Ports) == 0:
		return errors.New("missing port")
	case len(d.Ports) > MaxPortRanges:
		return fmt.Errorf("%d port ranges: at most %d", len(d.Ports), MaxPortRanges)
	}
	if err := ValidateDestIP(d.DestIP); err != nil {
		return err
	}
	if d.Distmethod == "" {
		return errors.New("missing distmethod")
	}
	_, err := ParseDistmethod(d.Distmethod)
	return err
}

// CheckOptions checks the options against the distmethod and destip list.
func (d *Definition) CheckOptions() error { return d.Options.check(d.Distmethod, d.DestIP) }

// Equal reports whether d and o are the same definition.
func (d *Definition) Equal(o *Definition) bool {
	return d.VIPA == o.VIPA && slices.Equal(d.Ports, o.Ports) && d.All == o.All && slices.Equal(d.DestIP, o.DestIP) &&
		d.Distmethod == o.Distmethod && d.RoutingNode == o.RoutingNode && d.Since == o.Since && d.Options.Equal(&o.Options)
}

// Clone copies d deep.
func (d *Definition) Clone() *Definition {
	c := *d
	c.Ports = slices.Clone(d.Ports)
	c.DestIP = slices.Clone(d.DestIP)
	c.Options = d.Options.Clone()
	return &c
}

// Candidate reports whether the node with this name and advertise address
// may be a target of the definition (claims 2, 3). The routing node is
// always a candidate of its own VIPA.
func (d *Definition) Candidate(node string, advertise netip.Addr) bool {
	if node == d.RoutingNode {
		return true
	}
	for _, dst := range d.DestIP {
		if dst == DestAll || dst == node {
			return true
		}
		if a, err := netip.ParseAddr(dst); err == nil && advertise.IsValid() && a.Unmap() == advertise.Unmap() {
			return true
		}
	}
	return false
}
