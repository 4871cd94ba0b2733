package module

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

// listenersChanged takes a new socket table snapshot.
func (f *fleet) listenersChanged(s listenwatch.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
	f.publishLocked()
}

// publishLocked turns the latest snapshot into this node's report for the
// definitions known in the fleet and hands it to the agent, which carries it
// to each VIPA's routing node (this one included).
func (f *fleet) publishLocked() {
	f.ownRows = localReport(f.snap, f.cfg.node, f.cfg.advertise, f.known)
	if f.agent == nil {
		return
	}
	ls := make([]serfsync.Listener, len(f.ownRows))
	for i, r := range f.ownRows {
		ls[i] = serfsync.Listener{VIPA: r.VIPA, Port: r.Port, Ready: r.Ready}
	}
	f.agent.SetReport(ls)
}

// definitionsChanged follows the fleet's definitions: this node may have
// become (or stopped being) a candidate of some VIPA.
func (f *fleet) definitionsChanged(known []serfsync.KnownDefinition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.known = known
	owned := make(map[netip.Addr]bool)
	for _, k := range known {
		if k.Owner && k.RoutingNode == f.cfg.node {
			owned[k.VIPA] = true
		}
	}
	// Rows of VIPAs this node no longer owns go; the agent reports the rest.
	for _, row := range f.dpt.Rows() {
		if !owned[row.VIPA] {
			f.dpt.Delete(row.VIPA, row.Port, row.Node)
		}
	}
	f.publishLocked()
}

// reportArrived applies a node's validated rows to the DPT.
func (f *fleet) reportArrived(node string, rows []serfsync.Row) {
	out := make([]tables.Row, len(rows))
	for i, r := range rows {
		out[i] = tables.Row{VIPA: r.VIPA, Port: r.Port, Node: node, Address: r.Address, Ready: r.Ready, Weight: 1, State: tables.Active}
	}
	f.dpt.Replace(node, out)
}

// memberGone drops the rows of a member that failed or left.
func (f *fleet) memberGone(name string) {
	if n := f.dpt.DeleteNode(name); n > 0 {
		f.logger.Info("member gone: rows removed", zap.String("node", name), zap.Int("rows", n))
	}
}

// definitions lists what /vipa/definitions shows: the fleet's view, or this
// config's own definitions before the agent has started.
func (f *fleet) definitions() []serfsync.KnownDefinition {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.known != nil {
		return f.known
	}
	out := make([]serfsync.KnownDefinition, len(f.cfg.defs))
	for i, d := range f.cfg.defs {
		out[i] = serfsync.KnownDefinition{Definition: *d, Owner: true}
	}
	return out
}

// routesAny reports whether this node owns a VIPA's DPT.
func (f *fleet) routesAny() bool {
	return len(*f.routes.Load()) > 0
}

// ownReport is this node's own report as DPT rows.
func (f *fleet) ownReport() []tables.Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ownRows
}
