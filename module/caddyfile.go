package module

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// UnmarshalCaddyfile sets up the app from the VIPADYNAMIC block. Syntax:
//
//	vipadynamic {
//		node <name>
//		advertise <ip>
//		gossip <host:port> {
//			join <host:port>...
//			keyring_file <path>
//			encrypt_key <base64>
//			label <label>
//			profile lan|fast|wan
//			insecure
//			remote_keys
//		}
//		listeners auto|probe|off {
//			interval <duration>
//		}
//		vipa_interface <name>
//		vipabackup <vipa> rank <1-254> {
//			takeback when_idle|immediate
//			max_wait <duration>
//		}
//		weight auto|<1-100>
//		vipadistribute [define] <vipa> port <port|lo-hi>...|all destip all|<node-or-address>... {
//			...    (see unmarshalDistribute)
//		}
//	}
//
// Every value is checked by package vipa's rules, as the JSON config is at
// provision, and a keyring file found here is read: an error names the file
// and line.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	vipas := make(map[netip.Addr]bool)
	backed := make(map[netip.Addr]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "vipadistribute" && opt != "vipabackup" {
			if seen[opt] {
				return d.Errf("duplicate vipadynamic option '%s'", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "node":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if err := vipa.ValidateNodeName(d.Val()); err != nil {
				return d.Err(err.Error())
			}
			a.Node = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "advertise":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if _, err := vipa.ParseAdvertise(d.Val()); err != nil {
				return d.Err(err.Error())
			}
			a.Advertise = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "gossip":
			g, err := unmarshalGossip(d)
			if err != nil {
				return err
			}
			a.Gossip = g
		case "listeners":
			if err := a.unmarshalListeners(d); err != nil {
				return err
			}
		case "weight":
			if err := a.unmarshalWeight(d); err != nil {
				return err
			}
		case "vipadistribute":
			dist, err := unmarshalDistribute(d)
			if err != nil {
				return err
			}
			v, _ := netip.ParseAddr(dist.VIPA)
			if vipas[v] {
				return d.Errf("VIPA %s is already defined by another vipadistribute statement", v)
			}
			if backed[v] {
				return d.Errf("vipadistribute %s: this node backs the VIPA up (vipabackup); a routing node cannot back up its own VIPA", v)
			}
			vipas[v] = true
			a.Distribute = append(a.Distribute, dist)
		case "vipabackup":
			b, err := unmarshalBackup(d, backed, slices.Collect(maps.Keys(vipas)))
			if err != nil {
				return err
			}
			v, _ := netip.ParseAddr(b.VIPA)
			backed[v] = true
			a.Backups = append(a.Backups, b)
		case "vipa_interface":
			at := fmt.Sprintf("%s:%d", d.File(), d.Line())
			name, err := unmarshalInterface(d)
			if err != nil {
				return err
			}
			a.VIPAInterface, a.VIPAInterfaceAt = name, at
		default:
			return d.Errf("unknown vipadynamic option '%s'", opt)
		}
	}
	if len(a.Backups) > vipa.MaxBackups {
		return d.Errf("%d vipabackup statements: at most %d", len(a.Backups), vipa.MaxBackups)
	}
	if len(a.Distribute) > vipa.MaxDefinitions {
		return d.Errf("%d vipadistribute statements: at most %d", len(a.Distribute), vipa.MaxDefinitions)
	}
	if a.Gossip != nil && a.Advertise == "" {
		if bind, err := netip.ParseAddrPort(a.Gossip.Bind); err == nil { // a name is resolved at start
			if _, err := vipa.AdvertiseFor(bind, ""); err != nil {
				return d.Err(err.Error())
			}
		}
	}
	return nil
}

func unmarshalGossip(d *caddyfile.Dispenser) (*Gossip, error) {
	g := new(Gossip)
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	if err := vipa.ValidateBind(d.Val()); err != nil {
		return nil, d.Errf("invalid %v", err)
	}
	g.Bind = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] && opt != "join" {
			return nil, d.Errf("duplicate gossip option '%s'", opt)
		}
		seen[opt] = true
		switch opt {
		case "join":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, j := range args {
				if err := vipa.ValidateJoin(j); err != nil {
					return nil, d.Errf("invalid %v", err)
				}
			}
			g.Join = append(g.Join, args...)
		case "keyring_file", "encrypt_key", "label", "profile":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			val := d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if opt == "keyring_file" || opt == "encrypt_key" {
				kf, ek := g.KeyringFile, g.EncryptKey
				if opt == "keyring_file" {
					kf = val
				} else {
					ek = val
				}
				if err := vipa.KeySource(kf, ek); err != nil {
					return nil, d.Err(err.Error())
				}
			}
			switch opt {
			case "keyring_file":
				g.KeyringFile = val
				// A file that is not here may be on the host the config
				// is for: provision reports it there.
				if _, err := vipa.LoadKeyring(val); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return nil, d.Err(err.Error())
				}
			case "encrypt_key":
				g.EncryptKey = val
				if _, err := vipa.DecodeKey(val); err != nil {
					return nil, d.Errf("encrypt_key: %v", err)
				}
			case "label":
				if err := vipa.ValidateLabel(val); err != nil {
					return nil, d.Errf("gossip %v", err)
				}
				g.Label = val
			case "profile":
				if _, err := vipa.ParseProfile(val); err != nil {
					return nil, d.Err(err.Error())
				}
				g.Profile = val
			}
		case "insecure", "remote_keys":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if opt == "insecure" {
				g.Insecure = true
			} else {
				g.RemoteKeys = true
			}
		default:
			return nil, d.Errf("unknown gossip option '%s'", opt)
		}
	}
	keyed := g.KeyringFile != "" || g.EncryptKey != ""
	if bind, err := netip.ParseAddrPort(g.Bind); err == nil { // a name is checked once resolved, at start
		if err := vipa.ValidateGossip(bind, keyed, g.Insecure); err != nil {
			return nil, d.Err(err.Error())
		}
	}
	return g, nil
}

func (a *App) unmarshalListeners(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	if _, err := vipa.ParseListeners(d.Val()); err != nil || d.Val() == "" {
		return d.Errf("listeners %q: want auto, probe or off", d.Val()) // "" is the default only in JSON
	}
	a.Listeners = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "interval":
			if a.ListenersInterval != 0 {
				return d.Errf("duplicate listeners option 'interval'")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("invalid listeners interval '%s'", d.Val())
			}
			a.ListenersInterval = caddy.Duration(dur)
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown listeners option '%s'", d.Val())
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	distribute [<vipa>] {
//		dial_timeout <duration>
//		max_attempts <n>
//		idle_timeout <duration>
//		proxy_protocol v1|v2
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the handler name
	if d.NextArg() {
		v, err := vipa.ParseVIPA(d.Val())
		if err != nil {
			return d.Errf("distribute: %v", err)
		}
		h.VIPA = v.String()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("duplicate distribute option '%s'", opt)
		}
		seen[opt] = true
		if !d.NextArg() {
			return d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		switch opt {
		case "dial_timeout", "idle_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur < 0 {
				return d.Errf("distribute: invalid %s '%s'", opt, val)
			}
			if opt == "dial_timeout" {
				h.DialTimeout = caddy.Duration(dur)
			} else {
				h.IdleTimeout = caddy.Duration(dur)
			}
		case "proxy_protocol":
			if _, ok := proxyVersions[val]; !ok {
				return d.Errf("distribute: invalid proxy_protocol '%s': want v1 or v2", val)
			}
			h.ProxyProtocol = val
		case "max_attempts":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return d.Errf("distribute: invalid max_attempts '%s': want a number ≥ 1", val)
			}
			h.MaxAttempts = n
		default:
			return d.Errf("unknown distribute option '%s'", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
