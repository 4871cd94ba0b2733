package module

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Backup is one VIPABACKUP statement: this node takes the VIPA over when
// its routing node is gone, ahead of backups of lower rank.
type Backup struct {
	// VIPA is the distributed virtual IP address another node defines.
	VIPA string `json:"vipa"`

	// Rank orders the backups of one VIPA, 1-254: the alive backup with the
	// highest rank takes over; ties go to the lower node name.
	Rank int `json:"rank"`

	// Takeback is how this node gives the VIPA back when its routing node
	// returns: "when_idle" (default) once this node routes no connection
	// on it (or after MaxWait), "immediate" at once.
	Takeback string `json:"takeback,omitempty"`

	// MaxWait bounds a when_idle takeback. Default: 10m.
	MaxWait caddy.Duration `json:"max_wait,omitempty"`
}

// backup checks the statement by vipa's rules and returns it with its
// defaults.
func (b *Backup) backup() (*vipa.Backup, error) {
	v, err := vipa.ParseVIPA(b.VIPA)
	if err != nil {
		return nil, fmt.Errorf("vipabackup: %w", err)
	}
	out := &vipa.Backup{VIPA: v, Rank: b.Rank, Takeback: b.Takeback, MaxWait: time.Duration(b.MaxWait)}
	if err := out.Validate(); err != nil {
		return nil, err
	}
	out.Takeback, _ = vipa.ParseTakeback(out.Takeback)
	if out.MaxWait == 0 && out.Takeback == vipa.TakebackWhenIdle {
		out.MaxWait = vipa.DefaultMaxWait
	}
	return out, nil
}

// buildBackups checks the VIPABACKUP statements against each other and the
// VIPAs this node defines.
func (a *App) buildBackups(defs []*vipa.Definition) ([]*vipa.Backup, error) {
	var out []*vipa.Backup
	for _, b := range a.Backups {
		vb, err := b.backup()
		if err != nil {
			return nil, err
		}
		out = append(out, vb)
	}
	defined := make([]netip.Addr, 0, len(defs))
	for _, d := range defs {
		defined = append(defined, d.VIPA)
	}
	return out, vipa.ValidateBackups(out, defined)
}

// checkInterface checks that vipa_interface names an interface of this
// host.
func (a *App) checkInterface() error {
	if a.VIPAInterface == "" {
		return nil
	}
	if err := vipa.ValidateInterfaceName(a.VIPAInterface); err != nil {
		return err
	}
	if _, err := net.InterfaceByName(a.VIPAInterface); err != nil {
		var names []string
		if ifs, lerr := net.Interfaces(); lerr == nil {
			for _, i := range ifs {
				names = append(names, i.Name)
			}
		}
		err = fmt.Errorf("vipa_interface %s: no such interface on this host (it has %s): %w", a.VIPAInterface, strings.Join(names, ", "), err)
		if a.VIPAInterfaceAt != "" {
			err = fmt.Errorf("%s: %w", a.VIPAInterfaceAt, err)
		}
		return err
	}
	return nil
}

// unmarshalBackup parses one VIPABACKUP statement:
//
//	vipabackup <vipa> rank <1-254> {
//		takeback when_idle|immediate
//		max_wait <duration>
//	}
//
// backed lists the VIPAs backed up so far, defined those this block
// defines so far; vipadistribute checks the other order.
func unmarshalBackup(d *caddyfile.Dispenser, backed map[netip.Addr]bool, defined []netip.Addr) (*Backup, error) {
	args := d.RemainingArgs()
	if len(args) != 3 || args[1] != "rank" {
		return nil, d.Errf("vipabackup: want <vipa> rank <1-254>")
	}
	v, err := vipa.ParseVIPA(args[0])
	if err != nil {
		return nil, d.Errf("vipabackup: %v", err)
	}
	b := &Backup{VIPA: v.String()}
	if b.Rank, err = strconv.Atoi(args[2]); err != nil {
		return nil, d.Errf("vipabackup %s: rank %q: want a number 1-254", v, args[2])
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("duplicate vipabackup option '%s'", opt)
		}
		seen[opt] = true
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		switch opt {
		case "takeback":
			if _, err := vipa.ParseTakeback(val); err != nil || val == "" {
				return nil, d.Errf("vipabackup %s: takeback %q: want when_idle or immediate", v, val)
			}
			b.Takeback = val
		case "max_wait":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("vipabackup %s: invalid max_wait '%s'", v, val)
			}
			b.MaxWait = caddy.Duration(dur)
		default:
			return nil, d.Errf("unknown vipabackup option '%s'", opt)
		}
	}
	if _, err := b.backup(); err != nil {
		return nil, d.Err(err.Error())
	}
	if err := vipa.BackupConflict(v, backed, defined); err != nil {
		return nil, d.Err(err.Error())
	}
	return b, nil
}

// unmarshalInterface parses vipa_interface <name>.
func unmarshalInterface(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	name := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	if err := vipa.ValidateInterfaceName(name); err != nil {
		return "", d.Err(err.Error())
	}
	return name, nil
}
