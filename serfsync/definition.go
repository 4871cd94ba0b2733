package serfsync

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	Lo, Hi uint16
}

// ParsePortRange parses "8080" or "9000-9009".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{l, l}, nil
	}
	h, err := parsePort(hi)
	if err != nil {
		return PortRange{}, err
	}
	if h < l {
		return PortRange{}, fmt.Errorf("port range %q: end is below start", s)
	}
	return PortRange{l, h}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q: want 1-65535", s)
	}
	return uint16(n), nil
}

func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// PortSet is a sorted list of non-overlapping port ranges.
type PortSet []PortRange

// NewPortSet sorts and merges ranges.
func NewPortSet(ranges []PortRange) PortSet {
	rs := slices.Clone(ranges)
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	var out PortSet
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Lo) <= int(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Contains reports whether port is in the set.
func (s PortSet) Contains(port uint16) bool {
	i, found := slices.BinarySearchFunc(s, port, func(r PortRange, p uint16) int {
		switch {
		case r.Hi < p:
			return -1
		case r.Lo > p:
			return 1
		}
		return 0
	})
	return found && i < len(s)
}

// Ports lists every port of the set in order.
func (s PortSet) Ports() []int {
	var out []int
	for _, r := range s {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			out = append(out, p)
		}
	}
	return out
}

// Overlaps reports whether the two sets share a port.
func (s PortSet) Overlaps(o PortSet) bool {
	for _, r := range s {
		for _, q := range o {
			if r.Lo <= q.Hi && q.Lo <= r.Hi {
				return true
			}
		}
	}
	return false
}

// DestAll is the destip value that makes every fleet node a candidate (claim 2).
const DestAll = "all"

// Definition is one VIPADISTRIBUTE statement as the fleet knows it: the
// VIPA, its routable ports, its candidate targets and its routing node
// (claims 1, 4, 9, 10).
type Definition struct {
	VIPA        netip.Addr
	Ports       PortSet
	DestIP      []string // node names or advertise addresses; [DestAll] for every node
	Distmethod  string
	RoutingNode string

	// Since is when the routing node began defining the VIPA (Unix ms),
	// kept across reloads that keep the VIPA: of two definitions of one
	// VIPA the earlier owns it, so a newcomer never displaces an
	// established routing node. Set by SetDefinitions.
	Since int64
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
		if a, err := netip.ParseAddr(dst); err == nil && advertise.IsValid() && a == advertise {
			return true
		}
	}
	return false
}
