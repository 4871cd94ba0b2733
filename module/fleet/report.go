package fleet

import (
	"cmp"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// LocalReport lists this node's report lines: for every owned definition
// that names it as a candidate, each distributed port with at least one
// listening socket that counts for the node (vipa.Counts), and how many.
// A port all definition never gets this node's reserved ports (its gossip
// and admin ports).
func LocalReport(s listenwatch.Snapshot, node string, adv netip.Addr, reserved []uint16, defs []serfsync.KnownDefinition) []vipa.Listener {
	var out []vipa.Listener
	for _, d := range defs {
		if !d.Owner || !d.Candidate(node, adv) {
			continue
		}
		ready := make(map[uint16]int)
		for ap, n := range s {
			if d.Ports.Contains(ap.Port()) && vipa.Counts(ap.Addr(), adv, d.VIPA) &&
				!(d.All && slices.Contains(reserved, ap.Port())) {
				ready[ap.Port()] += n
			}
		}
		for port, n := range ready {
			out = append(out, vipa.Listener{VIPA: d.VIPA, Port: port, Address: netip.AddrPortFrom(adv, port), Ready: n})
		}
	}
	slices.SortFunc(out, func(a, b vipa.Listener) int {
		if c := a.VIPA.Compare(b.VIPA); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

// ProbeAddrs lists where a probing listener watch connects: the advertise
// address on every port of the owned definitions naming this node as a
// candidate, unless the advertise address is the VIPA itself. Probes find
// only the ports they try: a port all definition gets none.
func ProbeAddrs(node string, adv netip.Addr, defs []serfsync.KnownDefinition) []netip.AddrPort {
	seen := make(map[uint16]bool)
	var out []netip.AddrPort
	for _, d := range defs {
		if !d.Owner || !d.Candidate(node, adv) || d.VIPA == adv || d.All {
			continue
		}
		for _, p := range d.Ports.Ports() {
			if !seen[uint16(p)] {
				seen[uint16(p)] = true
				out = append(out, netip.AddrPortFrom(adv, uint16(p)))
			}
		}
	}
	return out
}

// rowOf is a report line as a DPT row of node.
func rowOf(node string, l vipa.Listener) tables.Row {
	st := tables.Active
	if l.State == vipa.StateQuiesced {
		st = tables.Quiesced
	}
	return tables.Row{VIPA: l.VIPA, Port: l.Port, Node: node, Address: l.Address, Ready: l.Ready, Weight: max(l.Weight, 1), State: st}
}

// ownRowOf is one of this node's report lines as the views show it where
// this node does not route the VIPA: no dial of this node scores it, so it
// has the health of a new row (TSR 100, healthy) and its full weight
// while active, none while quiesced, rather than a TSR of 0 beside
// "healthy".
func ownRowOf(node string, l vipa.Listener) tables.Row {
	r := rowOf(node, l)
	r.TSR = 100
	if r.State == tables.Active {
		r.EffectiveWeight = float64(r.Weight)
	}
	return r
}

func (f *Fleet) probeAddrs() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ProbeAddrs(f.cfg.Node, f.cfg.Advertise, f.known)
}

// listenersChanged takes a new socket table snapshot.
func (f *Fleet) listenersChanged(s listenwatch.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
	f.publishLocked()
}

// publishLocked turns the latest snapshot into this node's report for the
// definitions known in the fleet and hands it to the agent, which carries
// it to each VIPA's routing node (this one included).
func (f *Fleet) publishLocked() {
	f.own = LocalReport(f.snap, f.cfg.Node, f.cfg.Advertise, f.cfg.Reserved, f.known)
	withConns(f.own, f.conns, f.routers)
	withQuiesce(f.own, f.ownQuiesce)
	withWeight(f.own, f.weight, targetweightVIPAs(f.known))
	if f.agent != nil {
		f.agent.SetReport(f.own)
	}
}

// definitionsChanged follows the fleet's definitions: this node may have
// become (or stopped being) a candidate of some VIPA, or an owner.
func (f *Fleet) definitionsChanged(known []serfsync.KnownDefinition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known = known
	owned := f.dyn.standby()
	for _, k := range known {
		if k.Owner && k.RoutingNode == f.cfg.Node {
			owned[k.VIPA] = true
		}
	}
	for v := range f.carried {
		if !owned[v] {
			delete(f.carried, v) // no longer stood by for
		}
	}
	// Rows of VIPAs this node neither owns nor stands by for go; the agent
	// reports the rest.
	for _, row := range f.DPT.Rows() {
		if !owned[row.VIPA] {
			f.DPT.Delete(row.VIPA, row.Port, row.Node)
		}
	}
	f.notifyDPT()
	f.publishLocked()
	f.dyn.wake()
}

// reportArrived applies a node's validated report lines to the DPT, with
// this routing node's drains.
func (f *Fleet) reportArrived(node string, lines []vipa.Listener) {
	f.heldArrived(node, lines)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logStates(node, f.reports[node], lines)
	if f.reports == nil {
		f.reports = make(map[string][]vipa.Listener)
	}
	if len(lines) == 0 {
		delete(f.reports, node)
	} else {
		f.reports[node] = lines
	}
	f.applyLocked(node)
	f.notifyDPT()
}

// memberGone drops the rows of a member that failed or left, and the
// drains of one that left.
func (f *Fleet) memberGone(name string) {
	f.dyn.clearDown(name)
	f.dyn.wake()
	f.heldArrived(name, nil)
	f.mu.Lock()
	delete(f.reports, name)
	f.pruneDrainsLocked()
	f.mu.Unlock()
	if n := f.DPT.DeleteNode(name); n > 0 {
		f.logger.Info("member gone: rows removed", zap.String("node", name), zap.Int("rows", n))
		f.notifyDPT()
	}
}

// Definitions lists what /vipa/definitions shows: the fleet's view, or
// this config's own definitions before the agent has started. A routing
// node this node's owner watch takes as down is gone from the view as soon
// as a live node routes its VIPA (see withoutDown); so is one serf no
// longer lists as alive, whose definition the view keeps until the
// agent's next round (the owner watch forgets it when serf says so).
func (f *Fleet) Definitions() []serfsync.KnownDefinition {
	down := f.dyn.downSet()
	for _, m := range f.Members() {
		if m.Status != "alive" {
			down[m.Name] = true
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.known != nil {
		return withoutDown(f.known, down)
	}
	out := make([]serfsync.KnownDefinition, len(f.cfg.Defs))
	for i, d := range f.cfg.Defs {
		out[i] = serfsync.KnownDefinition{Definition: *d, Owner: true}
	}
	return out
}

// withoutDown leaves out the definitions whose routing node is down (taken
// as gone by the owner watch, before serf's failure detection says so)
// where another node routes the same VIPA: the view serf's will be once it
// declares the node failed, rather than a dead owner beside its backup.
// The first remaining definition of a VIPA whose owner went is the owner.
// A down node's definition with no other stays: it is the fleet's last
// word on the VIPA (serf keeps it too, while a node stands by).
func withoutDown(known []serfsync.KnownDefinition, down map[string]bool) []serfsync.KnownDefinition {
	if len(down) == 0 {
		return known
	}
	live := map[netip.Addr]bool{}
	for _, k := range known {
		if !down[k.RoutingNode] {
			live[k.VIPA] = true
		}
	}
	out := make([]serfsync.KnownDefinition, 0, len(known))
	ownerGone := map[netip.Addr]bool{}
	for _, k := range known {
		if down[k.RoutingNode] && live[k.VIPA] {
			ownerGone[k.VIPA] = ownerGone[k.VIPA] || k.Owner
			continue
		}
		out = append(out, k)
	}
	for i := range out {
		if v := out[i].VIPA; ownerGone[v] {
			out[i].Owner, ownerGone[v] = true, false
		}
	}
	return out
}

// Role says why a row is in DPTView, so that views summed over the
// fleet count each row once: only the routing node's rows (RoleRouting).
type Role string

const (
	RoleRouting Role = "routing" // a row of a VIPA this node routes
	RoleBackup  Role = "backup"  // a warm row of a VIPA this node backs up and does not define
	RoleTarget  Role = "target"  // this node's own report of a VIPA another node routes
)

// ViewRow is a row of DPTView with its role.
type ViewRow struct {
	tables.Row
	Role Role
}

// DPTView is what /vipa/dpt shows, sorted by VIPA, port and node: the DPT
// rows of each VIPA this node routes, the warm rows of each VIPA it backs
// up and does not define (as it would route them after a takeover: the
// routing node's drains and health carried), and this node's own report of each VIPA
// another node routes (where this node lost a conflict, too). A VIPA this
// node backs up and has claimed counts as routed before the fleet's
// definitions name it: a backup that took over shows the rows it routes
// with at once. The DPT's other rows (the warm rows of a VIPA this node
// backs up and defines, as a ranked backup or a conflict's loser) are not
// shown: its own report stands for it there.
func (f *Fleet) DPTView() []tables.Row {
	view := f.DPTViewRoles()
	rows := make([]tables.Row, len(view))
	for i, r := range view {
		rows[i] = r.Row
	}
	return rows
}

// DPTViewRoles is DPTView with each row's role; the per-row metrics export
// these rows.
func (f *Fleet) DPTViewRoles() []ViewRow {
	standby := f.dyn.standby()
	f.mu.Lock()
	defines := make(map[netip.Addr]bool, len(f.cfg.Defs))
	for _, d := range f.cfg.Defs {
		defines[d.VIPA] = true
	}
	shown := make(map[netip.Addr]Role) // VIPAs whose DPT rows are shown
	for _, k := range f.known {
		switch {
		case (k.Owner && k.RoutingNode == f.cfg.Node) || (!defines[k.VIPA] && f.dyn.claims(k.VIPA)):
			shown[k.VIPA] = RoleRouting
		case k.Owner && standby[k.VIPA] && !defines[k.VIPA] && shown[k.VIPA] == "":
			shown[k.VIPA] = RoleBackup
		}
	}
	var rows []ViewRow
	for _, l := range f.own {
		if shown[l.VIPA] == "" {
			rows = append(rows, ViewRow{ownRowOf(f.cfg.Node, l), RoleTarget})
		}
	}
	f.mu.Unlock()

	for _, r := range f.DPT.Rows() {
		if role := shown[r.VIPA]; role != "" {
			rows = append(rows, ViewRow{r, role})
		}
	}
	slices.SortFunc(rows, func(a, b ViewRow) int {
		if c := a.VIPA.Compare(b.VIPA); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Port, b.Port); c != 0 {
			return c
		}
		return cmp.Compare(a.Node, b.Node)
	})
	return rows
}
