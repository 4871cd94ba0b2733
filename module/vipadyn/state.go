package vipadyn

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Configured is the rank of a VIPA's configured routing node, ahead of
// every backup.
const Configured = 0

// Member is one fleet member as serf and its tags show it.
type Member struct {
	Name  string
	Alive bool                  // serf says alive (not failed, leaving or left)
	Ranks map[netip.Addr]int    // VIPAs it can own: Configured or a backup rank
	Moves map[netip.Addr]string // VIPAs it hands to a named node (a manual move)

	// Claims are the VIPAs it routes now (the definitions it publishes);
	// Known says this node holds its current claims.
	Claims []netip.Addr
	Known  bool
}

// Config is this node's part: what it defines and backs up.
type Config struct {
	Node    string
	Defined []netip.Addr
	Backups []*vipa.Backup
}

// Inputs are one look at the fleet.
type Inputs struct {
	Now     time.Time
	Members []Member // this node's entry, if any, is ignored: its own state is here

	// Down are live members known to be gone before serf says so: missed
	// heartbeats confirmed by other members, or a goodbye.
	Down map[string]bool

	// Settled says the member list is worth deciding on: this node has
	// joined the fleet (or has no one to join) or waited long enough.
	Settled bool

	// Conns counts this node's routed connections on each VIPA, for a
	// when_idle takeback or move.
	Conns map[netip.Addr]int
}

// Row is one VIPA as this node sees it (GET /vipa/vipadyn).
type Row struct {
	VIPA   netip.Addr
	Status vipa.VIPADynStatus
	Rank   int    // this node's: Configured, a backup rank, or 0 when neither
	Owner  string // the node that routes it; empty while none does
	Since  time.Time
}

// Change is one change of a VIPA on this node, for the caller to act on.
type Change struct {
	Row
	OldStatus vipa.VIPADynStatus
	OldOwner  string
	Claim     bool // this node begins routing the VIPA
	Release   bool // this node stops routing it

	// HandOver: the release ends a hand-over (takeback or move); the node
	// may keep routing the VIPA a moment for clients still sent to it.
	// HandStart is when the hand-over began (the node named its successor,
	// before the successor claimed); zero if it had not.
	HandOver  bool
	HandStart time.Time

	// Announce: this node keeps routing the VIPA and another node that
	// routed it too (two owners after a partition) has given it up, or a
	// node that can own it has come back into view (it may have routed it
	// on its side of a partition and given it up before this node held
	// its claims); the link's neighbours may still send to that node until
	// this one announces the address again.
	Announce bool
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s→%s owner %q→%q claim=%v release=%v announce=%v", c.VIPA, c.OldStatus, c.Status, c.OldOwner, c.Owner, c.Claim, c.Release, c.Announce)
}

type move struct {
	to       string
	whenIdle bool
	since    time.Time
	// ready: since when this node, done with its connections (or not
	// waiting for them), names to in its tags and waits for to's claim
	// before it stops claiming. Zero while it quiesces.
	ready  time.Time
	manual bool // a move by hand, not a takeback
}

// handWait bounds how long a node handing a VIPA back to its configured
// routing node keeps claiming it while that node's claim has not arrived:
// then the ownership rule gives the VIPA to that node anyway.
const handWait = 2 * time.Second

// moveWait is handWait for a manual move, which the rule would not honour
// without the tags naming the target: long enough for a lost tag broadcast
// to be repaired by a push/pull (every 10 s with profile fast, 30 s on lan).
const moveWait = 40 * time.Second

type entry struct {
	row      Row
	claiming bool
	moved    bool      // claimed through a manual move: no takeback
	quiesce  time.Time // when a when_idle hand-over began; zero when none
	handing  *move     // a hand-over under way or done, until the target claims
	rival    bool      // another node routes it too while this one does

	// from is the node that handed the VIPA to this one and still claims
	// it, as it does until it holds this node's claim: no rival meanwhile.
	from string
}

// State is one node's view of VIPA ownership.
type State struct {
	cfg     Config
	rank    map[netip.Addr]int
	backups map[netip.Addr]*vipa.Backup
	vipas   map[netip.Addr]*entry

	// Live members whose claims this node has not held yet since they
	// came (alive) into view, and since when; those it has held once.
	unknown map[string]time.Time
	known   map[string]bool
}

// unknownWait bounds how long a live member whose claims this node has
// never held keeps it from claiming an unclaimed VIPA: the member may
// route it (a node that has just started sees members before it has
// their definitions), but one whose definitions never arrive must not
// stop a takeover for good.
const unknownWait = 3 * time.Second

// New returns the state of a node that routes nothing yet.
func New(cfg Config) *State {
	s := &State{vipas: map[netip.Addr]*entry{}, unknown: map[string]time.Time{}, known: map[string]bool{}}
	s.Configure(cfg)
	return s
}

// Configure installs a config; a VIPA this node routes stays claimed until
// the next Update decides.
func (s *State) Configure(cfg Config) {
	s.cfg = cfg
	s.rank = map[netip.Addr]int{}
	s.backups = map[netip.Addr]*vipa.Backup{}
	for _, v := range cfg.Defined {
		s.rank[v] = Configured
	}
	for _, b := range cfg.Backups {
		s.rank[b.VIPA] = b.Rank
		s.backups[b.VIPA] = b
	}
}

// Ranks are the VIPAs this node can own, for its tags.
func (s *State) Ranks() map[netip.Addr]int {
	out := make(map[netip.Addr]int, len(s.rank))
	for v, r := range s.rank {
		out[v] = r
	}
	return out
}

// Moves are the VIPAs this node hands to another node, for its tags: from
// when it is ready to let the VIPA go (a when_idle hand-over has quiesced)
// until the target claims it.
func (s *State) Moves() map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for v, e := range s.vipas {
		if e.handing != nil && !e.handing.ready.IsZero() {
			out[v] = e.handing.to
		}
	}
	return out
}

// Claimed lists the VIPAs this node routes.
func (s *State) Claimed() []netip.Addr {
	var out []netip.Addr
	for v, e := range s.vipas {
		if e.claiming {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Rows lists every VIPA this node knows, sorted.
func (s *State) Rows() []Row {
	out := make([]Row, 0, len(s.vipas))
	for _, e := range s.vipas {
		out = append(out, e.row)
	}
	slices.SortFunc(out, func(x, y Row) int { return x.VIPA.Compare(y.VIPA) })
	return out
}

// Move hands a VIPA this node routes to node to, now (its connections
// through the VIPA break) or when idle. to must be a live member that can
// own the VIPA; the move takes effect at the next Update.
func (s *State) Move(v netip.Addr, to string, whenIdle bool, members []Member, now time.Time) error {
	e := s.vipas[v]
	if e == nil || !e.claiming {
		if e != nil && e.row.Owner != "" {
			return fmt.Errorf("VIPA %s is not routed by this node: move it on its owner, %s", v, e.row.Owner)
		}
		return fmt.Errorf("VIPA %s is not routed by this node, nor by any other now", v)
	}
	if to == s.cfg.Node {
		return fmt.Errorf("VIPA %s is routed by %s already", v, to)
	}
	i := slices.IndexFunc(members, func(m Member) bool { return m.Name == to })
	if i < 0 || !members[i].Alive {
		return fmt.Errorf("node %q is not a live member", to)
	}
	if _, ok := members[i].Ranks[v]; !ok {
		return fmt.Errorf("node %q cannot own VIPA %s: it neither defines nor backs it up", to, v)
	}
	e.handing = &move{to: to, whenIdle: whenIdle, since: now, manual: true}
	e.quiesce = time.Time{}
	return nil
}

// Stop gives up every VIPA this node routes, for a graceful stop, and
// every claim to own one: Ranks is empty after it.
func (s *State) Stop(now time.Time) []Change {
	defer s.Configure(Config{Node: s.cfg.Node})
	var out []Change
	for _, v := range s.Claimed() {
		e := s.vipas[v]
		old := e.row
		e.claiming, e.moved, e.quiesce = false, false, time.Time{}
		e.row.Status, e.row.Owner, e.row.Since = vipa.StatusMoving, "", now
		out = append(out, Change{Row: e.row, OldStatus: old.Status, OldOwner: old.Owner, Release: true})
	}
	return out
}

// candidate is a member that may own a VIPA.
type candidate struct {
	name string
	rank int // Configured, a backup rank, or -1: no rank for this VIPA
}

// better orders candidates: configured routing node, higher rank, lower
// name.
func better(x, y candidate) bool {
	if x.rank != y.rank {
		if x.rank == Configured || y.rank == Configured {
			return x.rank == Configured
		}
		return x.rank > y.rank
	}
	return x.name < y.name
}

func compareCandidates(x, y candidate) int {
	if x == y {
		return 0
	}
	if better(x, y) {
		return -1
	}
	return 1
}

// rankOf is m's rank for v, or -1.
func rankOf(m *Member, v netip.Addr) int {
	if r, ok := m.Ranks[v]; ok {
		return r
	}
	return -1
}

// Update applies one look at the fleet and returns what changed here, in
// VIPA order.
func (s *State) Update(in Inputs) []Change {
	members := map[string]*Member{}
	vipas := map[netip.Addr]bool{}
	for v := range s.rank {
		vipas[v] = true
	}
	for v, e := range s.vipas {
		if e.claiming || e.handing != nil {
			vipas[v] = true
		}
	}
	for i := range in.Members {
		m := &in.Members[i]
		if m.Name == s.cfg.Node {
			continue
		}
		members[m.Name] = m
		for v := range m.Ranks {
			vipas[v] = true
		}
		for _, v := range m.Claims {
			vipas[v] = true
		}
	}
	live := func(name string) bool {
		if name == s.cfg.Node {
			return true
		}
		m := members[name]
		return m != nil && m.Alive && !in.Down[name]
	}
	arrived := s.noteKnown(members, live, in.Now)

	var out []Change
	order := make([]netip.Addr, 0, len(vipas))
	for v := range vipas {
		order = append(order, v)
	}
	slices.SortFunc(order, netip.Addr.Compare)
	for _, v := range order {
		if c, ok := s.decide(v, members, live, arrived, in); ok {
			out = append(out, c)
		}
	}
	for v, e := range s.vipas {
		if !vipas[v] && !e.claiming {
			delete(s.vipas, v) // no one defines, backs up or routes it any more
		}
	}
	return out
}

// decide applies the rule to one VIPA.
// arrived are the live members whose claims this node holds for the first
// time since they came into view.
func (s *State) decide(v netip.Addr, members map[string]*Member, live func(string) bool, arrived []string, in Inputs) (Change, bool) {
	e := s.vipas[v]
	if e == nil {
		e = &entry{row: Row{VIPA: v, Status: vipa.StatusNone, Since: in.Now}}
		s.vipas[v] = e
	}
	myRank, mine := s.rank[v]
	self := candidate{s.cfg.Node, -1}
	if mine {
		self.rank = myRank
	}

	// The live claimants other than this node, best first, and those whose
	// claims this node holds as current (Known). Only a known claim makes
	// this node give up a VIPA it routes: a member's claims held from before
	// it went silent are those of a process that may have been killed and
	// restarted since, claiming nothing now, before serf noticed.
	// A node handing the VIPA to this one (a move or a takeback) keeps
	// claiming it until it holds this node's claim: make before break. It
	// is no rival of this node meanwhile.
	if e.from != "" && (!live(e.from) || !slices.Contains(members[e.from].Claims, v)) {
		e.from = ""
	}
	handsHere := func(name string) bool {
		return name == e.from || s.movedHere(members[name], v)
	}
	var claimants, knownClaimants []candidate
	for name, m := range members {
		if live(name) && slices.Contains(m.Claims, v) && !handsHere(name) {
			c := candidate{name, rankOf(m, v)}
			claimants = append(claimants, c)
			if m.Known {
				knownClaimants = append(knownClaimants, c)
			}
		}
	}
	slices.SortFunc(claimants, compareCandidates)
	slices.SortFunc(knownClaimants, compareCandidates)
	// A routing node yields to no other node that defines the VIPA: two
	// definers are a conflict, shown and settled by the definitions'
	// rule, not here. It yields to a backup or a moved-to node.
	rivals, knownRivals := claimants, knownClaimants
	if self.rank == Configured {
		definer := func(c candidate) bool { return c.rank == Configured }
		rivals = slices.DeleteFunc(slices.Clone(claimants), definer)
		knownRivals = slices.DeleteFunc(slices.Clone(knownClaimants), definer)
	}

	old := e.row
	claim, release, announce, handed := false, false, false, false
	var handStart time.Time
	status, owner := vipa.StatusNone, ""
	if mine {
		status = vipa.StatusBackup
	}

	switch {
	case e.claiming && !mine:
		// No longer configured to own it (a move's target too: a move
		// goes only to a node that can own the VIPA).
		release = true
	case e.claiming && len(knownRivals) > 0 && better(knownRivals[0], self):
		// Two owners after a partition: the better one keeps it.
		release = true
	case e.claiming:
		if done, waiting := s.handOver(v, e, members, live, in); done {
			release = true
		} else {
			owner, status = s.cfg.Node, vipa.StatusActive
			if waiting {
				status = vipa.StatusMoving
			} else if !e.quiesce.IsZero() {
				status = vipa.StatusQuiescing
			}
			// Once no other node routes it: after a rival gave it up, or
			// when a node that may have routed it returns (it may have
			// given it up before its claim reached this node).
			announce = len(claimants) == 0 && (e.rival || slices.ContainsFunc(arrived, func(name string) bool {
				return hasRank(members[name], v) || slices.Contains(members[name].Claims, v)
			}))
			e.rival = len(claimants) > 0
		}
	case len(rivals) > 0:
		owner = shownOwner(rivals, knownRivals, old.Owner)
		if owner == "" && e.handing != nil {
			status = vipa.StatusMoving // no claim known yet: the hand-over goes on
		}
	default:
		if to := s.chosen(v, members, live, in); to != "" && to == s.cfg.Node && mine {
			claim = true
			owner, status = s.cfg.Node, vipa.StatusActive
		} else if e.handing != nil {
			status = vipa.StatusMoving
		}
	}
	if release {
		handed = e.handing != nil
		if handed {
			handStart = e.handing.ready
		}
		e.claiming, e.moved, e.quiesce, e.rival = false, false, time.Time{}, false
		status = vipa.StatusMoving
		if len(claimants) > 0 {
			owner = shownOwner(claimants, knownClaimants, "")
		}
	}
	if claim {
		e.claiming = true
		e.moved = false
		for _, m := range members {
			if live(m.Name) && s.movedHere(m, v) {
				e.moved = true
				if slices.Contains(m.Claims, v) {
					e.from = m.Name
				}
			}
		}
	}
	// A hand-over ends when its target (or anyone) is known to claim the
	// VIPA: not on a claim held from before a member went silent.
	if e.handing != nil && !e.claiming && (len(knownClaimants) > 0 || !canTake(members, live, e.handing.to, v)) {
		e.handing = nil
		if status == vipa.StatusMoving {
			status = vipa.StatusBackup
			if !mine {
				status = vipa.StatusNone
			}
		}
	}
	if status == vipa.StatusMoving && len(knownClaimants) > 0 && e.handing == nil {
		status = vipa.StatusBackup
		if !mine {
			status = vipa.StatusNone
		}
	}
	e.row.Status, e.row.Owner = status, owner
	e.row.Rank = max(self.rank, 0)
	if status == old.Status && owner == old.Owner && !claim && !release {
		e.row.Rank = old.Rank
		if announce {
			return Change{Row: e.row, OldStatus: old.Status, OldOwner: old.Owner, Announce: true}, true
		}
		return Change{}, false
	}
	e.row.Since = in.Now
	return Change{Row: e.row, OldStatus: old.Status, OldOwner: old.Owner, Claim: claim, Release: release, Announce: announce, HandOver: handed, HandStart: handStart}, true
}

// shownOwner is the owner a node that does not route v shows among its
// live claimants (best first): the best whose claims are known; while none
// is, the owner shown so far if it still claims (its new version is being
// fetched), else none: a claim held from before a member went silent may
// be a killed process's.
func shownOwner(claimants, known []candidate, shown string) string {
	if len(known) > 0 {
		return known[0].name
	}
	if shown != "" && slices.ContainsFunc(claimants, func(c candidate) bool { return c.name == shown }) {
		return shown
	}
	return ""
}

// chosen is the node that should claim an unclaimed VIPA, or "" while this
// node cannot tell yet.
func (s *State) chosen(v netip.Addr, members map[string]*Member, live func(string) bool, in Inputs) string {
	// A releasing owner's named successor goes first, this node's own
	// included.
	// A move's target must be able to own the VIPA, as Move requires: a
	// tag naming one that cannot (its config changed since) is no move.
	if e := s.vipas[v]; e != nil && e.handing != nil && canTake(members, live, e.handing.to, v) {
		return e.handing.to
	}
	for name, m := range members {
		if to := m.Moves[v]; to != "" && live(name) && (s.movedHere(m, v) || to != s.cfg.Node && canTake(members, live, to, v)) {
			return to
		}
	}
	if !in.Settled {
		return ""
	}
	for name, m := range members {
		if live(name) && !m.Known && !s.known[name] && in.Now.Sub(s.unknown[name]) < unknownWait {
			return "" // it may route the VIPA: wait for its claims
		}
	}
	var cands []candidate
	if r, ok := s.rank[v]; ok {
		cands = append(cands, candidate{s.cfg.Node, r})
	}
	for name, m := range members {
		r, ok := m.Ranks[v]
		if !ok || !live(name) || slices.Contains(m.Claims, v) {
			continue // a claimant that did not stop this node is a fellow definer
		}
		if !m.Known {
			return "" // it may hold the VIPA: wait until its claims are known
		}
		cands = append(cands, candidate{name, r})
	}
	if len(cands) == 0 {
		return ""
	}
	slices.SortFunc(cands, compareCandidates)
	return cands[0].name
}

// noteKnown follows which live members' claims this node has held since
// they came into view; a member out of view (gone, or down) starts afresh
// when it returns, as a restarted node may claim at once. It returns the
// members whose claims this node holds for the first time since then.
func (s *State) noteKnown(members map[string]*Member, live func(string) bool, now time.Time) (arrived []string) {
	for name, m := range members {
		switch {
		case !live(name):
			delete(s.known, name)
			delete(s.unknown, name)
		case m.Known:
			if !s.known[name] {
				arrived = append(arrived, name)
			}
			s.known[name] = true
			delete(s.unknown, name)
		case !s.known[name]:
			if _, ok := s.unknown[name]; !ok {
				s.unknown[name] = now
			}
		}
	}
	for name := range s.known {
		if members[name] == nil {
			delete(s.known, name)
		}
	}
	for name := range s.unknown {
		if members[name] == nil {
			delete(s.unknown, name)
		}
	}
	return arrived
}

// handOver says whether this node, routing v, gives it up now (done): a
// manual move, or a takeback to the configured routing node. A when_idle
// hand-over quiesces first; then the node names the target in its tags
// and keeps routing (waiting) until the target's claim arrives, handWait
// at most: a claim dropped before the tags that name the target would
// let the other nodes choose by rank.
func (s *State) handOver(v netip.Addr, e *entry, members map[string]*Member, live func(string) bool, in Inputs) (done, waiting bool) {
	var whenIdle bool
	var maxWait time.Duration
	switch {
	case e.handing != nil:
		if !canTake(members, live, e.handing.to, v) {
			// Gone, or no longer able to own it: no hand-over.
			e.handing, e.quiesce = nil, time.Time{}
			return false, false
		}
		whenIdle = e.handing.whenIdle
	case e.moved:
		return false, false
	default:
		b := s.backups[v]
		to := s.ownerBack(v, members, live)
		if b == nil || to == "" {
			e.quiesce = time.Time{}
			return false, false
		}
		whenIdle, maxWait = b.Takeback != vipa.TakebackImmediate, b.MaxWait
		if !whenIdle || in.Conns[v] == 0 || maxWait > 0 && !e.quiesce.IsZero() && in.Now.Sub(e.quiesce) >= maxWait {
			e.handing = &move{to: to, since: in.Now}
			return s.handReady(v, e, members, live, in.Now)
		}
	}
	if e.handing != nil && (!e.handing.ready.IsZero() || !whenIdle || in.Conns[v] == 0) {
		return s.handReady(v, e, members, live, in.Now)
	}
	if e.quiesce.IsZero() {
		e.quiesce = in.Now
	}
	return false, false
}

// handReady: the hand-over of v is ready; it is done once the target is
// known to claim v, or after handWait.
func (s *State) handReady(v netip.Addr, e *entry, members map[string]*Member, live func(string) bool, now time.Time) (done, waiting bool) {
	if e.handing.ready.IsZero() {
		e.handing.ready = now
	}
	if m := members[e.handing.to]; m != nil && live(m.Name) && m.Known && slices.Contains(m.Claims, v) {
		return true, false
	}
	wait := handWait
	if e.handing.manual {
		wait = moveWait
	}
	return now.Sub(e.handing.ready) >= wait, now.Sub(e.handing.ready) < wait
}

// ownerBack is v's configured routing node if it is live, known and
// waiting for its VIPA, else "".
func (s *State) ownerBack(v netip.Addr, members map[string]*Member, live func(string) bool) string {
	for name, m := range members {
		if hasRank(m, v) && m.Ranks[v] == Configured && live(name) && m.Known {
			return name
		}
	}
	return ""
}

// movedHere says whether m's tags hand v to this node by a move, which
// this node follows only if it can own v: Move refuses a target that
// neither defines nor backs up the VIPA, and a node without a name (no
// config yet) is no move's target.
func (s *State) movedHere(m *Member, v netip.Addr) bool {
	_, mine := s.rank[v]
	return mine && s.cfg.Node != "" && m.Moves[v] == s.cfg.Node
}

// canTake says whether the named member is live and can own v (defines
// or backs it up): a hand-over's target.
func canTake(members map[string]*Member, live func(string) bool, name string, v netip.Addr) bool {
	m := members[name]
	return m != nil && live(name) && hasRank(m, v)
}

func hasRank(m *Member, v netip.Addr) bool {
	_, ok := m.Ranks[v]
	return ok
}

// NeedsConns says whether Update will read Inputs.Conns: a VIPA this node
// routes may be handed over when idle.
func (s *State) NeedsConns() bool {
	for v, e := range s.vipas {
		if e.claiming && (e.handing != nil || s.backups[v] != nil) {
			return true
		}
	}
	return false
}
