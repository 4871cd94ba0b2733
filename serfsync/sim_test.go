package serfsync

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// A deterministic fleet of cores: one event queue on a virtual clock, one
// seeded random source, no goroutine, no socket. It stands in for what
// the shell and serf do around each core: serf's member views (gossip with
// loss, failure detection, push-pull, partitions), the tagger, the
// fetchers (syncs that are lost, duplicated, delayed and reordered), the
// reconcile timer and process restarts.

// simConfig shapes a simulated fleet.
type simConfig struct {
	nodes, ports int
	period       time.Duration // reconcile period
	pushPull     time.Duration // serf's full state exchange, per node
	detect       time.Duration // failure detection, at most
	reconnect    time.Duration // a healed partition seen again, at most
}

// simMember is serf's word on a node: one immutable snapshot per change.
type simMember struct {
	alive bool
	tags  map[string]string
}

type simNode struct {
	i    int
	name string
	ip   netip.Addr
	addr netip.AddrPort

	up    bool
	inc   int                // process incarnation: events for an older one are void
	state *simMember         // what serf gossips about this node (the truth)
	core  *core              // nil while down
	view  []*simMember       // its serf's view of every node; nil: unknown
	news  map[int]bool       // members whose view changed since the last step
	dup   map[int]bool       // members whose unchanged view is handed in again
	ls    []vipa.Listener    // what it listens on
	lines []vipa.Listener    // ls, canonical
	defs  []*vipa.Definition // what it routes; survives restarts
	dpt   map[string][]vipa.Listener
	known []KnownDefinition

	stepping  bool          // a step is scheduled
	wakeAt    time.Duration // a step is scheduled then (0: none)
	tagging   bool          // a tag publication is scheduled
	stats     *stats
	published int // tag publications
}

type simEvent struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// simQueue is a binary heap of events by time, then by order of scheduling,
// held by value.
type simQueue []simEvent

func (q simQueue) less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}

func (q *simQueue) push(e simEvent) {
	*q = append(*q, e)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *simQueue) pop() simEvent {
	h := *q
	e := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = simEvent{}
	h = h[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && h.less(l, m) {
			m = l
		}
		if r < len(h) && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return e
}

type sim struct {
	cfg   simConfig
	seedV uint64
	rng   *rand.Rand
	epoch time.Time
	now   time.Duration
	q     simQueue
	seq   uint64
	nodes []*simNode
	byIP  map[netip.Addr]*simNode

	loss    float64 // of each sync message and each gossiped tag update
	dup     float64 // of each sync request served and member event
	slow    float64 // of messages held up 50–500 ms (reordered)
	side    []int   // partition side of each node; one side: whole
	settled time.Duration

	scratch []memberView // a step's member views

	events, syncs, failed uint64
	lastView              time.Duration // the last change of any serf view
}

var (
	errSimDown      = errors.New("connection refused")
	errSimTimeout   = errors.New("i/o timeout")
	errSimPartition = errors.New("dial timeout: partitioned")
)

func newSim(seed uint64, cfg simConfig) *sim {
	s := &sim{cfg: cfg, seedV: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		epoch: time.Unix(1_700_000_000, 0), byIP: map[netip.Addr]*simNode{}}
	for i := range cfg.nodes {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		n := &simNode{i: i, name: fmt.Sprintf("n%03d", i), ip: ip, addr: netip.AddrPortFrom(ip, 7946),
			view: make([]*simMember, cfg.nodes), dpt: map[string][]vipa.Listener{}}
		s.nodes = append(s.nodes, n)
		s.byIP[ip] = n
	}
	s.side = make([]int, cfg.nodes)
	return s
}

func (s *sim) seed() uint64 { return s.seedV }

func (s *sim) clock() time.Time { return s.epoch.Add(s.now) }

// at runs fn after d of virtual time.
func (s *sim) at(d time.Duration, fn func()) {
	s.seq++
	s.q.push(simEvent{at: s.now + d, seq: s.seq, fn: fn})
}

// run runs events until the clock reaches until.
func (s *sim) run(until time.Duration) {
	for len(s.q) > 0 && s.q[0].at <= until {
		e := s.q.pop()
		s.now = e.at
		s.events++
		e.fn()
	}
	s.now = until
}

// between draws a duration in [lo, hi).
func (s *sim) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// latency is one message's delay: most are quick, some are held up, so
// messages overtake each other.
func (s *sim) latency() time.Duration {
	if s.rng.Float64() < s.slow {
		return s.between(50*time.Millisecond, 500*time.Millisecond)
	}
	return s.between(100*time.Microsecond, 2*time.Millisecond)
}

func (s *sim) reachable(a, b *simNode) bool { return s.side[a.i] == s.side[b.i] }

// alive is an up node's own process, for events queued for it.
func (n *simNode) current(inc int) bool { return n.up && n.inc == inc }

// kick schedules a step of n soon, once: the worker's coalescing.
func (s *sim) kick(n *simNode) {
	if n.stepping || !n.up {
		return
	}
	n.stepping = true
	inc := n.inc
	s.at(s.between(10*time.Microsecond, 200*time.Microsecond), func() {
		if n.current(inc) {
			n.stepping = false
			s.step(n)
		}
	})
}

// step is the shell's worker round: member views in, actions out.
func (s *sim) step(n *simNode) {
	now := s.clock()
	if due, _ := n.core.listDue(now); due {
		vs := s.scratch[:0]
		for j, m := range n.view {
			if m != nil {
				vs = append(vs, s.memberView(s.nodes[j], m))
			}
		}
		n.core.membersListed(vs, now)
		s.scratch = vs
		clear(n.news)
		clear(n.dup)
	} else if len(n.news)+len(n.dup) > 0 {
		for j := range n.news {
			delete(n.dup, j)
		}
		vs := s.scratch[:0]
		for _, j := range slices.Sorted(maps.Keys(n.news)) {
			vs = append(vs, s.memberView(s.nodes[j], n.view[j]))
		}
		for _, j := range slices.Sorted(maps.Keys(n.dup)) {
			vs = append(vs, s.memberView(s.nodes[j], n.view[j]))
		}
		n.core.membersChanged(vs)
		s.scratch = vs
		clear(n.news)
		clear(n.dup)
	}
	acts := n.core.step(now)
	for _, name := range acts.gone {
		delete(n.dpt, name)
	}
	if acts.defsChanged {
		n.known = acts.defs
	}
	for _, r := range acts.reports {
		if len(r.rows) == 0 {
			delete(n.dpt, r.node)
		} else {
			n.dpt[r.node] = r.rows
		}
	}
	if acts.tags {
		s.publishSoon(n)
	}
	for _, j := range acts.syncs {
		s.send(n, j)
	}
	if !acts.wake.IsZero() {
		d := max(acts.wake.Sub(now), time.Millisecond)
		if n.wakeAt == 0 || s.now+d < n.wakeAt {
			n.wakeAt = s.now + d
			inc := n.inc
			s.at(d, func() {
				if n.current(inc) && n.wakeAt == s.now {
					n.wakeAt = 0
					s.kick(n)
				}
			})
		}
	}
}

func (s *sim) memberView(m *simNode, st *simMember) memberView {
	return memberView{name: m.name, addr: m.addr, alive: st.alive, tags: st.tags}
}

// publishSoon is the tagger: after its debounce, the node's digests become
// its serf state and are gossiped.
func (s *sim) publishSoon(n *simNode) {
	if n.tagging {
		return
	}
	n.tagging = true
	inc := n.inc
	s.at(tagDebounce, func() {
		if !n.current(inc) {
			return
		}
		n.tagging = false
		if tags := simTags(n); !sameTags(tags, n.state.tags) { // the tagger's compare
			s.setState(n, &simMember{alive: true, tags: tags})
		}
	})
}

func simTags(n *simNode) map[string]string {
	return map[string]string{tagAdvertise: n.ip.String(),
		tagReport: n.core.own.report.digest.String(), tagDefs: n.core.own.defs.digest.String()}
}

// setState changes what serf says of n and gossips it: each node that can
// hear it learns it after a gossip delay. A change of tags alone may be
// lost (memberlist drops queued broadcasts) and is then learned at the
// next push-pull; a node's coming and going is not (serf retransmits it
// and reconnects).
func (s *sim) setState(n *simNode, st *simMember) {
	lossy := n.state != nil && n.state.alive == st.alive
	n.state = st
	n.published++
	for _, o := range s.nodes {
		if o != n && o.up && !(lossy && s.rng.Float64() < s.loss) {
			s.learnLater(o, n, s.between(5*time.Millisecond, 300*time.Millisecond))
		}
	}
}

// learnAllLater has o's serf look at ns again, in a few batches within
// [lo, hi): serf notices a partition's far side over a few probe rounds.
func (s *sim) learnAllLater(o *simNode, ns []*simNode, lo, hi time.Duration) {
	const batches = 4
	inc := o.inc
	for b := range batches {
		part := ns[len(ns)*b/batches : len(ns)*(b+1)/batches]
		if len(part) == 0 {
			continue
		}
		s.at(s.between(lo, hi), func() {
			if o.current(inc) {
				for _, n := range part {
					s.learn(o, n)
				}
			}
		})
	}
}

// learnLater has o's serf look at n again after d: it sees n's state if
// it can reach n, else n failed.
func (s *sim) learnLater(o, n *simNode, d time.Duration) {
	inc := o.inc
	s.at(d, func() {
		if o.current(inc) {
			s.learn(o, n)
		}
	})
}

func (s *sim) learn(o, n *simNode) {
	st := n.state
	if st == nil {
		return // never started
	}
	if !s.reachable(o, n) && st.alive {
		if old := o.view[n.i]; old == nil || !old.alive {
			return
		}
		st = &simMember{alive: false, tags: o.view[n.i].tags}
	}
	old := o.view[n.i]
	if old == st || old != nil && old.alive == st.alive && sameTags(old.tags, st.tags) {
		if s.rng.Float64() < s.dup {
			o.dup[n.i] = true // serf says the same again
			s.kick(o)
		}
		return
	}
	o.view[n.i] = st
	o.news[n.i] = true
	s.lastView = s.now
	s.kick(o)
}

func sameTags(x, y map[string]string) bool {
	return x[tagAdvertise] == y[tagAdvertise] && x[tagReport] == y[tagReport] && x[tagDefs] == y[tagDefs]
}

// pushPull is serf's periodic full state exchange: o learns every node it
// can reach, and that every node it cannot is failed.
func (s *sim) pushPull(o *simNode) {
	for _, n := range s.nodes {
		if n != o {
			s.learn(o, n)
		}
	}
}

// send runs one sync the core handed out, as the fetcher and the peer's
// server would, through the codecs.
func (s *sim) send(n *simNode, job syncJob) {
	s.syncs++
	inc := n.inc
	end := func(d time.Duration, ans syncAnswer, err error) {
		if err != nil {
			s.failed++
		}
		s.at(d, func() {
			if n.current(inc) {
				n.core.answered(job, ans, err, s.clock())
				s.kick(n)
			}
		})
	}
	p := s.byIP[job.addr.Addr()]
	if p == nil || job.addr != p.addr || job.peer != p.name {
		end(dialTimeout, syncAnswer{}, errSimTimeout)
		return
	}
	if !s.reachable(n, p) {
		end(dialTimeout, syncAnswer{}, errSimPartition)
		return
	}
	if s.rng.Float64() < s.loss {
		end(exchangeTimeout, syncAnswer{}, errSimTimeout) // the request is lost
		return
	}
	out := s.latency()
	s.at(out, func() {
		if !p.up {
			end(s.latency(), syncAnswer{}, errSimDown)
			return
		}
		if !s.reachable(n, p) {
			end(exchangeTimeout-out, syncAnswer{}, errSimTimeout)
			return
		}
		req, err := decodeSyncRequest(job.req.encode())
		if err != nil {
			panic(err)
		}
		ans := p.core.answer(req)
		s.kick(p)
		if s.rng.Float64() < s.dup { // served twice
			pinc := p.inc
			s.at(s.latency(), func() {
				if p.current(pinc) {
					p.core.answer(req)
					s.kick(p)
				}
			})
		}
		if s.rng.Float64() < s.loss {
			end(exchangeTimeout-out, syncAnswer{}, errSimTimeout) // the answer is lost
			return
		}
		got, err := decodeSyncAnswer(ans.encode())
		if err != nil {
			panic(err)
		}
		end(s.latency(), got, nil)
	})
}

// start runs n's process: a new core (new generation), its report and
// definitions, serf joining the fleet, the reconcile timer and push-pull.
func (s *sim) start(n *simNode) {
	n.up = true
	n.inc++
	n.stats = &stats{}
	n.core = newCore(n.name, n.ip, s.rng.Uint64()|1, s.cfg.period, zap.NewNop(), n.stats)
	n.news, n.dup = map[int]bool{}, map[int]bool{}
	n.dpt, n.known = map[string][]vipa.Listener{}, nil
	n.stepping, n.tagging, n.wakeAt = false, false, 0
	clear(n.view)
	now := s.clock()
	if n.defs != nil {
		n.core.setDefinitions(n.defs, now)
	}
	n.core.setReport(n.ls)
	st := &simMember{alive: true, tags: simTags(n)}
	n.view[n.i] = st
	s.setState(n, st)
	// Joining: a push-pull with a member, after a round trip or a few.
	inc := n.inc
	s.at(s.between(time.Millisecond, 50*time.Millisecond), func() {
		if n.current(inc) {
			s.pushPull(n)
		}
	})
	s.tickLater(n)
	s.pushPullLater(n)
	s.kick(n)
}

func (s *sim) tickLater(n *simNode) {
	inc := n.inc
	s.at(jitterWith(s.rng, s.cfg.period/sweepSlots), func() {
		if n.current(inc) {
			n.core.tick()
			s.kick(n)
			s.tickLater(n)
		}
	})
}

func (s *sim) pushPullLater(n *simNode) {
	inc := n.inc
	s.at(jitterWith(s.rng, s.cfg.pushPull), func() {
		if n.current(inc) {
			s.pushPull(n)
			s.pushPullLater(n)
		}
	})
}

// jitterWith is jitter drawn from r.
func jitterWith(r *rand.Rand, d time.Duration) time.Duration {
	return d - d/10 + time.Duration(r.Int64N(int64(d/5)+1))
}

// stop ends n's process: crashed, its peers notice within detect; or
// left, they hear it at once.
func (s *sim) stop(n *simNode, graceful bool) {
	if !n.up {
		return
	}
	n.up, n.core = false, nil
	st := &simMember{alive: false, tags: n.state.tags}
	if graceful {
		s.setState(n, st)
		return
	}
	n.state = st
	for _, o := range s.nodes {
		if o != n && o.up {
			s.learnLater(o, n, s.between(s.cfg.detect/4, s.cfg.detect))
		}
	}
}

// partition cuts the fleet in two; each side sees the other failed within
// detect.
func (s *sim) partition(far []*simNode) {
	for _, n := range far {
		s.side[n.i] = 1
	}
	s.crossLearn(s.side, s.cfg.detect/4, s.cfg.detect)
}

// heal joins the sides; each sees the other again within reconnect.
func (s *sim) heal() {
	was := slices.Clone(s.side)
	clear(s.side)
	s.crossLearn(was, s.cfg.reconnect/10, s.cfg.reconnect)
}

// crossLearn has every up node look again at the nodes on another side.
func (s *sim) crossLearn(side []int, lo, hi time.Duration) {
	for _, o := range s.nodes {
		var far []*simNode
		for _, n := range s.nodes {
			if o.up && side[o.i] != side[n.i] {
				far = append(far, n)
			}
		}
		s.learnAllLater(o, far, lo, hi)
	}
}

// setReport changes a node's listeners.
func (s *sim) setReport(n *simNode, ls []vipa.Listener) {
	n.ls, n.lines = ls, canonicalListeners(ls)
	if n.up {
		n.core.setReport(ls)
		s.kick(n)
	}
}

// setDefinitions changes what n routes (a reload).
func (s *sim) setDefinitions(n *simNode, defs []*vipa.Definition) {
	n.defs = defs
	if n.up {
		n.core.setDefinitions(defs, s.clock())
		s.kick(n)
	}
}

// owners are the definitions of the up nodes, the owner of each VIPA
// first: earliest Since, then lowest routing node.
func (s *sim) owners() map[netip.Addr][]*vipa.Definition {
	out := map[netip.Addr][]*vipa.Definition{}
	for _, n := range s.nodes {
		if n.up {
			for _, d := range n.core.own.defs.defs {
				out[d.VIPA] = append(out[d.VIPA], d)
			}
		}
	}
	for _, ds := range out {
		slices.SortFunc(ds, func(x, y *vipa.Definition) int {
			if x.Since != y.Since {
				return int(x.Since - y.Since)
			}
			return compareStrings(x.RoutingNode, y.RoutingNode)
		})
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// truth is what each routing node's DPT must be: every up node's lines
// for the VIPAs it owns, in the owner's ports, from a candidate, at the
// node's address.
func (s *sim) truth(owners map[netip.Addr][]*vipa.Definition) map[string]map[string][]vipa.Listener {
	out := map[string]map[string][]vipa.Listener{}
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		for _, l := range n.lines {
			ds := owners[l.VIPA]
			if len(ds) == 0 || !ds[0].Ports.Contains(l.Port) || !ds[0].Candidate(n.name, n.ip) {
				continue
			}
			r := ds[0].RoutingNode
			if out[r] == nil {
				out[r] = map[string][]vipa.Listener{}
			}
			out[r][n.name] = append(out[r][n.name], vipa.Listener{VIPA: l.VIPA, Port: l.Port,
				Address: netip.AddrPortFrom(n.ip, l.Port), Ready: l.Ready, Conns: l.Conns, State: l.State, Weight: l.Weight})
		}
	}
	return out
}

// wrongDPTs lists the up routing nodes whose DPT is not the truth.
func (s *sim) wrongDPTs(routers []*simNode) []string {
	truth := s.truth(s.owners())
	var out []string
	for _, r := range routers {
		want := truth[r.name]
		if want == nil {
			want = map[string][]vipa.Listener{}
		}
		if r.up && !equalDPT(r.dpt, want) {
			out = append(out, r.name+":"+diffDPT(r.dpt, want))
		}
	}
	return out
}

// wrongKnown lists the up nodes whose known definitions (as the last
// OnDefinitions gave them) are not every up routing node's, with the
// owner marked and conflicts flagged.
func (s *sim) wrongKnown() []string {
	var want []KnownDefinition
	for _, ds := range s.owners() {
		for i, d := range ds {
			want = append(want, KnownDefinition{Definition: *d, Owner: i == 0, Conflict: map[bool]string{true: "x"}[len(ds) > 1]})
		}
	}
	slices.SortFunc(want, func(x, y KnownDefinition) int {
		if c := x.VIPA.Compare(y.VIPA); c != 0 {
			return c
		}
		return compareStrings(x.RoutingNode, y.RoutingNode)
	})
	var out []string
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		ok := len(n.known) == len(want)
		for i := 0; ok && i < len(want); i++ {
			k, w := n.known[i], want[i]
			ok = k.Definition.Equal(&w.Definition) && k.Owner == w.Owner && (k.Conflict != "") == (w.Conflict != "")
		}
		if !ok {
			out = append(out, fmt.Sprintf("%s knows %v", n.name, n.known))
		}
	}
	return out
}

// fingerprint hashes the routing nodes' DPTs and the run's counts, to see
// that one seed replays one run.
func (s *sim) fingerprint(routers []*simNode) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, s.events, s.syncs, s.failed)
	for _, r := range routers {
		for _, k := range slices.Sorted(mapKeysS(r.dpt)) {
			fmt.Fprint(h, r.name, k, r.dpt[k])
		}
	}
	return h.Sum64()
}

func mapKeysS(m map[string][]vipa.Listener) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
