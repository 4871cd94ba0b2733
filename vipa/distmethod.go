package vipa

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
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

// ValidateMaxConns checks a per-target connection limit as a config
// writes it; unlimited is the default, written by leaving it out.
func ValidateMaxConns(n int64) error {
	if n < 1 {
		return fmt.Errorf("max_conns %d: want 1 or more (leave it out for unlimited)", n)
	}
	return nil
}

// ValidateSpan checks the duration of timedaffinity or slow_start as a
// config writes it; off is the default, written by leaving it out.
func ValidateSpan(option string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s %v: want a positive duration (leave it out for off)", option, d)
	}
	return nil
}

// ValidateOptLocal checks that optlocal is given to a distmethod it can
// change: hotstandby sends every connection to its preferred destination
// (or the backup in use), so a routing node that is a backup would take
// them all while its row showed standby.
func ValidateOptLocal(method string) error {
	if method == HotStandby {
		return errors.New("optlocal does not apply to hotstandby: the preferred destination takes every connection")
	}
	return nil
}

// ValidateSwitches checks that the hotstandby options (autoswitchback,
// healthswitch) are given to distmethod hotstandby.
func ValidateSwitches(method string) error {
	if method != HotStandby {
		return fmt.Errorf("hotstandby options need distmethod hotstandby, not %s", method)
	}
	return nil
}

// ParseSwitch reads a hotstandby option's on or off.
func ParseSwitch(option, s string) (bool, error) {
	switch s {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, fmt.Errorf("%s %q: want on or off", option, s)
}
