package vipa

import (
	"fmt"
	"slices"
	"strings"
)

// Distmethod names: how a routing node picks a target for each new
// connection (claim 12).
const (
	RoundRobin     = "roundrobin"
	WeightedActive = "weightedactive"
	LeastConn      = "leastconn"
	HotStandby     = "hotstandby"
	SourceHash     = "sourcehash"
	TargetWeight   = "targetweight"
)

// DefaultDistmethod is the distmethod of a definition that names none.
const DefaultDistmethod = RoundRobin

// Distmethods lists every distmethod name, the default first.
var Distmethods = []string{RoundRobin, WeightedActive, LeastConn, HotStandby, SourceHash, TargetWeight}

// ParseDistmethod checks a distmethod name; "" is the default.
func ParseDistmethod(name string) (string, error) {
	if name == "" {
		return DefaultDistmethod, nil
	}
	if !slices.Contains(Distmethods, name) {
		return "", fmt.Errorf("unknown distmethod %q: want %s", name, strings.Join(Distmethods, ", "))
	}
	return name, nil
}
