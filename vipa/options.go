package vipa

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Options are a definition's distribution options beyond its distmethod:
// what its routing node routes by, and what a backup that takes the VIPA
// over must route by too. The zero Options is every option's default.
type Options struct {
	// Destinations give weights and hotstandby roles to the nodes (or
	// addresses) of DestIP they name; a node not listed weighs 1. Empty
	// when every destination is plain (weight 1, no role).
	Destinations []Destination

	TimedAffinity time.Duration // 0: off
	OptLocal      bool          // prefer the routing node's own target
	MaxConns      int64         // per target; 0: unlimited
	SlowStart     time.Duration // 0: off

	// NoAutoSwitchBack and NoHealthSwitch turn hotstandby's
	// autoswitchback and healthswitch off (both default on).
	NoAutoSwitchBack bool
	NoHealthSwitch   bool
}

// IsZero reports whether every option has its default: the definition
// routes by its distmethod and destip list alone.
func (o *Options) IsZero() bool {
	return len(o.Destinations) == 0 && o.TimedAffinity == 0 && !o.OptLocal && o.MaxConns == 0 &&
		o.SlowStart == 0 && !o.NoAutoSwitchBack && !o.NoHealthSwitch
}

// Equal reports whether o and p are the same options.
func (o *Options) Equal(p *Options) bool {
	return slices.Equal(o.Destinations, p.Destinations) && o.TimedAffinity == p.TimedAffinity &&
		o.OptLocal == p.OptLocal && o.MaxConns == p.MaxConns && o.SlowStart == p.SlowStart &&
		o.NoAutoSwitchBack == p.NoAutoSwitchBack && o.NoHealthSwitch == p.NoHealthSwitch
}

// Clone copies o deep.
func (o Options) Clone() Options {
	o.Destinations = slices.Clone(o.Destinations)
	return o
}

// Canonical returns o in the one form that names its meaning: weights
// written out (0 is 1), and no destinations when none carries more than
// weight 1 (DestIP says as much).
func (o Options) Canonical() Options {
	o.Destinations = slices.Clone(o.Destinations)
	plain := true
	for i := range o.Destinations {
		if o.Destinations[i].Weight == 0 {
			o.Destinations[i].Weight = 1
		}
		if d := o.Destinations[i]; d.Weight != 1 || d.Role != RoleNone {
			plain = false
		}
	}
	if plain {
		o.Destinations = nil
	}
	return o
}

// check checks the options against the definition's distmethod and
// destip list: each destination valid and in destip, hotstandby's roles
// whole, limits and spans not negative, the switches only on hotstandby.
func (o *Options) check(method string, destIP []string) error {
	all := slices.Clone(o.Destinations)
	for _, d := range o.Destinations {
		if !slices.Contains(destIP, d.Node) {
			return fmt.Errorf("destination %s is not in destip", d.Node)
		}
	}
	for _, n := range destIP {
		if !slices.ContainsFunc(all, func(d Destination) bool { return d.Node == n }) {
			all = append(all, Destination{Node: n})
		}
	}
	if err := ValidateDestinations(method, all); err != nil {
		return err
	}
	if o.MaxConns < 0 || o.TimedAffinity < 0 || o.SlowStart < 0 {
		return errors.New("negative max_conns, timedaffinity or slow_start")
	}
	if o.NoAutoSwitchBack || o.NoHealthSwitch {
		return ValidateSwitches(method)
	}
	return nil
}
