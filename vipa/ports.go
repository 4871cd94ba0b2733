package vipa

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// PortAll is the port list that distributes every port a candidate target
// listens on (claim 6); it stands alone and may carry exclusions.
const PortAll = "all"

// MaxPortRanges bounds the ranges of one definition: the fleet's wire
// carries no more.
const MaxPortRanges = 4096

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

// PortSet is a sorted list of non-overlapping, non-adjacent port ranges.
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

// ParsePorts parses a port list ("8080", "9000-9009", …) into a set. An
// empty list, or one too long for the fleet's wire, is an error; so is
// "all", which ParsePortSpec accepts.
func ParsePorts(list []string) (PortSet, error) {
	if len(list) == 0 {
		return nil, errors.New("port needs at least one port or range")
	}
	ranges := make([]PortRange, 0, len(list))
	for _, p := range list {
		if p == PortAll {
			return nil, errors.New("port all cannot be mixed with a port list")
		}
		r, err := ParsePortRange(p)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, r)
	}
	set := NewPortSet(ranges)
	if len(set) > MaxPortRanges {
		return nil, fmt.Errorf("%d port ranges: at most %d", len(set), MaxPortRanges)
	}
	return set, nil
}

// ParsePortSpec parses what may follow "port": either "all" alone, or a
// port list. exclude may only go with "all".
func ParsePortSpec(list, exclude []string) (ports PortSet, all bool, excluded PortSet, err error) {
	if len(list) == 1 && list[0] == PortAll {
		if len(exclude) == 0 {
			return nil, true, nil, nil
		}
		excluded, err = ParsePorts(exclude)
		if err != nil {
			return nil, false, nil, fmt.Errorf("exclude: %w", err)
		}
		return nil, true, excluded, nil
	}
	if len(exclude) > 0 {
		return nil, false, nil, errors.New("exclude needs port all")
	}
	ports, err = ParsePorts(list)
	return ports, false, nil, err
}

// AllPortsBut is every port, 1-65535, outside excluded: the ports of a
// definition with port all.
func AllPortsBut(excluded PortSet) PortSet {
	var out PortSet
	next := 1
	for _, r := range excluded {
		if int(r.Lo) > next {
			out = append(out, PortRange{uint16(next), r.Lo - 1})
		}
		next = int(r.Hi) + 1
	}
	if next <= 65535 {
		out = append(out, PortRange{uint16(next), 65535})
	}
	return out
}

// Excluded is the complement of s in 1-65535: for a port all definition,
// its exclude list.
func (s PortSet) Excluded() PortSet { return AllPortsBut(s) }

// Contains reports whether port is in the set.
func (s PortSet) Contains(port uint16) bool {
	_, found := slices.BinarySearchFunc(s, port, func(r PortRange, p uint16) int {
		switch {
		case r.Hi < p:
			return -1
		case r.Lo > p:
			return 1
		}
		return 0
	})
	return found
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

// Strings is the set as a port list ParsePorts reads back.
func (s PortSet) Strings() []string {
	out := make([]string, len(s))
	for i, r := range s {
		out[i] = r.String()
	}
	return out
}
