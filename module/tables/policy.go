package tables

import (
	"fmt"
	"net/netip"
	"time"
)

// Distmethod names, as in the VIPADISTRIBUTE statement.
const (
	DistRoundRobin     = "roundrobin"
	DistWeightedActive = "weightedactive"
	DistLeastConn      = "leastconn"
	DistHotStandby     = "hotstandby"
	DistSourceHash     = "sourcehash"
	DistTargetWeight   = "targetweight"
)

// Destination roles of a hotstandby definition.
const (
	RolePreferred = "preferred"
	RoleBackup    = "backup"
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
	roundRobin:     DistRoundRobin,
	weightedActive: DistWeightedActive,
	leastConn:      DistLeastConn,
	hotStandby:     DistHotStandby,
	sourceHash:     DistSourceHash,
	targetWeight:   DistTargetWeight,
}

func (m method) String() string { return methodNames[m] }

// parseMethod resolves a Distmethod name; "" is roundrobin.
func parseMethod(name string) (method, error) {
	if name == "" {
		return roundRobin, nil
	}
	for m, n := range methodNames {
		if n == name {
			return method(m), nil
		}
	}
	return 0, fmt.Errorf("tables: unknown distmethod %q", name)
}

// CheckDistmethod reports whether name is a Distmethod this package
// implements ("" is roundrobin).
func CheckDistmethod(name string) error {
	_, err := parseMethod(name)
	return err
}

// Destination is one destination of a definition as the policy needs it:
// Node is a serf node name or an advertise address, matched against a row's
// Node or its address.
type Destination struct {
	Node   string
	Weight int    // 1-100; <= 0 means 1
	Role   string // "", RolePreferred or RoleBackup
	Rank   int    // backups: higher first
}

// Policy is how one VIPA distributes its connections: the definition's
// distmethod and its options. The zero Policy is unweighted roundrobin.
// A Policy must not change once given to SetPolicy.
type Policy struct {
	Distmethod   string
	Destinations []Destination // weights and hotstandby roles; rows of nodes not listed weigh 1

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
			if d.Role == RolePreferred {
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
func (c *compiled) destination(t *Target) Destination {
	addr := t.Address.Addr().Unmap()
	for i, d := range c.Destinations {
		if d.Node == t.Node || (c.addrs[i].IsValid() && c.addrs[i] == addr) {
			return d
		}
	}
	return Destination{Node: t.Node, Weight: 1}
}
