package fleet

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Quiesce and resume. A target node quiesces its own rows by saying so in
// its report lines: the routing node's rows turn quiesced and take no new
// connections while established ones run on. A routing node drains a
// target's rows itself, whatever the target says. Either way the rows are
// chosen by a Selector whose empty fields match anything, and what is kept
// is the selectors, not the rows: a listener that appears later on a
// quiesced port is quiesced too. Both live in the pooled Fleet, so they
// last across reloads that keep the gossip settings, not across a restart.

// Selector picks rows: an unset field matches any value.
type Selector struct {
	VIPA netip.Addr
	Port uint16
	Node string
}

// matches reports whether a row of node on vipa:port is selected.
func (s Selector) matches(v netip.Addr, port uint16, node string) bool {
	return (!s.VIPA.IsValid() || s.VIPA == v) && (s.Port == 0 || s.Port == port) && (s.Node == "" || s.Node == node)
}

// covers reports whether every row o selects is selected by s.
func (s Selector) covers(o Selector) bool {
	return (!s.VIPA.IsValid() || s.VIPA == o.VIPA) && (s.Port == 0 || s.Port == o.Port) && (s.Node == "" || s.Node == o.Node)
}

// ErrNotFound wraps a quiesce or resume naming a VIPA, port or node this
// node does not know in that role.
var ErrNotFound = errors.New("not found")

// maxQuiesceRules bounds the selectors kept; each new one replaces those
// it covers, so only selectors naming ever more distinct rows pile up.
const maxQuiesceRules = 4096

type quiesceRule struct {
	sel      Selector
	quiesced bool
}

// quiesceRules decide a row's state: the last rule that selects it wins,
// and a row no rule selects is active.
type quiesceRules []quiesceRule

// set applies a quiesce (or resume) of sel: rules it covers are dropped,
// it is appended, and a list left without a quiesce is emptied.
func (q quiesceRules) set(sel Selector, quiesced bool) (quiesceRules, error) {
	q = slices.DeleteFunc(q, func(r quiesceRule) bool { return sel.covers(r.sel) })
	if !slices.ContainsFunc(q, func(r quiesceRule) bool { return r.quiesced }) && !quiesced {
		return nil, nil
	}
	if len(q) >= maxQuiesceRules {
		return nil, fmt.Errorf("more than %d quiesce selectors: resume some first", maxQuiesceRules)
	}
	return append(q, quiesceRule{sel, quiesced}), nil
}

// without drops the rules naming a node gone says is gone, and then the
// list if no quiesce is left in it.
func (q quiesceRules) without(gone func(node string) bool) quiesceRules {
	q = slices.DeleteFunc(q, func(r quiesceRule) bool { return r.sel.Node != "" && gone(r.sel.Node) })
	if !slices.ContainsFunc(q, func(r quiesceRule) bool { return r.quiesced }) {
		return nil
	}
	return q
}

func (q quiesceRules) quiesced(v netip.Addr, port uint16, node string) bool {
	for i := len(q) - 1; i >= 0; i-- {
		if q[i].sel.matches(v, port, node) {
			return q[i].quiesced
		}
	}
	return false
}

// stateWord is a state name for logs.
func stateWord(quiesced bool) string {
	if quiesced {
		return string(vipa.StateQuiesced)
	}
	return string(vipa.StateActive)
}

// Quiesce quiesces (or with quiesced false resumes) rows and returns the
// rows it selects as they are now. Without sel.Node they are this node's
// own report lines, quiesced in the report the routing nodes read; with
// sel.Node they are that target's rows in this routing node's DPT. A VIPA,
// port or node this node does not know in that role is an ErrNotFound.
func (f *Fleet) Quiesce(sel Selector, quiesced bool) ([]tables.Row, error) {
	sel.VIPA = sel.VIPA.Unmap()
	f.mu.Lock()
	defer f.mu.Unlock()
	if sel.Node == "" {
		return f.quiesceOwnLocked(sel, quiesced)
	}
	return f.drainLocked(sel, quiesced)
}

// quiesceOwnLocked is a target node's quiesce of its own rows.
func (f *Fleet) quiesceOwnLocked(sel Selector, quiesced bool) ([]tables.Row, error) {
	var defs []*vipa.Definition
	for i := range f.known {
		k := &f.known[i]
		if k.Owner && k.Candidate(f.cfg.Node, f.cfg.Advertise) {
			defs = append(defs, &k.Definition)
		}
	}
	if err := checkSelector(sel, defs, "names this node as a target"); err != nil {
		return nil, err
	}
	rules, err := f.ownQuiesce.set(sel, quiesced)
	if err != nil {
		return nil, err
	}
	f.ownQuiesce = rules
	f.publishLocked()
	var rows []tables.Row
	for _, l := range f.own {
		if sel.matches(l.VIPA, l.Port, "") {
			rows = append(rows, ownRowOf(f.cfg.Node, l))
		}
	}
	f.logger.Info("own rows "+stateWord(quiesced)+": the routing nodes follow the report",
		selFields(sel, len(rows))...)
	return rows, nil
}

// drainLocked is a routing node's quiesce of a target's rows.
func (f *Fleet) drainLocked(sel Selector, quiesced bool) ([]tables.Row, error) {
	var defs []*vipa.Definition
	for i := range f.known {
		k := &f.known[i]
		if k.Owner && k.RoutingNode == f.cfg.Node {
			defs = append(defs, &k.Definition)
		}
	}
	if len(defs) == 0 {
		return nil, fmt.Errorf("%w: this node routes no VIPA; leave out node to quiesce this node's own rows", ErrNotFound)
	}
	if err := checkSelector(sel, defs, "is routed by this node"); err != nil {
		return nil, err
	}
	_, reported := f.reports[sel.Node]
	if !reported && !f.isMemberLocked(sel.Node) {
		return nil, fmt.Errorf("%w: node %q is not a fleet member", ErrNotFound, sel.Node)
	}
	f.pruneDrainsLocked()
	rules, err := f.drains.set(sel, quiesced)
	if err != nil {
		return nil, err
	}
	f.drains = rules
	f.applyLocked(sel.Node)
	var rows []tables.Row
	for _, r := range f.DPT.Rows() {
		if sel.matches(r.VIPA, r.Port, r.Node) {
			rows = append(rows, r)
		}
	}
	f.logger.Info("target rows "+stateWord(quiesced)+" by this routing node", selFields(sel, len(rows))...)
	return rows, nil
}

// pruneDrainsLocked drops the drains of targets that left the fleet or
// that serf forgot (reaped), which would otherwise pile up towards
// maxQuiesceRules; a target that failed keeps its drains for its return.
func (f *Fleet) pruneDrainsLocked() {
	if len(f.drains) == 0 || f.agent == nil {
		return
	}
	status := make(map[string]string)
	for _, m := range f.agent.Members() {
		status[m.Name] = m.Status
	}
	f.drains = f.drains.without(func(node string) bool { return departed(status[node]) })
}

// pruneDrains is pruneDrainsLocked for the upkeep loop.
func (f *Fleet) pruneDrains() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneDrainsLocked()
}

// departed: a member's serf status says it left, or it is not listed ("").
func departed(status string) bool {
	return status == "" || status == "leaving" || status == "left"
}

func (f *Fleet) isMemberLocked(name string) bool {
	if f.agent == nil {
		return false
	}
	return slices.ContainsFunc(f.agent.Members(), func(m serfsync.Member) bool { return m.Name == name })
}

// checkSelector: a VIPA must be one of defs, a port one of their ports.
func checkSelector(sel Selector, defs []*vipa.Definition, role string) error {
	if sel.VIPA.IsValid() {
		defs = slices.DeleteFunc(slices.Clone(defs), func(d *vipa.Definition) bool { return d.VIPA != sel.VIPA })
		if len(defs) == 0 {
			return fmt.Errorf("%w: no definition of VIPA %s %s", ErrNotFound, sel.VIPA, role)
		}
	}
	if sel.Port != 0 && !slices.ContainsFunc(defs, func(d *vipa.Definition) bool { return d.Ports.Contains(sel.Port) }) {
		return fmt.Errorf("%w: port %d is not distributed by a VIPA that %s", ErrNotFound, sel.Port, role)
	}
	return nil
}

func selFields(sel Selector, rows int) []zap.Field {
	fs := []zap.Field{zap.Int("rows", rows)}
	if sel.VIPA.IsValid() {
		fs = append(fs, zap.Stringer("vipa", sel.VIPA))
	}
	if sel.Port != 0 {
		fs = append(fs, zap.Uint16("port", sel.Port))
	}
	if sel.Node != "" {
		fs = append(fs, zap.String("node", sel.Node))
	}
	return fs
}

// withQuiesce marks the lines the node's own rules quiesce.
func withQuiesce(lines []vipa.Listener, q quiesceRules) {
	for i := range lines {
		if q.quiesced(lines[i].VIPA, lines[i].Port, "") {
			lines[i].State = vipa.StateQuiesced
		} else {
			lines[i].State = ""
		}
	}
}

// applyLocked makes node's DPT rows its last report with this routing
// node's drains applied, or on the rows of a VIPA this node stands by for,
// those its routing node shared (carry.go), and their health.
func (f *Fleet) applyLocked(node string) {
	lines := f.reports[node]
	rows := make([]tables.Row, len(lines))
	for i, l := range lines {
		rows[i] = rowOf(node, l)
		drains := f.drains
		if c := f.carriedFor(l.VIPA); c != nil {
			drains = c.drains // a standby row: its routing node's drains
		}
		if drains.quiesced(l.VIPA, l.Port, node) {
			rows[i].State = tables.Quiesced
		}
	}
	f.DPT.Replace(node, rows)
	f.carryHealthLocked(node, rows)
}

// logStates logs each line whose target turned quiesced or active since
// its last report, once.
func (f *Fleet) logStates(node string, old, lines []vipa.Listener) {
	for _, l := range lines {
		i := slices.IndexFunc(old, func(o vipa.Listener) bool { return o.VIPA == l.VIPA && o.Port == l.Port })
		was := i >= 0 && old[i].State == vipa.StateQuiesced
		if now := l.State == vipa.StateQuiesced; now != was && (i >= 0 || now) {
			f.logger.Info("target "+stateWord(now)+" its row", zap.Stringer("vipa", l.VIPA), zap.Uint16("port", l.Port), zap.String("node", node))
		}
	}
}

// OwnReport is a copy of this node's own report lines, as it sends them.
func (f *Fleet) OwnReport() []vipa.Listener {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.own)
}
