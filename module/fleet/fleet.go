// Package fleet is one node's side of the fleet, without Caddy: the serf
// agent, the listener watch and the report it derives, the definitions the
// node follows, and the DPT and CRT it routes with. The vipadynamic app
// pools one Fleet per gossip address, so a reload that keeps the gossip
// settings keeps the agent and the tables.
package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Config is the part of a config the fleet follows on every reload.
type Config struct {
	Node      string
	Advertise netip.Addr
	Defs      []*vipa.Definition // the VIPAs this node routes
	Listeners string             // a vipa listener mode
	Interval  time.Duration      // of the listener watch
	Weight    int                // this node's own weight for targetweight, 1-100; 0 is auto
	Backups   []*vipa.Backup     // the VIPAs this node takes over
	Addresses Addresses          // adds and removes owned VIPAs; nil: the user's
	Reserved  []uint16           // this node's own listening ports: never a port all port
}

// Route is what the handler needs for one VIPA this node routes; its
// distribution policy lives in the DPT's groups.
type Route struct {
	Def *vipa.Definition
}

// Counters are the handler's event counts: atomics on the connection path,
// read when metrics are scraped.
type Counters struct {
	NoDefinition atomic.Uint64
	NoTarget     atomic.Uint64
	NoAnswer     atomic.Uint64
	MaxConns     atomic.Uint64 // every target full
	Unhealthy    atomic.Uint64 // no healthy target, the unhealthy ones tried failed
	DialFailures atomic.Uint64
	HealthDown   atomic.Uint64 // rows turned unhealthy by this node's dials or probes
	HealthUp     atomic.Uint64 // rows turned healthy again by them
	// Rows of a VIPA this node stands by for whose health changed with
	// the state its routing node shares (carry.go): the rows a takeover
	// here routes with, counted apart so fleet-wide sums count each
	// finding once.
	HealthDownCarried atomic.Uint64
	HealthUpCarried   atomic.Uint64

	// The VIPA listeners' shadow accept loops: clients closed for want of
	// a descriptor, and failed accepts by kind.
	NoDescriptors       atomic.Uint64
	AcceptNoDescriptors atomic.Uint64
	AcceptOther         atomic.Uint64

	// Port all: the VIPA ports open, and the ports a target reports that
	// stay closed, over the limit or failing to bind.
	DynamicOpen    atomic.Int64
	DynamicRefused atomic.Uint64
	DynamicFailed  atomic.Uint64
}

// Fleet is one node's pooled state.
type Fleet struct {
	DPT      *tables.DPT
	CRT      *tables.CRT
	Counters Counters

	// routes maps a VIPA this node routes to its route; read on every
	// connection, replaced whole on reload.
	routes atomic.Pointer[map[netip.Addr]*Route]

	// standbys are the VIPAs this node defines or backs up: it holds
	// their DPT while another node routes them.
	standbys atomic.Pointer[map[netip.Addr]bool]

	mu       sync.Mutex
	agentCfg serfsync.Config // what a running agent cannot change without a restart
	agent    *serfsync.Agent
	cfg      Config
	watcher  *listenwatch.Watcher
	watchCfg Config
	snap     listenwatch.Snapshot
	known    []serfsync.KnownDefinition // every definition known in the fleet
	own      []vipa.Listener            // this node's own report
	conns    listenwatch.Conns          // the latest count of established connections; nil before one
	routers  map[netip.Addr]netip.Addr  // routing node's advertise address by VIPA, for the count

	// Quiesce state (quiesce.go): this node's own rules, carried in its
	// report, and the drains it applies as a routing node to the rows of
	// the reports it last got, by node.
	ownQuiesce quiesceRules
	drains     quiesceRules
	reports    map[string][]vipa.Listener

	// carried is what the routing node of each VIPA this node stands by
	// for (and does not route) shared of its drains and rows' health
	// (carry.go).
	carried map[netip.Addr]*carried

	// This node's own weight for targetweight (selfweight.go): fixed, or
	// measured by the sampler while autoWeight.
	weight     int
	autoWeight bool
	sampler    *weightSampler

	dptChanged chan struct{} // a token when the DPT's rows may have changed

	driftMu sync.Mutex
	drift   map[rowKey]*driftState // rows whose target reports a count
	logger  *zap.Logger
	upkeep  *upkeep
	dyn     *dyn
}

// New returns a fleet with empty tables and no agent.
func New() *Fleet {
	f := &Fleet{DPT: tables.NewDPT(), CRT: tables.NewCRT(), logger: zap.NewNop(), dptChanged: make(chan struct{}, 1)}
	empty := map[netip.Addr]*Route{}
	f.routes.Store(&empty)
	f.standbys.Store(&map[netip.Addr]bool{})
	f.dyn = newDyn(f)
	return f
}

// DPTChanged receives a token after the DPT's rows may have changed (a
// report, a member gone, the definitions); tokens do not pile up.
func (f *Fleet) DPTChanged() <-chan struct{} { return f.dptChanged }

func (f *Fleet) notifyDPT() {
	select {
	case f.dptChanged <- struct{}{}:
	default:
	}
}

// Route returns the route of a VIPA this node routes, or nil.
func (f *Fleet) Route(v netip.Addr) *Route { return (*f.routes.Load())[v] }

// StandsBy says whether this node defines or backs up v, and so holds its
// DPT, whoever routes it now.
func (f *Fleet) StandsBy(v netip.Addr) bool { return (*f.standbys.Load())[v] }

// Start starts the serf agent once; a later config must keep its identity.
func (f *Fleet) Start(cfg serfsync.Config, logger *zap.Logger) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agent != nil {
		if !sameAgent(f.agentCfg, cfg) {
			return errors.New("gossip settings changed (node, advertise, key, label, profile, insecure or remote_keys): restart required")
		}
		return nil
	}
	f.logger = logger
	cfg.Logger = logger.Named("gossip")
	agent, err := serfsync.New(cfg)
	if err != nil {
		return err
	}
	agent.OnMemberGone = f.memberGone
	agent.OnDefinitions = f.definitionsChanged
	agent.OnReport = f.reportArrived
	agent.OwnerState = f.ownerState
	agent.OnOwnerState = f.ownerStateArrived
	if err := agent.Start(); err != nil {
		return fmt.Errorf("gossip %s: %w", cfg.BindAddr, err)
	}
	f.agent, f.agentCfg = agent, cfg
	f.upkeep = startUpkeep(f)
	f.dyn.start(agent, cfg.Profile)
	return nil
}

func sameAgent(a, b serfsync.Config) bool {
	return a.NodeName == b.NodeName && a.BindAddr == b.BindAddr &&
		a.Advertise == b.Advertise && a.Label == b.Label &&
		a.Profile == b.Profile && a.Insecure == b.Insecure && a.RemoteKeys == b.RemoteKeys &&
		slices.EqualFunc(a.Keys, b.Keys, bytes.Equal)
}

// Configure installs a config's definitions, backups and listener watch
// settings. A VIPA is routed once the ownership rule gives it to this node
// (at once, for a VIPA no other node holds).
func (f *Fleet) Configure(c Config) {
	f.dyn.configure(c.Node, c.Defs, c.Backups, c.Addresses)
	f.mu.Lock()
	// Policies go in before the routes that use them; the groups keep
	// their rotation and health across the change.
	for _, d := range c.Defs {
		if err := f.DPT.SetPolicy(d.VIPA, tables.PolicyOf(d, c.Node)); err != nil { // checked when the config was provisioned
			f.logger.Error("distribution policy", zap.Stringer("vipa", d.VIPA), zap.Error(err))
		}
	}
	for v := range *f.routes.Load() {
		if !slices.ContainsFunc(c.Defs, func(d *vipa.Definition) bool { return d.VIPA == v }) && !f.dyn.claims(v) {
			f.DPT.SetPolicy(v, nil)
		}
	}
	f.cfg = c
	var old *listenwatch.Watcher
	if f.watcher != nil && (c.Listeners != f.watchCfg.Listeners || c.Interval != f.watchCfg.Interval) {
		old, f.watcher = f.watcher, nil
	}
	if c.Listeners == vipa.ListenersOff {
		f.snap = nil
	}
	f.publishLocked()
	f.mu.Unlock()

	// Stop waits for a running OnChange, which takes f.mu: never under it.
	if old != nil {
		old.Stop()
	}
	if c.Listeners != vipa.ListenersOff {
		f.startWatch(c)
	}
	f.configureWeight(c.Weight)
	f.publishOwnership()
	if agent := f.agentOf(); agent != nil {
		agent.Configured() // the join may begin: the tags say what this node can own
	}
	f.dyn.update()
}

// startWatch starts the listener watch unless one runs already.
func (f *Fleet) startWatch(c Config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watcher != nil {
		return
	}
	w := &listenwatch.Watcher{
		Interval: c.Interval,
		OnChange: f.listenersChanged,
		OnError: func(err error) {
			f.logger.Error("finding application listeners", zap.Error(err))
		},
	}
	if c.Listeners == vipa.ListenersProbe || !listenwatch.SocketTable {
		w.Probe = f.probeAddrs
	}
	if err := w.Start(); err != nil {
		f.logger.Error("starting the listener watch", zap.Error(err))
		return
	}
	f.watcher, f.watchCfg = w, c
}

// nodeName is this node's name in the fleet.
func (f *Fleet) nodeName() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.Node
}

func (f *Fleet) agentOf() *serfsync.Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.agent
}

// Members lists the fleet for the admin API.
func (f *Fleet) Members() []serfsync.Member {
	if agent := f.agentOf(); agent != nil {
		return agent.Members()
	}
	return nil
}

// Stats are the agent's protocol counters.
func (f *Fleet) Stats() map[string]uint64 {
	if agent := f.agentOf(); agent != nil {
		return agent.Stats()
	}
	return nil
}

// Destruct leaves the fleet and stops watching: the last config using this
// state is gone.
func (f *Fleet) Destruct() error {
	if f.agentOf() != nil {
		f.dyn.end()
		f.handOver()
	}
	f.mu.Lock()
	w, agent, up, s := f.watcher, f.agent, f.upkeep, f.sampler
	f.watcher, f.agent, f.upkeep, f.sampler, f.autoWeight = nil, nil, nil, nil, false
	f.mu.Unlock()
	if w != nil {
		w.Stop()
	}
	s.stop()
	up.stop()
	if agent != nil {
		if err := agent.Stop(); err != nil {
			return fmt.Errorf("stopping gossip: %w", err)
		}
	}
	return nil
}
