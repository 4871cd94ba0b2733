package tables

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// method is a Distmethod name resolved once, so the connection path
// switches on a byte.
type method uint8

const (
	roundRobin method = iota
	weightedActive
	leastConn
	hotStandby
	sourceHash
	targetWeight
)

var methodNames = [...]string{
	roundRobin:     vipa.RoundRobin,
	weightedActive: vipa.WeightedActive,
	leastConn:      vipa.LeastConn,
	hotStandby:     vipa.HotStandby,
	sourceHash:     vipa.SourceHash,
	targetWeight:   vipa.TargetWeight,
}

func (m method) String() string { return methodNames[m] }

// parseMethod resolves a distmethod name; "" is the default.
func parseMethod(name string) (method, error) {
	name, err := vipa.ParseDistmethod(name)
	if err != nil {
		return 0, fmt.Errorf("tables: %w", err)
	}
	for m, n := range methodNames {
		if n == name {
			return method(m), nil
		}
	}
	return 0, fmt.Errorf("tables: distmethod %q is not implemented", name)
}

// Policy is how one VIPA distributes its connections: the definition's
// distmethod and its options. The zero Policy is unweighted roundrobin.
// A Policy must not change once given to SetPolicy.
type Policy struct {
	Distmethod string
	// Destinations weigh the rows of the nodes (or advertise addresses)
	// they name and give them hotstandby roles; other rows weigh 1.
	Destinations []vipa.Destination

	// TimedAffinity keeps a client IP on its target while it has
	// connections and this long after the last one closed; 0 is off.
	TimedAffinity time.Duration
	// LocalNode, when set, is the routing node's own name: its row is
	// preferred while it is ready, healthy and has room (optlocal).
	LocalNode string
	// MaxConns bounds each target's active connections; 0 is unlimited.
	MaxConns int64
	// SlowStart ramps a new or recovered row's weight from 10% to 100%
	// over this long; 0 is off.
	SlowStart time.Duration

	// AutoSwitchBack (hotstandby) returns to the preferred destination as
	// soon as it can take connections again; otherwise the backup in use
	// keeps them until it cannot.
	AutoSwitchBack bool
	// HealthSwitch (hotstandby) leaves an unhealthy preferred or backup;
	// otherwise only a row that is gone, quiesced or full is left.
	HealthSwitch bool
}

// compiled is a Policy resolved for the connection path.
type compiled struct {
	*Policy
	method   method
	affinity int64        // nanoseconds
	ramp     int64        // nanoseconds
	addrs    []netip.Addr // Destinations[i].Node as an address, or invalid
}

var defaultPolicy = mustCompile(&Policy{})

func compile(p *Policy) (*compiled, error) {
	if p == nil {
		p = &Policy{}
	}
	m, err := parseMethod(p.Distmethod)
	if err != nil {
		return nil, err
	}
	if p.MaxConns < 0 || p.TimedAffinity < 0 || p.SlowStart < 0 {
		return nil, fmt.Errorf("tables: negative max_conns, timedaffinity or slow_start in %+v", *p)
	}
	if m == hotStandby {
		n := 0
		for _, d := range p.Destinations {
			if d.Role == vipa.RolePreferred {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("tables: hotstandby needs exactly one preferred destination, not %d", n)
		}
	}
	c := &compiled{Policy: p, method: m, affinity: int64(p.TimedAffinity), ramp: int64(p.SlowStart)}
	for _, d := range p.Destinations {
		a, _ := netip.ParseAddr(d.Node)
		c.addrs = append(c.addrs, a.Unmap())
	}
	return c, nil
}

func mustCompile(p *Policy) *compiled {
	c, err := compile(p)
	if err != nil {
		panic(err)
	}
	return c
}

// destination returns what the policy says of a row: its Destination, or a
// weight-1 one when the row's node is not listed (destip all).
func (c *compiled) destination(t *Target) vipa.Destination {
	addr := t.Address.Addr().Unmap()
	for i, d := range c.Destinations {
		if d.Node == t.Node || (c.addrs[i].IsValid() && c.addrs[i] == addr) {
			return d
		}
	}
	return vipa.Destination{Node: t.Node, Weight: 1}
}

// PolicyOf is the policy of a definition routed by node: its distmethod
// and options, the same on the routing node that defines it and on a
// backup that takes it over (optlocal then prefers the backup's own
// target: the routing node's, where no hop is needed).
func PolicyOf(def *vipa.Definition, node string) *Policy {
	o := &def.Options
	p := &Policy{
		Distmethod:     def.Distmethod,
		Destinations:   o.Destinations,
		TimedAffinity:  o.TimedAffinity,
		MaxConns:       o.MaxConns,
		SlowStart:      o.SlowStart,
		AutoSwitchBack: !o.NoAutoSwitchBack,
		HealthSwitch:   !o.NoHealthSwitch,
	}
	if o.OptLocal && def.Distmethod != vipa.HotStandby { // a config refuses it; a peer's may carry it
		p.LocalNode = node
	}
	return p
}
