package fleet

import (
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

// Warm standby beyond the reports: a routing node's drains of targets and
// its rows' health are its own, not in any target's report, so it shares
// them with the standbys of its VIPAs (serfsync's carried state), and a
// standby holds them on its rows of each VIPA it stands by for:
//
//   - the routing node's drains decide which of those rows are quiesced
//     (in place of this node's own drains);
//   - each row takes the routing node's TSR and health; this node does not
//     probe them while it does not route the VIPA.
//
// When this node begins routing the VIPA it adopts the drains: its own
// drains naming that VIPA are replaced by the carried ones (restricted to
// it), which from then on are this node's, to resume or keep like any
// drain made here; the rows keep the health they carry and are probed
// from then on.

// carried is what the routing node of one VIPA this node stands by for
// shared last.
type carried struct {
	from   string       // the routing node
	drains quiesceRules // restricted to the VIPA, in order
	health map[healthKey]serfsync.RowHealth
}

type healthKey struct {
	port uint16
	node string
}

// ownerState is what this node shares with the standbys of the VIPAs it
// routes: its drains and the health of those VIPAs' rows.
func (f *Fleet) ownerState() serfsync.OwnerState {
	f.mu.Lock()
	var s serfsync.OwnerState
	for _, r := range f.drains {
		s.Drains = append(s.Drains, serfsync.Drain{VIPA: r.sel.VIPA, Port: r.sel.Port, Node: r.sel.Node, Quiesced: r.quiesced})
	}
	f.mu.Unlock()
	routes := *f.routes.Load()
	for _, r := range f.DPT.Rows() {
		if routes[r.VIPA] != nil && (r.Health == tables.Unhealthy || r.TSR < 100) {
			s.Health = append(s.Health, serfsync.RowHealth{VIPA: r.VIPA, Port: r.Port, Node: r.Node, TSR: r.TSR, Unhealthy: r.Health == tables.Unhealthy})
		}
	}
	return s
}

// ownerStateArrived takes a routing node's shared state for the VIPAs it
// owns that this node stands by for and does not route.
func (f *Fleet) ownerStateArrived(from string, s serfsync.OwnerState) {
	standby := f.dyn.standby()
	routes := *f.routes.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	took := 0
	for _, k := range f.known {
		v := k.VIPA
		if !k.Owner || k.RoutingNode != from || from == f.cfg.Node || !standby[v] || routes[v] != nil {
			continue
		}
		c := &carried{from: from, drains: restrictDrains(s.Drains, v), health: map[healthKey]serfsync.RowHealth{}}
		for _, h := range s.Health {
			if h.VIPA == v {
				c.health[healthKey{h.Port, h.Node}] = h
			}
		}
		if f.carried == nil {
			f.carried = map[netip.Addr]*carried{}
		}
		f.carried[v] = c
		took++
	}
	if took == 0 {
		return
	}
	if ce := f.logger.Check(zap.DebugLevel, "carried state from a routing node"); ce != nil {
		ce.Write(zap.String("from", from), zap.Int("drains", len(s.Drains)), zap.Int("rows_below_full_health", len(s.Health)))
	}
	f.applyAllLocked()
}

// restrictDrains is a routing node's drains as they apply to VIPA v, in
// order, each naming v.
func restrictDrains(ds []serfsync.Drain, v netip.Addr) quiesceRules {
	var out quiesceRules
	for _, d := range ds {
		if d.VIPA.IsValid() && d.VIPA != v {
			continue
		}
		out = append(out, quiesceRule{Selector{VIPA: v, Port: d.Port, Node: d.Node}, d.Quiesced})
	}
	if !slices.ContainsFunc(out, func(r quiesceRule) bool { return r.quiesced }) {
		return nil
	}
	return out
}

// carriedFor is the carried state that governs the standby rows of v:
// nil when v is routed here or nothing was carried for it.
func (f *Fleet) carriedFor(v netip.Addr) *carried {
	if f.Route(v) != nil {
		return nil
	}
	return f.carried[v]
}

// carriesHealth says whether the rows of v take their health from the
// routing node this node stands by for: this node does not probe them.
func (f *Fleet) carriesHealth(v netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.carriedFor(v) != nil
}

// carryHealthLocked gives the rows of node the health their routing node
// found, where it shared one.
func (f *Fleet) carryHealthLocked(node string, rows []tables.Row) {
	now := time.Now()
	for _, r := range rows {
		c := f.carriedFor(r.VIPA)
		if c == nil {
			continue
		}
		t := f.DPT.Target(r.VIPA, r.Port, node)
		if t == nil {
			continue
		}
		h, ok := c.health[healthKey{r.Port, node}]
		if !ok {
			h = serfsync.RowHealth{TSR: 100}
		}
		if t.Carry(now, h.TSR, h.Unhealthy) {
			if h.Unhealthy {
				f.Counters.HealthDownCarried.Add(1)
			} else {
				f.Counters.HealthUpCarried.Add(1)
			}
			f.logger.Info("standby row's health carried from the routing node", zap.Stringer("vipa", r.VIPA), zap.Uint16("port", r.Port),
				zap.String("node", node), zap.String("health", t.Health().String()), zap.Int("tsr", h.TSR), zap.String("routing_node", c.from))
		}
	}
}

// applyAllLocked derives every reporting node's rows again.
func (f *Fleet) applyAllLocked() {
	for node := range f.reports {
		f.applyLocked(node)
	}
	f.notifyDPT()
}

// adoptCarried follows a change of the VIPAs this node routes: a VIPA it
// now routes takes the drains carried for it (this node's own drains
// naming it are replaced), and rows are derived again.
func (f *Fleet) adoptCarried(old, now map[netip.Addr]*Route) {
	changed := len(old) != len(now)
	f.mu.Lock()
	defer f.mu.Unlock()
	for v := range now {
		if old[v] != nil {
			continue
		}
		changed = true
		c := f.carried[v]
		if c == nil {
			continue
		}
		delete(f.carried, v)
		drains := slices.DeleteFunc(slices.Clone(f.drains), func(r quiesceRule) bool { return r.sel.VIPA == v })
		if len(drains)+len(c.drains) > maxQuiesceRules {
			f.logger.Error("drains carried from the previous routing node not adopted: too many quiesce selectors",
				zap.Stringer("vipa", v), zap.String("from", c.from), zap.Int("drains", len(c.drains)))
			continue
		}
		f.drains = append(drains, c.drains...)
		if len(c.drains) > 0 {
			f.logger.Info("drains carried from the previous routing node now apply here", zap.Stringer("vipa", v),
				zap.String("from", c.from), zap.Int("rules", len(c.drains)))
		}
	}
	for v := range old {
		changed = changed || now[v] == nil
	}
	if changed {
		f.applyAllLocked()
	}
}
