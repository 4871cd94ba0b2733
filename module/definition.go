package module

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// definition checks a VIPADISTRIBUTE statement and returns it as the fleet
// knows it, with this node as its routing node.
func (d *Distribute) definition(routingNode string) (*serfsync.Definition, error) {
	vipa, err := netip.ParseAddr(d.VIPA)
	if err != nil {
		return nil, fmt.Errorf("invalid VIPA %q: %w", d.VIPA, err)
	}
	if vipa.IsUnspecified() || vipa.IsMulticast() {
		return nil, fmt.Errorf("invalid VIPA %s: want a unicast address", vipa)
	}
	if len(d.Ports) == 0 {
		return nil, fmt.Errorf("VIPA %s: no port", vipa)
	}
	var ranges []serfsync.PortRange
	for _, p := range d.Ports {
		r, err := serfsync.ParsePortRange(p)
		if err != nil {
			return nil, fmt.Errorf("VIPA %s: %w", vipa, err)
		}
		ranges = append(ranges, r)
	}
	destIP, err := d.destIP()
	if err != nil {
		return nil, fmt.Errorf("VIPA %s: %w", vipa, err)
	}
	if len(destIP) == 0 {
		return nil, fmt.Errorf("VIPA %s: empty destip list", vipa)
	}
	for _, dst := range destIP {
		if dst == serfsync.DestAll && len(destIP) > 1 {
			return nil, fmt.Errorf("VIPA %s: destip all excludes other destinations", vipa)
		}
		if dst == "" {
			return nil, errors.New("empty destip")
		}
	}
	method, err := checkDistmethod(d.Distmethod)
	if err != nil {
		return nil, fmt.Errorf("VIPA %s: %w", vipa, err)
	}
	if err := d.checkOptions(method); err != nil {
		return nil, fmt.Errorf("VIPA %s: %w", vipa, err)
	}
	return &serfsync.Definition{
		VIPA:        vipa.Unmap(),
		Ports:       serfsync.NewPortSet(ranges),
		DestIP:      destIP,
		Distmethod:  method,
		RoutingNode: routingNode,
	}, nil
}

// checkDistmethod names the default distmethod for "" and refuses unknown
// ones.
func checkDistmethod(name string) (string, error) { return vipa.ParseDistmethod(name) }

// destIP is the definition's candidate list: DestIP, then the nodes of
// Destinations not already in it.
func (d *Distribute) destIP() ([]string, error) {
	out := slices.Clone(d.DestIP)
	for _, dst := range d.Destinations {
		if dst.Node == "" {
			return nil, errors.New("a destination without a node")
		}
		if !slices.Contains(out, dst.Node) {
			out = append(out, dst.Node)
		}
	}
	return out, nil
}

// checkOptions checks the distribution options against the distmethod.
func (d *Distribute) checkOptions(method string) error {
	dests := slices.Clone(d.Destinations)
	for _, n := range d.DestIP {
		if !slices.ContainsFunc(dests, func(x vipa.Destination) bool { return x.Node == n }) {
			dests = append(dests, vipa.Destination{Node: n})
		}
	}
	if err := vipa.ValidateDestinations(method, dests); err != nil {
		return err
	}
	if d.MaxConns < 0 {
		return fmt.Errorf("max_conns %d: want 0 (unlimited) or more", d.MaxConns)
	}
	if d.TimedAffinity < 0 || d.SlowStart < 0 {
		return errors.New("timedaffinity and slow_start cannot be negative")
	}
	if d.HotStandby != nil && method != vipa.HotStandby {
		return fmt.Errorf("hotstandby options need distmethod hotstandby, not %s", method)
	}
	return nil
}

// policy is how the routing node distributes def's connections.
func (d *Distribute) policy(def *serfsync.Definition, node string) *tables.Policy {
	p := &tables.Policy{
		Distmethod:     def.Distmethod,
		Destinations:   d.Destinations,
		TimedAffinity:  time.Duration(d.TimedAffinity),
		MaxConns:       d.MaxConns,
		SlowStart:      time.Duration(d.SlowStart),
		AutoSwitchBack: true,
		HealthSwitch:   true,
	}
	if d.OptLocal {
		p.LocalNode = node
	}
	if hs := d.HotStandby; hs != nil {
		if hs.AutoSwitchBack != nil {
			p.AutoSwitchBack = *hs.AutoSwitchBack
		}
		if hs.HealthSwitch != nil {
			p.HealthSwitch = *hs.HealthSwitch
		}
	}
	return p
}
