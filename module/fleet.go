package module

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

// fleets holds the state that outlives a config, keyed by gossip bind
// address: a reload that keeps the gossip settings keeps the serf agent, the
// DPT and the CRT, so established connections stay routed and visible.
var fleets = caddy.NewUsagePool()

// identity is what a running agent cannot change without a restart.
type identity struct {
	agent serfsync.Config
}

func (id identity) sameAgent(o identity) bool {
	a, b := id.agent, o.agent
	return a.NodeName == b.NodeName && a.BindAddr == b.BindAddr &&
		a.Advertise == b.Advertise && a.Label == b.Label &&
		a.Profile == b.Profile && a.Insecure == b.Insecure && a.RemoteKeys == b.RemoteKeys &&
		slices.EqualFunc(a.Keys, b.Keys, bytes.Equal)
}

// config is the part of a config the fleet follows on every reload.
type config struct {
	node      string
	advertise netip.Addr
	defs      []*serfsync.Definition
	policies  map[netip.Addr]*tables.Policy // by VIPA; a definition without one distributes by its distmethod alone
	listeners string
	interval  time.Duration
}

// route is what the handler needs for one VIPA; its distribution policy
// lives in the DPT's groups.
type route struct {
	def *serfsync.Definition
}

// fleet is one node's pooled state.
type fleet struct {
	dpt      *tables.DPT
	crt      *tables.CRT
	counters counters

	// routes maps a VIPA this node routes to its definition; read on every
	// connection, replaced whole on reload.
	routes atomic.Pointer[map[netip.Addr]*route]

	mu       sync.Mutex
	id       identity
	agent    *serfsync.Agent
	cfg      config
	watcher  *listenwatch.Watcher
	watchCfg config
	snap     listenwatch.Snapshot
	known    []serfsync.KnownDefinition // every definition known in the fleet
	ownRows  []tables.Row               // this node's own report
	logger   *zap.Logger
	upkeep   *upkeep
}

func newFleet(id identity) *fleet {
	f := &fleet{dpt: tables.NewDPT(), crt: tables.NewCRT(), id: id}
	empty := map[netip.Addr]*route{}
	f.routes.Store(&empty)
	return f
}

// start starts the serf agent once; a later config must keep its identity.
func (f *fleet) start(id identity, logger *zap.Logger) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.agent != nil {
		if !f.id.sameAgent(id) {
			return errors.New("gossip settings changed (node, advertise, key, label, profile, insecure or remote_keys): restart required")
		}
		return nil
	}
	f.logger = logger
	cfg := id.agent
	cfg.Logger = logger.Named("gossip")
	agent, err := serfsync.New(cfg)
	if err != nil {
		return err
	}
	agent.OnMemberGone = f.memberGone
	agent.OnDefinitions = f.definitionsChanged
	agent.OnReport = f.reportArrived
	if err := agent.Start(); err != nil {
		return err
	}
	f.agent, f.id = agent, id
	f.upkeep = startUpkeep(f)
	return nil
}

// configure installs a config's definitions and listener watch settings.
func (f *fleet) configure(c config) {
	routes := make(map[netip.Addr]*route, len(c.defs))
	for _, d := range c.defs {
		routes[d.VIPA] = &route{def: d}
	}
	f.mu.Lock()
	agent := f.agent
	f.mu.Unlock()
	if agent != nil {
		agent.SetDefinitions(c.defs)
	}

	f.mu.Lock()
	// Policies go in before the routes that use them; the groups keep
	// their rotation and health across the change.
	for _, d := range c.defs {
		p := c.policies[d.VIPA]
		if p == nil {
			p = &tables.Policy{Distmethod: d.Distmethod}
		}
		if err := f.dpt.SetPolicy(d.VIPA, p); err != nil { // checked in Provision
			f.logger.Error("distribution policy", zap.Stringer("vipa", d.VIPA), zap.Error(err))
		}
	}
	for vipa := range *f.routes.Load() {
		if routes[vipa] == nil {
			f.dpt.SetPolicy(vipa, nil)
		}
	}
	f.routes.Store(&routes)
	f.cfg = c
	var old *listenwatch.Watcher
	if f.watcher != nil && (c.listeners != f.watchCfg.listeners || c.interval != f.watchCfg.interval) {
		old, f.watcher = f.watcher, nil
	}
	if c.listeners == "off" {
		f.snap = nil
	}
	f.publishLocked()
	f.mu.Unlock()

	// Stop waits for a running OnChange, which takes f.mu: never under it.
	if old != nil {
		old.Stop()
	}
	if c.listeners != "off" {
		f.startWatch(c)
	}
}

// startWatch starts the listener watch unless one runs already.
func (f *fleet) startWatch(c config) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.watcher != nil {
		return
	}
	w := &listenwatch.Watcher{
		Interval: c.interval,
		OnChange: f.listenersChanged,
		OnError: func(err error) {
			f.logger.Error("finding application listeners", zap.Error(err))
		},
	}
	if c.listeners == "probe" || !listenwatch.SocketTable {
		w.Probe = f.probeAddrs
	}
	if err := w.Start(); err != nil {
		f.logger.Error("starting the listener watch", zap.Error(err))
		return
	}
	f.watcher, f.watchCfg = w, c
}

// members lists the fleet for the admin API.
func (f *fleet) members() []serfsync.Member {
	f.mu.Lock()
	agent := f.agent
	f.mu.Unlock()
	if agent == nil {
		return nil
	}
	return agent.Members()
}

// stats are the agent's protocol counters.
func (f *fleet) stats() map[string]uint64 {
	f.mu.Lock()
	agent := f.agent
	f.mu.Unlock()
	if agent == nil {
		return nil
	}
	return agent.Stats()
}

// Destruct leaves the fleet and stops watching: the last config using this
// state is gone.
func (f *fleet) Destruct() error {
	f.mu.Lock()
	w, agent, up := f.watcher, f.agent, f.upkeep
	f.watcher, f.agent, f.upkeep = nil, nil, nil
	f.mu.Unlock()
	if w != nil {
		w.Stop()
	}
	up.stop()
	if agent != nil {
		if err := agent.Stop(); err != nil {
			return fmt.Errorf("stopping gossip: %w", err)
		}
	}
	return nil
}
