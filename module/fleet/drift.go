package fleet

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// The drift check: every target counts the established connections its
// kernel holds on each distributed port from the routing node's advertise
// address and reports the count; the routing node compares it with the
// active connections of the row in its CRT. A difference that lasts means
// one side lost track: connections the routing node forgot, or ones the
// target holds that never went through the VIPA.
//
// The routing node's own rows are skipped: it relays to itself from its
// own address, and the count cannot tell those connections apart from its
// clients'.

// defaultDriftPeriod paces the count and the comparison. Reports change
// only when a count does, so a steady fleet sends nothing new.
const defaultDriftPeriod = 10 * time.Second

// driftPeriod is defaultDriftPeriod unless CADDY_VIPA_DRIFT_PERIOD (a Go
// duration) says otherwise; the integration tests shorten it.
func driftPeriod() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CADDY_VIPA_DRIFT_PERIOD")); err == nil && d > 0 {
		return d
	}
	return defaultDriftPeriod
}

// rowKey names a DPT row.
type rowKey struct {
	vipa netip.Addr
	port uint16
	node string
}

// Drift is one row's difference: the routing node's active connections
// minus those the target holds.
type Drift struct {
	VIPA  netip.Addr
	Port  uint16
	Node  string
	Drift int64
}

// driftState is what the routing node knows of one row's drift.
type driftState struct {
	held   int   // the target's count, from its report
	drift  int64 // as of the last check
	streak int   // consecutive checks with a drift
	warned bool  // this episode was logged
}

// withConns fills in each line's Conns from the latest count: the
// connections held on the line's address from the routing node of its
// VIPA. Without a count (no socket table) lines say nothing.
func withConns(lines []vipa.Listener, c listenwatch.Conns, routers map[netip.Addr]netip.Addr) {
	for i := range lines {
		l := &lines[i]
		r, ok := routers[l.VIPA]
		if c == nil || !ok {
			l.Conns = vipa.NoConns
			continue
		}
		l.Conns = c.Count(l.Port, l.Address.Addr(), r)
	}
}

// countConns reads the socket table and republishes the report, which
// changes only if a count did.
func (f *Fleet) countConns() {
	c, err := listenwatch.ScanConns()
	if err != nil {
		c = nil
	}
	advOf := make(map[string]netip.Addr)
	if a := f.agentOf(); a != nil {
		for _, m := range a.Members() {
			if m.Status == "alive" && m.Advertise.IsValid() {
				advOf[m.Name] = m.Advertise
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = c
	f.routers = make(map[netip.Addr]netip.Addr)
	for _, d := range f.known {
		if adv, ok := advOf[d.RoutingNode]; ok && d.Owner {
			f.routers[d.VIPA] = adv
		}
	}
	f.publishLocked()
}

// heldArrived records the counts of a target's report lines; a line
// without one (an older target) leaves its row unchecked.
func (f *Fleet) heldArrived(node string, lines []vipa.Listener) {
	f.mu.Lock()
	self := f.cfg.Node
	f.mu.Unlock()
	f.driftMu.Lock()
	defer f.driftMu.Unlock()
	if f.drift == nil {
		f.drift = make(map[rowKey]*driftState)
	}
	keep := make(map[rowKey]bool, len(lines))
	for _, l := range lines {
		if l.Conns < 0 || node == self {
			continue
		}
		k := rowKey{l.VIPA, l.Port, node}
		keep[k] = true
		if st := f.drift[k]; st != nil {
			st.held = l.Conns
		} else {
			f.drift[k] = &driftState{held: l.Conns}
		}
	}
	for k := range f.drift {
		if k.node == node && !keep[k] {
			delete(f.drift, k)
		}
	}
}

// checkDrift compares every reported count with the CRT's active
// connections of its row. A drift present at two checks in a row is
// logged once, with both counts, until it ends.
func (f *Fleet) checkDrift() {
	rows := f.DPT.Rows()
	f.driftMu.Lock()
	defer f.driftMu.Unlock()
	seen := make(map[rowKey]bool, len(f.drift))
	for _, r := range rows {
		k := rowKey{r.VIPA, r.Port, r.Node}
		st := f.drift[k]
		if st == nil {
			continue
		}
		seen[k] = true
		st.drift = r.ActiveConns - int64(st.held)
		if st.drift == 0 {
			if st.warned {
				f.logger.Info("CRT drift ended", zap.String("vipa", r.VIPA.String()), zap.Uint16("port", r.Port), zap.String("node", r.Node))
			}
			st.streak, st.warned = 0, false
			continue
		}
		st.streak++
		if st.streak >= 2 && !st.warned {
			st.warned = true
			f.logger.Warn("CRT drift: the routing node and the target disagree on the row's connections",
				zap.String("vipa", r.VIPA.String()), zap.Uint16("port", r.Port), zap.String("node", r.Node),
				zap.Int64("crt_active", r.ActiveConns), zap.Int("target_held", st.held), zap.Int64("drift", st.drift))
		}
	}
	for k := range f.drift {
		if !seen[k] {
			delete(f.drift, k) // the row left the DPT
		}
	}
}

// Drifts lists the rows whose target reports a count, as of the last check.
func (f *Fleet) Drifts() []Drift {
	f.driftMu.Lock()
	out := make([]Drift, 0, len(f.drift))
	for k, st := range f.drift {
		out = append(out, Drift{VIPA: k.vipa, Port: k.port, Node: k.node, Drift: st.drift})
	}
	f.driftMu.Unlock()
	slices.SortFunc(out, func(a, b Drift) int {
		if c := a.VIPA.Compare(b.VIPA); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return int(a.Port) - int(b.Port)
		}
		return strings.Compare(a.Node, b.Node)
	})
	return out
}
