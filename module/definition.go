package module

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// definition checks a VIPADISTRIBUTE statement by vipa's rules (those of
// the fleet's wire included) and returns it as the fleet knows it, with
// routingNode as its routing node (empty while not known). The Caddyfile
// and the JSON config both come here, so their errors read the same.
func (d *Distribute) definition(routingNode string) (*vipa.Definition, error) {
	def, err := d.check(routingNode)
	if err != nil {
		return nil, fmt.Errorf("vipadistribute %s: %w", d.VIPA, err)
	}
	return def, nil
}

func (d *Distribute) check(routingNode string) (*vipa.Definition, error) {
	destIP, err := d.destIP()
	if err != nil {
		return nil, err
	}
	def, err := vipa.NewDefinition(d.VIPA, d.Ports, d.Exclude, destIP, d.Distmethod, routingNode)
	if err != nil {
		return nil, err
	}
	if err := d.checkOptions(def.Distmethod); err != nil {
		return nil, err
	}
	def.Options = d.options().Canonical()
	return def, def.CheckOptions()
}

// options are the distribution options as the definition carries them to
// the fleet.
func (d *Distribute) options() vipa.Options {
	o := vipa.Options{
		Destinations:  d.Destinations,
		TimedAffinity: time.Duration(d.TimedAffinity),
		OptLocal:      d.OptLocal,
		MaxConns:      d.MaxConns,
		SlowStart:     time.Duration(d.SlowStart),
	}
	if hs := d.HotStandby; hs != nil {
		o.NoAutoSwitchBack = hs.AutoSwitchBack != nil && !*hs.AutoSwitchBack
		o.NoHealthSwitch = hs.HealthSwitch != nil && !*hs.HealthSwitch
	}
	return o
}

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
	if d.OptLocal {
		if err := vipa.ValidateOptLocal(method); err != nil {
			return err
		}
	}
	if d.MaxConns != 0 { // 0: unlimited
		if err := vipa.ValidateMaxConns(d.MaxConns); err != nil {
			return err
		}
	}
	if d.TimedAffinity != 0 { // 0: off
		if err := vipa.ValidateSpan("timed_affinity", time.Duration(d.TimedAffinity)); err != nil {
			return err
		}
	}
	if d.SlowStart != 0 {
		if err := vipa.ValidateSpan("slow_start", time.Duration(d.SlowStart)); err != nil {
			return err
		}
	}
	if d.HotStandby != nil {
		return vipa.ValidateSwitches(method)
	}
	return nil
}
