// Package module is the Caddy side of caddy-vipa: the vipadynamic app, the
// layer4 distribute handler, the admin API and the listener watch wiring.
package module

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/fleet"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the VIPADYNAMIC block: this node's identity in the fleet, its gossip
// settings, how it finds its application listeners, and the VIPADISTRIBUTE
// definitions it routes. The node whose config defines a VIPA is that VIPA's
// routing node; every node may be a target.
type App struct {
	// Node is this node's serf name. Default: the host name.
	Node string `json:"node,omitempty"`

	// Advertise is the address other nodes dial to reach this host's
	// applications. Default: the gossip bind address.
	Advertise string `json:"advertise,omitempty"`

	// Gossip configures the serf agent. Default: bind 127.0.0.1:7946.
	Gossip *Gossip `json:"gossip,omitempty"`

	// Listeners says how this node finds its application listeners: "auto"
	// (default) reads the kernel's socket table (on systems without one it
	// probes), "probe" connects to the advertise address on every
	// distributed port, "off" reports nothing.
	Listeners string `json:"listeners,omitempty"`

	// ListenersInterval is how often the socket table is read (default
	// 100ms) or the ports are probed (default 1s).
	ListenersInterval caddy.Duration `json:"listeners_interval,omitempty"`

	// Weight is the weight this node reports for itself as a target, used
	// by distmethod targetweight: "auto" (default) follows the host's spare
	// CPU capacity, a number 1-100 fixes it.
	Weight SelfWeight `json:"weight,omitempty"`

	// Distribute holds the VIPADISTRIBUTE definitions this node routes.
	Distribute []*Distribute `json:"distribute,omitempty"`

	// Backups holds the VIPABACKUP statements: VIPAs other nodes define
	// that this node takes over when their routing node is gone.
	Backups []*Backup `json:"backups,omitempty"`

	// VIPAInterface is the network interface on which this node adds the
	// VIPAs it owns (and removes them when it gives them up), announcing
	// each move. Default: none; the VIPAs' addresses are the user's.
	VIPAInterface string `json:"vipa_interface,omitempty"`

	// VIPAInterfaceAt is where vipa_interface was written (file:line), set
	// by the Caddyfile adapter: whether the host has the interface is
	// known only at provision, and the refusal then names the line.
	VIPAInterfaceAt string `json:"vipa_interface_at,omitempty"`

	fleet     *fleet.Fleet
	fleetKey  string
	agentCfg  serfsync.Config
	defs      []*vipa.Definition
	backups   []*vipa.Backup
	addrs     vipaAddresses
	advertise netip.Addr
	shadows   *shadows
	dyn       *dynPorts
	ctx       caddy.Context
	logger    *zap.Logger
}

// Gossip is the serf agent's configuration.
type Gossip struct {
	// Bind is the gossip address (host:port), UDP and TCP.
	Bind string `json:"bind,omitempty"`

	// Join lists gossip addresses of fleet members to join at start.
	Join []string `json:"join,omitempty"`

	// KeyringFile is a serf keyring file: a JSON array of base64 keys, the
	// first one primary.
	KeyringFile string `json:"keyring_file,omitempty"`

	// EncryptKey is a base64 16, 24 or 32-byte gossip key.
	EncryptKey string `json:"encrypt_key,omitempty"`

	// Label separates fleets sharing a network. Default: "caddy-vipa".
	Label string `json:"label,omitempty"`

	// Profile is the serf timing profile: lan (default), fast or wan.
	Profile string `json:"profile,omitempty"`

	// Insecure allows gossip in clear text on a non-loopback bind address.
	Insecure bool `json:"insecure,omitempty"`

	// RemoteKeys lets fleet members install, use and remove gossip keys on
	// this node with serf's key-management queries. Off (default), the
	// configured keys are kept: such changes are undone, logged and counted.
	RemoteKeys bool `json:"remote_keys,omitempty"`
}

// Distribute is one VIPADISTRIBUTE statement.
type Distribute struct {
	// VIPA is the distributed virtual IP address.
	VIPA string `json:"vipa"`

	// Ports lists the routable ports and ranges, e.g. "8080", "9000-9009";
	// ["all"] distributes every port on which a candidate target has an
	// application listening: this node opens those VIPA ports itself.
	Ports []string `json:"ports"`

	// Exclude lists ports and ranges that ports ["all"] never distributes.
	Exclude []string `json:"exclude,omitempty"`

	// DestIP lists the candidate target nodes by serf name or advertise
	// address; ["all"] makes every fleet node a candidate.
	DestIP []string `json:"destip,omitempty"`

	// Distmethod picks a target for each new connection: roundrobin
	// (default), weightedactive, leastconn, hotstandby, sourcehash or
	// targetweight.
	Distmethod string `json:"distmethod,omitempty"`

	// Destinations are destip lines with a weight (1-100, default 1) and,
	// under hotstandby, a role (preferred, backup) and a backup's rank
	// (1-254, higher first). Their nodes join DestIP.
	Destinations []vipa.Destination `json:"destinations,omitempty"`

	// TimedAffinity keeps a client IP on its target while it has
	// connections and this long after its last one closed. Default: off.
	TimedAffinity caddy.Duration `json:"timed_affinity,omitempty"`

	// OptLocal prefers this routing node's own target while it is ready,
	// healthy and has room.
	OptLocal bool `json:"optlocal,omitempty"`

	// MaxConns bounds each target's active connections; a full target is
	// skipped, and with all full a client is closed at once. Default:
	// unlimited.
	MaxConns int64 `json:"max_conns,omitempty"`

	// SlowStart ramps a new or recovered target's weight linearly from 10%
	// to 100% over this long. Default: off.
	SlowStart caddy.Duration `json:"slow_start,omitempty"`

	// HotStandby tunes distmethod hotstandby.
	HotStandby *HotStandby `json:"hotstandby,omitempty"`
}

// HotStandby tunes distmethod hotstandby.
type HotStandby struct {
	// AutoSwitchBack returns connections to the preferred destination as
	// soon as it can take them again; off, the backup in use keeps them
	// while it can. Default: on.
	AutoSwitchBack *bool `json:"autoswitchback,omitempty"`

	// HealthSwitch leaves a destination that turned unhealthy; off, only
	// one that stopped listening, was quiesced or is full is left.
	// Default: on.
	HealthSwitch *bool `json:"healthswitch,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "vipadynamic",
		New: func() caddy.Module { return new(App) },
	}
}

// fleets holds the state that outlives a config, keyed by gossip bind
// address: a reload that keeps the gossip settings keeps the serf agent, the
// DPT and the CRT, so established connections stay routed and visible.
var fleets = caddy.NewUsagePool()

// dynamics holds each fleet's port all listeners, by the same key: a reload
// keeps them open.
var dynamics = caddy.NewUsagePool()

const (
	defaultGossipBind        = "127.0.0.1:7946"
	defaultListenersInterval = 100 * time.Millisecond
)

// Provision sets defaults, parses the definitions and takes the pooled
// fleet state; it binds nothing (caddy validate provisions too).
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()
	if a.Node == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		a.Node = host
	}
	if a.Gossip == nil {
		a.Gossip = new(Gossip)
	}
	if a.Gossip.Bind == "" {
		a.Gossip.Bind = defaultGossipBind
	}
	if a.Gossip.Label == "" {
		a.Gossip.Label = vipa.DefaultLabel
	}
	if a.Listeners == "" {
		a.Listeners = vipa.ListenersAuto
	}
	if a.ListenersInterval <= 0 {
		a.ListenersInterval = caddy.Duration(defaultListenersInterval)
	}
	cfg, err := a.buildAgentConfig()
	if err != nil {
		return err
	}
	a.agentCfg = cfg
	a.advertise = cfg.Advertise
	defs, err := a.buildDefinitions()
	if err != nil {
		return err
	}
	a.defs = defs
	if a.backups, err = a.buildBackups(defs); err != nil {
		return err
	}
	if err := a.checkInterface(); err != nil {
		return err
	}
	if a.addrs, err = newVIPAAddresses(a.VIPAInterface, a.logger); err != nil {
		return err
	}
	a.shadows = newShadows(vipasOf(defs))

	a.fleetKey = cfg.BindAddr.String()
	val, _, err := fleets.LoadOrNew(a.fleetKey, func() (caddy.Destructor, error) {
		return fleet.New(), nil
	})
	if err != nil {
		return err
	}
	a.fleet = val.(*fleet.Fleet)
	val, _, err = dynamics.LoadOrNew(a.fleetKey, func() (caddy.Destructor, error) {
		return newDynPorts(a.fleet), nil
	})
	if err != nil {
		return err
	}
	a.dyn = val.(*dynPorts)
	if err := ctx.GetMetricsRegistry().Register(collector{a.fleet}); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if err := ctx.GetMetricsRegistry().Register(vipadynCollector{a.fleet}); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	return nil
}

// buildAgentConfig turns the node and gossip settings into an agent config,
// checked by vipa's rules as the Caddyfile is.
func (a *App) buildAgentConfig() (serfsync.Config, error) {
	bind, err := vipa.ResolveBind(a.ctx, a.Gossip.Bind)
	if err != nil {
		return serfsync.Config{}, err
	}
	adv, err := vipa.AdvertiseFor(bind, a.Advertise)
	if err != nil {
		return serfsync.Config{}, err
	}
	keys, err := a.Gossip.keys()
	if err != nil {
		return serfsync.Config{}, err
	}
	cfg := serfsync.Config{
		NodeName:   a.Node,
		BindAddr:   bind,
		Advertise:  adv,
		Join:       a.Gossip.Join,
		Keys:       keys,
		Label:      a.Gossip.Label,
		Insecure:   a.Gossip.Insecure,
		RemoteKeys: a.Gossip.RemoteKeys,
		Profile:    a.Gossip.Profile,

		SnapshotPath: snapshotPath(a.Node, bind),

		JoinWhenConfigured: true, // Start configures the fleet right after
	}
	return cfg, cfg.Validate()
}

// keys reads the gossip keys from the keyring file or the key, if any.
func (g *Gossip) keys() ([][]byte, error) {
	if err := vipa.KeySource(g.KeyringFile, g.EncryptKey); err != nil {
		return nil, err
	}
	switch {
	case g.KeyringFile != "":
		return vipa.LoadKeyring(g.KeyringFile)
	case g.EncryptKey != "":
		k, err := vipa.DecodeKey(g.EncryptKey)
		return [][]byte{k}, err
	}
	return nil, nil
}

// snapshotPath is where the agent records the fleet's members across
// restarts: one file per node and gossip port in Caddy's data directory,
// e.g. ~/.local/share/caddy/vipa/caddy-a-7946.snapshot.
func snapshotPath(node string, bind netip.AddrPort) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, node)
	return filepath.Join(caddy.AppDataDir(), "vipa", fmt.Sprintf("%s-%d.snapshot", safe, bind.Port()))
}

// buildDefinitions parses the VIPADISTRIBUTE statements.
func (a *App) buildDefinitions() ([]*vipa.Definition, error) {
	if len(a.Distribute) > vipa.MaxDefinitions {
		return nil, fmt.Errorf("%d vipadistribute statements: at most %d", len(a.Distribute), vipa.MaxDefinitions)
	}
	seen := make(map[netip.Addr]bool)
	var defs []*vipa.Definition
	for _, d := range a.Distribute {
		def, err := d.definition(a.Node)
		if err != nil {
			return nil, err
		}
		if seen[def.VIPA] {
			return nil, fmt.Errorf("vipadistribute %s: VIPA defined twice", def.VIPA)
		}
		seen[def.VIPA] = true
		defs = append(defs, def)
	}
	return defs, nil
}

// Validate checks what Provision did not.
func (a *App) Validate() error {
	if _, err := vipa.ParseListeners(a.Listeners); err != nil {
		return err
	}
	if a.Weight != 0 {
		return vipa.ValidateWeight(int(a.Weight))
	}
	return nil
}

// Start binds the gossip address (once per fleet, kept across reloads),
// starts the listener watch and installs this config's definitions.
func (a *App) Start() error {
	if err := a.fleet.Start(a.agentCfg, a.logger); err != nil {
		return err
	}
	// The ports this process listens on now (its admin endpoint, its
	// gossip) are never a port all port.
	reserved := ownListenPorts(vipaSet(a.defs))
	if p := a.agentCfg.BindAddr.Port(); !slices.Contains(reserved, p) {
		reserved = append(reserved, p)
	}
	a.fleet.Configure(fleet.Config{
		Node:      a.Node,
		Advertise: a.advertise,
		Defs:      a.defs,
		Listeners: a.Listeners,
		Interval:  time.Duration(a.ListenersInterval),
		Weight:    int(a.Weight),
		Backups:   a.backups,
		Addresses: a.addrs,
		Reserved:  reserved,
	})
	a.dyn.configure(a.defs, reserved, a.dynHandler(), a.logger)
	markRunning(a)
	a.shadows.start(a.ctx, &a.fleet.Counters, a.logger)
	a.logger.Info("vipadynamic started",
		zap.String("node", a.Node),
		zap.Stringer("advertise", a.advertise),
		zap.String("gossip", a.fleetKey),
		zap.Int("definitions", len(a.defs)))
	return nil
}

// Stop ends this config's shadow accept loops; the fleet state outlives a
// config, and Cleanup releases it when no config uses it any more.
func (a *App) Stop() error {
	a.shadows.stop()
	return nil
}

// Cleanup releases this config's hold on the pooled fleet state; the last
// holder leaves the fleet and stops the listener watch.
func (a *App) Cleanup() error {
	if a.fleet == nil {
		return nil
	}
	markStopped(a)
	a.shadows.stop()
	if a.dyn != nil {
		if _, err := dynamics.Delete(a.fleetKey); err != nil {
			return err
		}
	}
	_, err := fleets.Delete(a.fleetKey)
	return err
}

// dynHandler is the distribute handler of the port all listeners: the
// handler's defaults, the VIPA the client connected to.
func (a *App) dynHandler() *Handler {
	return &Handler{
		DialTimeout: caddy.Duration(defaultDialTimeout),
		MaxAttempts: defaultMaxAttempts,
		fleet:       a.fleet,
		logger:      a.logger.Named("distribute"),
	}
}

// vipaSet is the VIPAs of defs.
func vipaSet(defs []*vipa.Definition) map[netip.Addr]bool {
	out := make(map[netip.Addr]bool, len(defs))
	for _, d := range defs {
		out[d.VIPA] = true
	}
	return out
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
