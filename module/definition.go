package module

import (
	"errors"
	"fmt"
	"net/netip"

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
	if len(d.DestIP) == 0 {
		return nil, fmt.Errorf("VIPA %s: empty destip list", vipa)
	}
	for _, dst := range d.DestIP {
		if dst == serfsync.DestAll && len(d.DestIP) > 1 {
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
	return &serfsync.Definition{
		VIPA:        vipa.Unmap(),
		Ports:       serfsync.NewPortSet(ranges),
		DestIP:      d.DestIP,
		Distmethod:  method,
		RoutingNode: routingNode,
	}, nil
}

// checkDistmethod names the default distmethod for "" and refuses unknown
// ones.
func checkDistmethod(name string) (string, error) { return vipa.ParseDistmethod(name) }
