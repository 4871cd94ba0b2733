package fleet

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/module/vipadyn"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Addresses adds and removes the addresses of the VIPAs this node owns;
// without vipa_interface it does nothing (the addresses are the user's).
type Addresses interface {
	Own(vipa netip.Addr) error
	Release(vipa netip.Addr) error
	Quiet(vipa netip.Addr)
	// Forward passes to the previous owner at address to the segments for
	// vipa of connections unknown here, until Unforward.
	Forward(vipa, to netip.Addr) error
	Unforward(vipa netip.Addr) error
}

// dynPeriod paces the ownership loop; member changes and heartbeats kick
// it at once.
const dynPeriod = 100 * time.Millisecond

// dyn runs the ownership rule (package vipadyn) for the fleet: it feeds it
// serf's members, the definitions they route and the heartbeats, and acts
// on what changes: it routes or stops routing a VIPA, adds or removes its
// address, publishes its definitions and tags, logs and counts.
type dyn struct {
	f       *Fleet
	mu      sync.Mutex // guards state, claimed, adopted, lastDef, down
	state   *vipadyn.State
	claimed map[netip.Addr]bool      // VIPAs this node routes now
	linger  map[netip.Addr]time.Time // VIPAs handed over, still routed here (address kept) until the successor claims them, and since when
	claimAt map[netip.Addr]time.Time // lingering VIPAs whose successor claims them, and since when
	leaving bool                     // a graceful stop: hand-overs keep nothing
	owners  map[netip.Addr]string    // the other member seen routing each VIPA last
	peers   map[string]netip.Addr    // live members not taken as down, by their advertise address
	forward map[netip.Addr]time.Time // VIPAs whose unknown connections go to the previous owner, until when
	// forwardWarned: a failed Forward was logged at warn; the next go to debug.
	forwardWarned bool
	lastDef       map[netip.Addr]*vipa.Definition // the latest definition of each VIPA this node backs up
	down          map[string]time.Time            // members gone before serf says so, and since when
	started       time.Time
	addrs         Addresses
	watch         *ownerWatch // nil without an agent or on wan

	changes atomic.Uint64    // ownership changes seen here
	confirm [3]atomic.Uint64 // confirmations of a silent owner, by vipadyn.Outcome
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newDyn(f *Fleet) *dyn {
	return &dyn{
		f: f, state: vipadyn.New(vipadyn.Config{}), claimed: map[netip.Addr]bool{}, linger: map[netip.Addr]time.Time{},
		claimAt: map[netip.Addr]time.Time{}, owners: map[netip.Addr]string{}, peers: map[string]netip.Addr{},
		forward: map[netip.Addr]time.Time{},
		lastDef: map[netip.Addr]*vipa.Definition{}, down: map[string]time.Time{},
		addrs: noAddresses{}, kick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
}

type noAddresses struct{}

func (noAddresses) Own(netip.Addr) error                 { return nil }
func (noAddresses) Release(netip.Addr) error             { return nil }
func (noAddresses) Quiet(netip.Addr)                     {}
func (noAddresses) Forward(netip.Addr, netip.Addr) error { return ErrNotManaged }
func (noAddresses) Unforward(netip.Addr) error           { return nil }

func (d *dyn) start(agent *serfsync.Agent, profile string) {
	d.started = time.Now()
	d.wg.Go(d.run)
	if t := ownerWatchTiming(profile); t.every > 0 && agent != nil {
		d.watch = startOwnerWatch(d, agent, t)
	}
}

func (d *dyn) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *dyn) run() {
	tick := time.NewTicker(dynPeriod)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
		case <-d.kick:
		}
		d.update()
	}
}

// configure installs a config's definitions and backups.
func (d *dyn) configure(node string, defs []*vipa.Definition, backups []*vipa.Backup, addrs Addresses) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cfg := vipadyn.Config{Node: node, Backups: backups}
	for _, def := range defs {
		cfg.Defined = append(cfg.Defined, def.VIPA)
	}
	d.state.Configure(cfg)
	if addrs == nil {
		addrs = noAddresses{}
	}
	d.addrs = addrs
	// A killed process leaves its addresses behind: until this node
	// claims a VIPA, nothing of ours may answer for it on the link.
	for v := range d.state.Ranks() {
		if !d.claimed[v] {
			if err := addrs.Release(v); err != nil {
				d.f.logger.Error("removing a VIPA's address left from before", zap.Stringer("vipa", v), zap.Error(err))
			}
		}
		if _, ok := d.forward[v]; !ok {
			if err := addrs.Unforward(v); err != nil {
				d.f.logger.Debug("removing a hand-over's forwarding left from before", zap.Stringer("vipa", v), zap.Error(err))
			}
		}
	}
}

// update looks at the fleet once and acts on the changes.
func (d *dyn) update() {
	f := d.f
	agent := f.agentOf() // nil: a fleet of one, as in tests
	f.mu.Lock()
	known := f.known
	node := f.cfg.Node
	join := len(f.agentCfg.Join) > 0
	joinList, self := f.agentCfg.Join, f.agentCfg.BindAddr
	profile := f.agentCfg.Profile
	f.mu.Unlock()
	if node == "" {
		// No config yet (the agent starts, and may kick this loop, before
		// the first one is installed): this node's name is unknown, so it
		// would count itself among the members, and what it may own is
		// unknown too. Its config's Configure looks at the fleet.
		return
	}

	// Which members' claims this node holds, then the claims themselves:
	// in that order, from the agent, so a member counted as known never
	// lacks the claims that made it so (f.known follows the agent later).
	var ms []serfsync.Member
	defsKnown := map[string]bool{}
	if agent != nil {
		ms = agent.Members()
		for _, m := range ms {
			if m.Name != node && m.Status == "alive" {
				defsKnown[m.Name] = agent.DefsKnown(m.Name)
			}
		}
		known = agent.Definitions()
	}
	claims := map[string][]netip.Addr{}
	for _, k := range known {
		if !k.Released {
			claims[k.RoutingNode] = append(claims[k.RoutingNode], k.VIPA)
		}
	}
	var members []vipadyn.Member
	for _, m := range ms {
		if m.Name == node {
			continue
		}
		alive := m.Status == "alive"
		vm := vipadyn.Member{Name: m.Name, Alive: alive, Ranks: m.VIPADyn.Ranks, Moves: m.VIPADyn.Moves,
			Claims: claims[m.Name]}
		for _, v := range vm.Claims {
			if _, ok := vm.Ranks[v]; !ok {
				vm.Ranks[v] = vipadyn.Configured
			}
		}
		vm.Known = alive && defsKnown[m.Name]
		members = append(members, vm)
	}

	d.mu.Lock()
	now := time.Now()
	in := vipadyn.Inputs{
		Now: now, Members: members, Down: map[string]bool{},
		Settled: !join || settledOn(agent == nil || agent.JoinTried(), joinList, self, node, ms, now.Sub(d.started), profile),
	}
	for name := range d.down {
		in.Down[name] = true
	}
	clear(d.peers)
	for _, m := range ms {
		if m.Name == node || m.Status != "alive" || in.Down[m.Name] {
			continue
		}
		if addr := m.Advertise; addr.IsValid() && !addr.IsUnspecified() {
			d.peers[m.Name] = addr
		} else {
			d.peers[m.Name] = m.Address.Addr()
		}
	}
	for _, m := range members {
		if m.Alive && m.Known && !in.Down[m.Name] {
			for _, v := range m.Claims {
				d.owners[v] = m.Name
			}
		}
	}
	if d.state.NeedsConns() {
		in.Conns = f.connsByVIPA()
	}
	// Remember the definitions of the VIPAs this node may take over, and
	// route their standby groups by the owner's policy from now on: a
	// takeover then starts from the exact table.
	var standby []*vipa.Definition
	for _, k := range known {
		if k.Owner && k.RoutingNode != node {
			if _, ok := d.state.Ranks()[k.VIPA]; ok {
				if old := d.lastDef[k.VIPA]; old == nil || !old.Equal(&k.Definition) {
					standby = append(standby, k.Definition.Clone())
				}
				d.lastDef[k.VIPA] = k.Definition.Clone()
			}
		}
	}
	changes := d.state.Update(in)
	d.mu.Unlock()
	f.standbyPolicies(standby)
	// A hand-over lingers until the successor is known to claim: a claim
	// held from before a member went silent may be a killed process's.
	claimedElsewhere := map[netip.Addr]bool{}
	for _, m := range members {
		if m.Alive && m.Known && !in.Down[m.Name] {
			for _, v := range m.Claims {
				claimedElsewhere[v] = true
			}
		}
	}
	d.endForwards(now)
	if d.endLingers(claimedElsewhere, now) && len(changes) == 0 {
		f.publishOwnership()
	}
	if len(changes) > 0 {
		d.apply(changes)
	}
}

// settledOn says whether a node with a join list may decide on the
// members ms it sees (see settled). Only members whose tags carry their
// config count as in view: a member seen before its config's tags are set
// (serf's rejoin from its snapshot at a restart begins before the config
// is in; a join retry can reach a node between its bind and its tags)
// looks like a node that can own nothing, and deciding then would claim a
// VIPA it defines. A member that never sets the tag (an older version)
// leaves the node to the settle wait.
func settledOn(tried bool, join []string, self netip.AddrPort, node string, ms []serfsync.Member, waited time.Duration, profile string) bool {
	var inView []serfsync.Member // this node among them: its config is in
	others := false
	for _, m := range ms {
		switch {
		case m.Name == node:
			inView = append(inView, m)
		case m.Status == "alive" && m.Configured:
			inView = append(inView, m)
			others = true
		}
	}
	return settled(tried, others && joinedAll(join, self, inView), waited, profile)
}

// settled says a node with a join list may decide on the members it sees,
// waited after its start. Once its first join attempt has returned (tried)
// it knows the members the nodes it contacted know, and decides if it has
// met one and sees alive every member its join list names (joinedAll,
// passed in othersAlive; settledOn counts only members whose tags carry
// their config): all nodes started at once, the join may have
// reached a backup before the routing node. Until then a member in view (one that contacted it, or the
// first a join under way reached) is not enough for settleWait: a
// returning routing node must see the backup that routes its VIPA, not
// take the VIPA back from it, connections and all. Alone, it decides
// settleWait after a join attempt has returned, or after maxSettleWait
// if none does: on a loaded host a join that reaches the backups can take
// longer than settleWait.
func settled(tried, othersAlive bool, waited time.Duration, profile string) bool {
	switch {
	case tried && othersAlive, waited > maxSettleWait:
		return true
	case tried || othersAlive:
		return waited > settleWait(profile)
	}
	return false
}

// joinedAll says every member the join list names by address, this node
// aside, is alive in view: until then the routing node a backup defers to
// may be one of those not yet seen (all nodes started at once, the join
// reached another). A name that is no IP address counts as seen.
func joinedAll(join []string, self netip.AddrPort, ms []serfsync.Member) bool {
	for _, j := range join {
		ap, err := netip.ParseAddrPort(j)
		if err != nil {
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if ap == self || ap.Addr().IsUnspecified() {
			continue
		}
		if !slices.ContainsFunc(ms, func(m serfsync.Member) bool {
			return m.Status == "alive" && netip.AddrPortFrom(m.Address.Addr().Unmap(), m.Address.Port()) == ap
		}) {
			return false
		}
	}
	return true
}

// maxSettleWait bounds the wait for a join attempt that neither answers
// nor fails.
const maxSettleWait = 15 * time.Second

// settleWait is how long a node that has joined no one yet waits before it
// decides alone: a returning routing node must see its backups first.
func settleWait(profile string) time.Duration {
	if profile == vipa.ProfileFast {
		return 2 * time.Second
	}
	return 3 * time.Second
}

// apply acts on ownership changes: routes, addresses, definitions, tags,
// logs and counts.
func (d *dyn) apply(changes []vipadyn.Change) {
	f := d.f
	self := f.nodeName() // f.mu before d.mu, never inside it
	var owned []netip.Addr
	d.mu.Lock()
	for _, c := range changes {
		if c.Announce && !c.Claim && !c.Release {
			f.logger.Info("VIPA announced again: a node that routed it, or may have on its side of a partition, has given it up", zap.Stringer("vipa", c.VIPA))
			if err := d.addrs.Own(c.VIPA); err != nil {
				f.logger.Error("announcing the VIPA's address", zap.Stringer("vipa", c.VIPA), zap.Error(err))
			}
			continue
		}
		d.changes.Add(1)
		f.logger.Info("VIPA ownership",
			zap.Stringer("vipa", c.VIPA), zap.String("status", string(c.Status)),
			zap.String("owner", c.Owner), zap.String("previous_status", string(c.OldStatus)),
			zap.String("previous_owner", c.OldOwner), zap.Int("rank", c.Rank))
		switch {
		case c.Claim:
			d.claimed[c.VIPA] = true
			owned = append(owned, c.VIPA)
		case c.Status == vipa.StatusMoving && !c.Release:
			// A hand-over is ready: this node routes the VIPA until the
			// successor claims it, but announces it no more.
			d.addrs.Quiet(c.VIPA)
		case c.OldStatus == vipa.StatusMoving && !c.Release && c.Owner == self:
			// The hand-over ended without a successor (it left): announce
			// the address again.
			if err := d.addrs.Own(c.VIPA); err != nil {
				f.logger.Error("announcing the VIPA's address", zap.Stringer("vipa", c.VIPA), zap.Error(err))
			}
		case c.Release && (c.HandOver || c.Status == vipa.StatusMoving && c.Owner == "") && !d.leaving:
			// A hand-over (takeback or move) to a successor that has not
			// claimed yet: make before break. This node keeps the address
			// and the route, so no client finds the VIPA unanswered, until
			// the successor has claimed and announced it (lingerMax at most),
			// but announces it no more: a repeat sent after the successor's
			// announcement would move clients back here just before the
			// address goes.
			delete(d.claimed, c.VIPA)
			// lingerMax counts from the hand-over's start, which came
			// before the successor's claim (the successor forwards for
			// lingerMax and a margin from its claim), but lingerGrace at
			// least remains: the hand-over may have waited long for the
			// successor's tags.
			now := time.Now()
			start := now
			if !c.HandStart.IsZero() && c.HandStart.Before(start) {
				start = c.HandStart
			}
			start = later(start, now.Add(lingerGrace-lingerMax))
			d.linger[c.VIPA] = start
			d.addrs.Quiet(c.VIPA)
			d.stopForward(c.VIPA)
		case c.Release:
			delete(d.claimed, c.VIPA)
			d.releaseLocked(c.VIPA)
		}
	}
	d.mu.Unlock()
	// Route first, then add the address and announce it: a client the
	// announcement sends here finds the route in place.
	f.publishOwnership()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range owned {
		if !d.claimed[v] {
			continue // released meanwhile
		}
		delete(d.linger, v) // back before the successor came
		delete(d.claimAt, v)
		// Before the address and its announcement: the first segments the
		// announcement sends here may be of the previous owner's handshakes.
		d.startForward(v, time.Now())
		if err := d.addrs.Own(v); err != nil {
			f.logger.Error("adding the VIPA's address", zap.Stringer("vipa", v), zap.Error(err))
		}
	}
}

// lingerMax bounds how long a handed-over VIPA stays routed here while
// its successor has not claimed it.
const lingerMax = 2 * time.Second

// lingerGrace is how long a handed-over VIPA stays routed here after its
// successor's claim is seen: the claim travels by gossip and can arrive
// before the successor's announcement reaches the clients, whose SYNs
// still come here meanwhile. This node no longer announces it, so the
// clients move on the successor's announcement alone.
const lingerGrace = 250 * time.Millisecond

// releaseLocked removes a VIPA's address; d.mu is held.
func (d *dyn) releaseLocked(v netip.Addr) {
	delete(d.linger, v)
	delete(d.claimAt, v)
	d.stopForward(v)
	if err := d.addrs.Release(v); err != nil {
		d.f.logger.Error("removing the VIPA's address", zap.Stringer("vipa", v), zap.Error(err))
	}
}

// endLingers ends the hand-overs whose successor (or any other node) has
// claimed the VIPA for lingerGrace, or that have waited lingerMax: the
// address goes, and the route. It reports whether any ended.
func (d *dyn) endLingers(claimed map[netip.Addr]bool, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ended := false
	for v, since := range d.linger {
		if !d.leaving && now.Sub(since) < lingerMax {
			if !claimed[v] {
				delete(d.claimAt, v)
				continue
			}
			at, seen := d.claimAt[v]
			if !seen {
				d.claimAt[v] = now
				continue
			}
			if now.Sub(at) < lingerGrace {
				continue
			}
		}
		d.releaseLocked(v)
		ended = true
	}
	return ended
}

// published returns what this node routes now: its configured definitions
// it claims, and the definitions it took over; and its vipadyn tag.
func (d *dyn) published(cfgDefs []*vipa.Definition) ([]*vipa.Definition, serfsync.VIPADyn) {
	defs, _, tag := d.routed(cfgDefs)
	return defs, tag
}

// routed returns what published does and, beside the definitions this
// node claims, those of the VIPAs it still routes while handing them over.
func (d *dyn) routed(cfgDefs []*vipa.Definition) (claimed, lingering []*vipa.Definition, tag serfsync.VIPADyn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for v := range d.linger {
		if i := slices.IndexFunc(cfgDefs, func(def *vipa.Definition) bool { return def.VIPA == v }); i >= 0 {
			lingering = append(lingering, cfgDefs[i])
		} else if def := d.lastDef[v]; def != nil {
			lingering = append(lingering, def)
		}
	}
	var out []*vipa.Definition
	for _, def := range cfgDefs {
		if d.claimed[def.VIPA] {
			out = append(out, def)
		}
	}
	for v := range d.claimed {
		if slices.ContainsFunc(cfgDefs, func(def *vipa.Definition) bool { return def.VIPA == v }) {
			continue
		}
		if def := d.lastDef[v]; def != nil {
			out = append(out, def)
		}
	}
	tag = serfsync.VIPADyn{Ranks: map[netip.Addr]int{}, Moves: d.state.Moves()}
	for v, r := range d.state.Ranks() {
		if r == vipadyn.Configured && d.claimed[v] && tag.Moves[v] == "" {
			continue // its definition says so (a move travels with a rank)
		}
		tag.Ranks[v] = r
	}
	return out, lingering, tag
}

// Move hands a VIPA this node routes to another node.
func (d *dyn) move(v netip.Addr, to string, whenIdle bool) error {
	agent := d.f.agentOf()
	var members []vipadyn.Member
	if agent != nil {
		for _, m := range agent.Members() {
			members = append(members, vipadyn.Member{Name: m.Name, Alive: m.Status == "alive", Ranks: m.VIPADyn.Ranks})
		}
	}
	d.mu.Lock()
	err := d.state.Move(v, to, whenIdle, members, time.Now())
	d.mu.Unlock()
	if err == nil {
		d.f.publishOwnership() // the move goes in the tags
		d.wake()
	}
	return err
}

// markDown takes a member as gone before serf says so (missed heartbeats
// confirmed, or its goodbye). Its rows stay until serf says so too, but
// unhealthy: a takeover's first connections must not wait out a dial
// timeout on a target that is gone.
func (d *dyn) markDown(name string) {
	now := time.Now()
	d.mu.Lock()
	if _, ok := d.down[name]; !ok {
		d.down[name] = now
	}
	d.mu.Unlock()
	for _, t := range d.f.DPT.Demote(name, now) {
		d.f.HealthChanged(d.f.logger, t, false, "taken as down")
	}
	d.wake()
}

// watched lists the nodes whose liveness this node watches: the owners of
// the VIPAs it may own, and the members it takes as down (until they answer
// or serf says they are gone).
func (d *dyn) watched() []string {
	node := d.f.nodeName() // f.mu before d.mu, never inside it
	d.mu.Lock()
	defer d.mu.Unlock()
	ranks := d.state.Ranks()
	var out []string
	for _, r := range d.state.Rows() {
		if _, ok := ranks[r.VIPA]; ok && r.Owner != "" && r.Owner != node && !slices.Contains(out, r.Owner) {
			out = append(out, r.Owner)
		}
	}
	for name := range d.down {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// downSet is a copy of the members taken as down.
func (d *dyn) downSet() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]bool, len(d.down))
	for name := range d.down {
		out[name] = true
	}
	return out
}

// clearDown forgets a member's downness: serf has caught up, or it is back.
func (d *dyn) clearDown(name string) {
	d.mu.Lock()
	delete(d.down, name)
	d.mu.Unlock()
}

// stopAll releases every VIPA this node routes, for a graceful stop.
func (d *dyn) stopAll() []netip.Addr {
	d.mu.Lock()
	d.leaving = true
	changes := d.state.Stop(time.Now())
	d.mu.Unlock()
	var out []netip.Addr
	for _, c := range changes {
		out = append(out, c.VIPA)
	}
	if len(changes) > 0 {
		d.apply(changes)
	}
	d.stopForwards()
	return out
}

func (d *dyn) end() {
	close(d.stop)
	d.wg.Wait()
	d.watch.end()
}

// VIPADyn lists what GET /vipa/vipadyn shows.
func (f *Fleet) VIPADyn() []vipadyn.Row {
	f.dyn.mu.Lock()
	defer f.dyn.mu.Unlock()
	return f.dyn.state.Rows()
}

// Move hands a VIPA this node routes to node to, now or when idle.
func (f *Fleet) Move(v netip.Addr, to string, whenIdle bool) error {
	return f.dyn.move(v, to, whenIdle)
}

// OwnershipChanges counts the ownership changes this node has seen.
func (f *Fleet) OwnershipChanges() uint64 { return f.dyn.changes.Load() }

// OwnerConfirmations counts the confirmations this node asked of the fleet
// about a silent VIPA owner, by their outcome.
func (f *Fleet) OwnerConfirmations() map[vipadyn.Outcome]uint64 {
	out := make(map[vipadyn.Outcome]uint64, len(f.dyn.confirm))
	for o := range f.dyn.confirm {
		out[vipadyn.Outcome(o)] = f.dyn.confirm[o].Load()
	}
	return out
}

// connsByVIPA counts the CRT's connections per VIPA.
func (f *Fleet) connsByVIPA() map[netip.Addr]int {
	out := map[netip.Addr]int{}
	f.CRT.Range(func(e *tables.Entry) bool {
		out[e.VIPA]++
		return true
	})
	return out
}

// publishOwnership hands the agent this node's definitions and tag, and
// the handler its routes, as ownership now stands.
func (f *Fleet) publishOwnership() {
	f.mu.Lock()
	cfg := f.cfg
	agent := f.agent
	f.mu.Unlock()
	defs, lingering, tag := f.dyn.routed(cfg.Defs)
	routes := make(map[netip.Addr]*Route, len(defs)+len(lingering))
	for _, d := range append(slices.Clone(defs), lingering...) {
		routes[d.VIPA] = &Route{Def: d}
	}
	old := f.routes.Swap(&routes)
	standbys := f.dyn.standby()
	f.standbys.Store(&standbys)
	f.adoptCarried(*old, routes)
	if agent != nil {
		agent.SetVIPADyn(tag)
		agent.SetDefinitions(defs)
	}
}

// standbyPolicies makes the policies of the definitions this node stands
// by for those of their groups here, unless this node's own config
// defines the VIPA (its policy is the config's). They are the owner's
// policies, and this node would route by them after a takeover (an owner's
// optlocal then prefers this node's own target).
func (f *Fleet) standbyPolicies(defs []*vipa.Definition) {
	if len(defs) == 0 {
		return
	}
	f.mu.Lock()
	cfg := f.cfg
	f.mu.Unlock()
	for _, d := range defs {
		if slices.ContainsFunc(cfg.Defs, func(c *vipa.Definition) bool { return c.VIPA == d.VIPA }) {
			continue
		}
		if err := f.DPT.SetPolicy(d.VIPA, tables.PolicyOf(d, cfg.Node)); err != nil {
			f.logger.Error("the owner's distribution policy", zap.Stringer("vipa", d.VIPA), zap.String("owner", d.RoutingNode), zap.Error(err))
		}
	}
}

// claims says whether this node routes v now.
func (d *dyn) claims(v netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.claimed[v]
}

// standby lists the VIPAs this node may own, whose DPT it keeps.
func (d *dyn) standby() map[netip.Addr]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[netip.Addr]bool{}
	for v := range d.state.Ranks() {
		out[v] = true
	}
	return out
}

// handOver gives up every VIPA this node routes before it leaves the fleet,
// so its backups take them over at once.
func (f *Fleet) handOver() {
	if vipas := f.dyn.stopAll(); len(vipas) > 0 {
		f.logger.Info("graceful stop: VIPAs handed over", zap.Int("vipas", len(vipas)))
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
