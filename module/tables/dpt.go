package tables

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DPT is the destination port table. Writers are serialized by a mutex and
// publish a new immutable snapshot; readers load the current snapshot
// without locking. Use NewDPT to make one.
//
// VIPAs are unmapped (::ffff:a.b.c.d becomes a.b.c.d) on the way in, so a
// dual-stack listener's local address finds IPv4 rows.
type DPT struct {
	snap atomic.Pointer[snapshot]

	mu       sync.Mutex
	nodes    map[string]map[key]struct{} // groups holding a row of each node; guarded by mu
	policies map[netip.Addr]*compiled    // by VIPA; guarded by mu
}

type key struct {
	vipa netip.Addr
	port uint16
}

func keyOf(vipa netip.Addr, port uint16) key { return key{vipa.Unmap(), port} }

// snapshot is never modified once published.
type snapshot struct {
	groups map[key]*Group
	v4     map[uint64]*Group // groups' IPv4 VIPAs again, under v4Key: the connection path's lookup
	rows   int
}

// v4Key is an IPv4 VIPA and port as one word, which a map hashes and
// compares faster than key.
func v4Key(vipa netip.Addr, port uint16) uint64 {
	a := vipa.As4()
	return uint64(a[0])<<40 | uint64(a[1])<<32 | uint64(a[2])<<24 | uint64(a[3])<<16 | uint64(port)
}

// NewDPT returns an empty table.
func NewDPT() *DPT {
	d := &DPT{nodes: make(map[string]map[key]struct{}), policies: make(map[netip.Addr]*compiled)}
	d.snap.Store(&snapshot{groups: map[key]*Group{}, v4: map[uint64]*Group{}})
	return d
}

// Lookup returns the rows for (vipa, port), or nil when there are none. It
// is lock-free and allocates nothing.
func (d *DPT) Lookup(vipa netip.Addr, port uint16) *Group {
	s := d.snap.Load()
	if vipa.Is4() {
		return s.v4[v4Key(vipa, port)]
	}
	return s.groups[keyOf(vipa, port)]
}

// Len is the number of rows.
func (d *DPT) Len() int { return d.snap.Load().rows }

// Rows returns every row with its counters, sorted by VIPA, Port, Node. A
// hotstandby row that is not in use shows as Standby (see shown).
func (d *DPT) Rows() []Row {
	s := d.snap.Load()
	rows := make([]Row, 0, s.rows)
	for _, g := range s.groups {
		inUse := g.inUse()
		for _, t := range g.all {
			r := t.Row()
			shown(&r, t, inUse)
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b Row) int {
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

// Delete removes one row and reports whether it existed.
func (d *DPT) Delete(vipa netip.Addr, port uint16, node string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.edit()
	ok := e.delete(keyOf(vipa, port), node)
	e.commit()
	return ok
}

// DeleteNode removes every row of node, as when the fleet declares it failed
// or left, and returns how many there were.
func (d *DPT) DeleteNode(node string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.edit()
	n := 0
	for k := range d.nodes[node] {
		if e.delete(k, node) {
			n++
		}
	}
	e.commit()
	return n
}

// Replace makes node's rows exactly rows, in one snapshot: a reader sees the
// node's previous report or this one, never a mix. The rows' Node fields are
// ignored, rows with Ready <= 0 are absent, and of duplicate (VIPA, Port)
// rows the last wins.
func (d *DPT) Replace(node string, rows []Row) {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := make(map[key]struct{}, len(rows))
	for _, r := range rows {
		if r.Ready > 0 {
			want[keyOf(r.VIPA, r.Port)] = struct{}{}
		}
	}
	e := d.edit()
	for k := range d.nodes[node] {
		if _, ok := want[k]; !ok {
			e.delete(k, node)
		}
	}
	for _, r := range rows {
		r.Node = node
		e.set(r)
	}
	e.commit()
}

// SetPolicy makes p the distribution policy of vipa's groups, now and as
// rows come; nil restores the default, unweighted roundrobin.
func (d *DPT) SetPolicy(vipa netip.Addr, p *Policy) error {
	c, err := compile(p)
	if err != nil {
		return err
	}
	vipa = vipa.Unmap()
	d.mu.Lock()
	defer d.mu.Unlock()
	if p == nil {
		delete(d.policies, vipa)
	} else {
		d.policies[vipa] = c
	}
	e := d.edit()
	for k, g := range e.base.groups {
		if k.vipa == vipa {
			e.put(k, g.all)
		}
	}
	e.commit()
	return nil
}

func (d *DPT) policyOf(vipa netip.Addr) *compiled {
	if c := d.policies[vipa]; c != nil {
		return c
	}
	return defaultPolicy
}

// Refresh recomputes effective weights, which move with TSR and slow
// start, and publishes the groups whose weights changed. The routing node
// calls it periodically, off the connection path.
func (d *DPT) Refresh(now time.Time) {
	t := now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.edit()
	e.now = t
	for k, g := range e.base.groups {
		if !slices.Equal(g.effective(t), g.eff) {
			e.put(k, g.all)
		}
	}
	e.commit()
}

// Due returns the unhealthy rows whose probe is due, each once until its
// ProbeDone: the prober dials them and reports the outcomes.
func (d *DPT) Due(now time.Time) []*Target {
	t := now.UnixNano()
	var out []*Target
	for _, g := range d.snap.Load().groups {
		for _, r := range g.all {
			if r.takeDue(t) {
				out = append(out, r)
			}
		}
	}
	return out
}

// Demote makes every row of node unhealthy at once, as a timed-out dial
// does, and returns the rows that turned so: this node has taken node as
// gone before serf says so (its rows stay until then), and no new
// connection should wait out a dial timeout to learn it. A probe brings a
// row back once it answers.
func (d *DPT) Demote(node string, now time.Time) []*Target {
	var out []*Target
	for _, g := range d.snap.Load().groups {
		for _, r := range g.all {
			if r.Node == node && r.DialFailed(now, true) {
				out = append(out, r)
			}
		}
	}
	return out
}

// edit collects the changes of one write and publishes them as one snapshot.
type edit struct {
	d     *DPT
	base  *snapshot
	dirty map[key][]*Target // the complete new rows of each changed group
	attrs map[*Target]*attrs
	now   int64 // for effective weights
}

func (d *DPT) edit() *edit {
	return &edit{d: d, base: d.snap.Load(), now: time.Now().UnixNano()}
}

// rows returns the group's rows as this edit has left them so far.
func (e *edit) rows(k key) []*Target {
	if ts, ok := e.dirty[k]; ok {
		return ts
	}
	return e.base.groups[k].All()
}

func (e *edit) put(k key, ts []*Target) {
	if e.dirty == nil {
		e.dirty = make(map[key][]*Target)
	}
	e.dirty[k] = ts
}

func findNode(ts []*Target, node string) (int, bool) {
	return slices.BinarySearchFunc(ts, node, func(t *Target, n string) int { return cmp.Compare(t.Node, n) })
}

func (e *edit) set(r Row) {
	k := keyOf(r.VIPA, r.Port)
	if r.Ready <= 0 {
		e.delete(k, r.Node)
		return
	}
	r.VIPA = k.vipa
	ts := e.rows(k)
	i, found := findNode(ts, r.Node)
	if !found {
		e.put(k, slices.Insert(slices.Clone(ts), i, newTarget(r, nil)))
		e.d.index(r.Node, k, true)
		return
	}
	t := ts[i]
	if t.Address != r.Address {
		ts = slices.Clone(ts)
		ts[i] = newTarget(r, t.stats)
		e.put(k, ts)
		return
	}
	cur := e.attrs[t]
	if cur == nil {
		cur = t.attrs.Load()
	}
	if a := attrsOf(r); *a != *cur {
		if e.attrs == nil {
			e.attrs = make(map[*Target]*attrs)
		}
		e.attrs[t] = a
		// Rebuild the group even if only Ready changed: it is cheap, and
		// distmethods may precompute from the attributes.
		e.put(k, ts)
	}
}

func (e *edit) delete(k key, node string) bool {
	ts := e.rows(k)
	i, found := findNode(ts, node)
	if !found {
		return false
	}
	e.put(k, slices.Delete(slices.Clone(ts), i, i+1))
	e.d.index(node, k, false)
	return true
}

func (d *DPT) index(node string, k key, add bool) {
	ks := d.nodes[node]
	if add {
		if ks == nil {
			ks = make(map[key]struct{})
			d.nodes[node] = ks
		}
		ks[k] = struct{}{}
		return
	}
	delete(ks, k)
	if len(ks) == 0 {
		delete(d.nodes, node)
	}
}

func (e *edit) commit() {
	if len(e.dirty) == 0 {
		return
	}
	// Attributes are stored just before the snapshot that reflects them.
	for t, a := range e.attrs {
		t.attrs.Store(a)
	}
	next := &snapshot{
		groups: maps.Clone(e.base.groups),
		v4:     maps.Clone(e.base.v4),
		rows:   e.base.rows,
	}
	for k, ts := range e.dirty {
		old := e.base.groups[k]
		next.rows += len(ts) - len(old.All())
		if len(ts) == 0 {
			delete(next.groups, k)
			if k.vipa.Is4() {
				delete(next.v4, v4Key(k.vipa, k.port))
			}
			continue
		}
		st := new(groupState)
		if old != nil {
			st = old.st
		}
		g := newGroup(k, ts, st, e.d.policyOf(k.vipa), e.now)
		next.groups[k] = g
		if k.vipa.Is4() {
			next.v4[v4Key(k.vipa, k.port)] = g
		}
	}
	e.d.snap.Store(next)
}

// Target returns the row of node on (vipa, port), or nil.
func (d *DPT) Target(vipa netip.Addr, port uint16, node string) *Target {
	g := d.Lookup(vipa, port)
	if g == nil {
		return nil
	}
	for _, t := range g.all {
		if t.Node == node {
			return t
		}
	}
	return nil
}
