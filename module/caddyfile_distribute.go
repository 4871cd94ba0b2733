package module

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// distParser reads one VIPADISTRIBUTE statement. Destinations are checked
// against the distmethod once the statement is read (the distmethod may
// follow them), each problem at its destip line.
type distParser struct {
	d     *caddyfile.Dispenser
	dist  *Distribute
	vipa  netip.Addr
	seen  map[string]bool
	dests []vipa.Destination
	at    []caddyfile.Token // the destip line of each of dests
	dm    caddyfile.Token   // the distmethod line
	excl  caddyfile.Token   // the exclude line
	optl  caddyfile.Token   // the optlocal line
}

// unmarshalDistribute parses one VIPADISTRIBUTE statement, inline and
// block forms alike:
//
//	vipadistribute [define] <vipa> port <port|lo-hi>...|all destip all|<node-or-address>... {
//		port <port|lo-hi>...|all [{
//			exclude <port|lo-hi>...
//		}]
//		exclude <port|lo-hi>...    (with port all)
//		destip all|<node-or-address>...
//		destip <node-or-address> [weight <1-100>] [preferred] [backup <1-254>]
//		distmethod <name> {
//			autoswitchback on|off
//			healthswitch on|off
//		}
//		timedaffinity <duration>
//		optlocal
//		max_conns <n>
//		slow_start <duration>
//	}
func unmarshalDistribute(d *caddyfile.Dispenser) (*Distribute, error) {
	p := &distParser{d: d, dist: new(Distribute), seen: make(map[string]bool)}
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	if d.Val() == "define" && !d.NextArg() {
		return nil, d.ArgErr()
	}
	v, err := vipa.ParseVIPA(d.Val())
	if err != nil {
		return nil, d.Err(err.Error())
	}
	p.vipa, p.dist.VIPA = v, v.String()

	// Inline form: port <p>... destip <d>... distmethod <m>
	var opt string
	var args []string
	for d.NextArg() {
		switch w := d.Val(); {
		case w == "port" || w == "destip" || w == "distmethod":
			if opt != "" {
				if err := p.option(opt, args); err != nil {
					return nil, err
				}
			}
			opt, args = w, nil
		case opt == "":
			return nil, d.Errf("unknown vipadistribute option '%s'", w)
		default:
			args = append(args, w)
		}
	}
	if opt != "" {
		if err := p.option(opt, args); err != nil {
			return nil, err
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := p.blockOption(); err != nil {
			return nil, err
		}
	}
	return p.finish()
}

// option sets an option of the inline form or one line of the block.
func (p *distParser) option(opt string, args []string) error {
	d, dist := p.d, p.dist
	if opt != "destip" {
		if p.seen[opt] {
			return d.Errf("duplicate vipadistribute option '%s'", opt)
		}
		p.seen[opt] = true
	}
	switch opt {
	case "port":
		if _, _, _, err := vipa.ParsePortSpec(args, nil); err != nil {
			return p.errf(err)
		}
		dist.Ports = args
	case "exclude":
		if _, err := vipa.ParsePorts(args); err != nil {
			return p.errf(fmt.Errorf("exclude: %w", err))
		}
		dist.Exclude, p.excl = args, d.Token()
	case "destip":
		return p.destip(args)
	case "distmethod":
		if len(args) != 1 {
			return d.ArgErr()
		}
		if _, err := vipa.ParseDistmethod(args[0]); err != nil {
			return p.errf(err)
		}
		dist.Distmethod, p.dm = args[0], d.Token()
	case "timedaffinity", "slow_start":
		if len(args) != 1 {
			return d.ArgErr()
		}
		dur, err := caddy.ParseDuration(args[0])
		if err != nil {
			return d.Errf("vipadistribute %s: invalid %s '%s': want a duration such as 30s", p.vipa, opt, args[0])
		}
		if err := vipa.ValidateSpan(opt, dur); err != nil {
			return p.errf(err)
		}
		if opt == "timedaffinity" {
			dist.TimedAffinity = caddy.Duration(dur)
		} else {
			dist.SlowStart = caddy.Duration(dur)
		}
	case "optlocal":
		if len(args) != 0 {
			return d.ArgErr()
		}
		dist.OptLocal, p.optl = true, d.Token()
	case "max_conns":
		if len(args) != 1 {
			return d.ArgErr()
		}
		n, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return d.Errf("vipadistribute %s: invalid max_conns '%s': want a number", p.vipa, args[0])
		}
		if err := vipa.ValidateMaxConns(n); err != nil {
			return p.errf(err)
		}
		dist.MaxConns = n
	default:
		return d.Errf("unknown vipadistribute option '%s'", opt)
	}
	return nil
}

// blockOption reads one line of the statement's block, and the block of
// distmethod if it has one.
func (p *distParser) blockOption() error {
	d := p.d
	opt := d.Val()
	if err := p.option(opt, d.RemainingArgs()); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch {
		case opt == "distmethod":
			err = p.switchOption()
		case opt == "port" && d.Val() == "exclude": // port all { exclude ... }
			err = p.option("exclude", d.RemainingArgs())
		default:
			return d.Errf("vipadistribute option '%s' takes no block", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// switchOption reads one line of distmethod hotstandby's block.
func (p *distParser) switchOption() error {
	d, dist := p.d, p.dist
	opt := d.Val()
	if err := vipa.ValidateSwitches(dist.Distmethod); err != nil {
		return p.errf(err)
	}
	if dist.HotStandby == nil {
		dist.HotStandby = new(HotStandby)
	}
	var field **bool
	switch opt {
	case "autoswitchback":
		field = &dist.HotStandby.AutoSwitchBack
	case "healthswitch":
		field = &dist.HotStandby.HealthSwitch
	default:
		return d.Errf("unknown hotstandby option '%s'", opt)
	}
	if *field != nil {
		return d.Errf("duplicate hotstandby option '%s'", opt)
	}
	if !d.NextArg() {
		return d.ArgErr()
	}
	on, err := vipa.ParseSwitch(opt, d.Val())
	if err != nil {
		return p.errf(err)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	*field = &on
	return nil
}

// destip reads a destip line: a list of nodes or addresses, or one with
// its weight and hotstandby role.
func (p *distParser) destip(args []string) error {
	d := p.d
	if len(args) == 0 {
		return p.errf(errors.New("empty destip list"))
	}
	var dests []vipa.Destination
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "weight", "backup", "preferred":
			if len(dests) != 1 {
				return d.Errf("vipadistribute %s: destip: '%s' follows exactly one node or address", p.vipa, a)
			}
			dst := &dests[0]
			if a == "preferred" {
				if dst.Role != vipa.RoleNone {
					return d.Errf("vipadistribute %s: destip %s: one of preferred or backup", p.vipa, dst.Node)
				}
				dst.Role = vipa.RolePreferred
				continue
			}
			if i++; i == len(args) {
				return d.ArgErr()
			}
			var err error
			if a == "weight" {
				if dst.Weight != 0 {
					return d.Errf("vipadistribute %s: destip %s: duplicate weight", p.vipa, dst.Node)
				}
				dst.Weight, err = vipa.ParseWeight(args[i])
			} else {
				if dst.Role != vipa.RoleNone {
					return d.Errf("vipadistribute %s: destip %s: one of preferred or backup", p.vipa, dst.Node)
				}
				dst.Role = vipa.RoleBackup
				dst.Rank, err = vipa.ParseRank(args[i])
			}
			if err != nil {
				return d.Errf("vipadistribute %s: destip %s: %v", p.vipa, dst.Node, err)
			}
		default:
			if len(dests) == 1 && dests[0] != (vipa.Destination{Node: dests[0].Node}) {
				return d.Errf("vipadistribute %s: destip: '%s' after options: a destination with options has a line of its own", p.vipa, a)
			}
			dests = append(dests, vipa.Destination{Node: a})
		}
	}
	for _, dst := range dests {
		if err := dst.Validate(); err != nil {
			return p.errf(err)
		}
		p.dests = append(p.dests, dst)
		p.at = append(p.at, d.Token())
	}
	return nil
}

// finish checks the statement as a whole and splits its destinations: one
// with options is a destinations entry; destip lists every node in the
// order written unless each has options.
func (p *distParser) finish() (*Distribute, error) {
	d, dist := p.d, p.dist
	if !p.seen["port"] {
		return nil, p.errf(errors.New("missing port"))
	}
	if len(p.dests) == 0 {
		return nil, p.errf(errors.New("missing destip"))
	}
	if p.excl.Text != "" && !(len(dist.Ports) == 1 && dist.Ports[0] == vipa.PortAll) {
		return nil, errAt(p.excl, "vipadistribute %s: exclude needs port all", p.vipa)
	}
	method, _ := vipa.ParseDistmethod(dist.Distmethod)
	if err := vipa.ValidateDestinations(method, p.dests); err != nil {
		var de *vipa.DestinationError
		switch {
		case errors.As(err, &de):
			return nil, errAt(p.at[de.Index], "vipadistribute %s: %v", p.vipa, err)
		case p.dm.Text != "":
			return nil, errAt(p.dm, "vipadistribute %s: %v", p.vipa, err)
		}
		return nil, p.errf(err)
	}
	if dist.OptLocal {
		if err := vipa.ValidateOptLocal(method); err != nil {
			return nil, errAt(p.optl, "vipadistribute %s: %v", p.vipa, err)
		}
	}
	bare := 0
	for _, dst := range p.dests {
		if dst == (vipa.Destination{Node: dst.Node}) {
			bare++
		} else {
			dist.Destinations = append(dist.Destinations, dst)
		}
	}
	if bare > 0 {
		// Every node in destip, in the order written (/vipa/definitions
		// shows it so), not the bare ones first.
		for _, dst := range p.dests {
			dist.DestIP = append(dist.DestIP, dst.Node)
		}
	}
	// The whole statement as provision checks it: what the tables can run.
	if _, err := dist.definition(""); err != nil {
		return nil, d.Err(err.Error())
	}
	return dist, nil
}

// errf is an error of the statement at the current line.
func (p *distParser) errf(err error) error {
	return p.d.Errf("vipadistribute %s: %v", p.vipa, err)
}

// errAt is an error at an earlier line of the Caddyfile.
func errAt(tok caddyfile.Token, format string, args ...any) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.Errf(format, args...)
}
