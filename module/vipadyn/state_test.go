package vipadyn

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

var vip = netip.MustParseAddr("10.0.0.100")

// world runs nodes' states against each other: each round every node sees
// what the others published the round before, as gossip would show it.
type world struct {
	t      *testing.T
	now    time.Time
	nodes  map[string]*node
	order  []string
	group  map[string]int // partition of each node; nodes see only their own group
	log    []string       // ownership changes, as the nodes logged them
	byNode map[string][]Change
	known  bool
	settle bool

	// tagLag delays the Ranks and Moves the others see of a node by that
	// many rounds, while its claims arrive at once: in the fleet the tags
	// travel by serf gossip and the claims (definitions) by a direct
	// exchange, so a claim can drop before the tag that says why.
	tagLag int
	tags   map[string][]tagView // each node's published tags, latest last
}

type tagView struct {
	ranks map[netip.Addr]int
	moves map[netip.Addr]string
}

type node struct {
	s     *State
	up    bool
	conns map[netip.Addr]int
	down  map[string]bool // goodbyes heard

	// held, when set, is what the nodes in heldBy hold of the node's claims
	// instead of what its state claims: those of a process killed (dead) or
	// restarted since they last fetched them. A process started since
	// holds nothing of it.
	held   *Member
	heldBy map[string]bool
	dead   bool // killed before serf noticed: its state runs no more
}

func newWorld(t *testing.T) *world {
	return &world{t: t, now: time.Unix(1e9, 0), nodes: map[string]*node{}, group: map[string]int{}, byNode: map[string][]Change{}, known: true, settle: true}
}

// member is a node to start: rank Configured defines vip, a positive
// rank backs it up, -1 is a target only.
type member struct {
	name     string
	rank     int
	takeback string
	maxWait  time.Duration
}

// aRoutes starts a, defining vip, and the members given, and settles with
// a as the owner.
func aRoutes(t *testing.T, ms ...member) *world {
	t.Helper()
	w := newWorld(t)
	w.add("a", Configured, "", 0)
	for _, m := range ms {
		w.add(m.name, m.rank, m.takeback, m.maxWait)
	}
	w.wantOwner("a")
	return w
}

// add starts a node: rank Configured defines vip, a positive rank backs it up.
func (w *world) add(name string, rank int, takeback string, maxWait time.Duration) {
	cfg := Config{Node: name}
	if rank == Configured {
		cfg.Defined = []netip.Addr{vip}
	} else if rank > 0 {
		cfg.Backups = []*vipa.Backup{{VIPA: vip, Rank: rank, Takeback: takeback, MaxWait: maxWait}}
	}
	w.nodes[name] = &node{s: New(cfg), up: true, conns: map[netip.Addr]int{}, down: map[string]bool{}}
	if !slices.Contains(w.order, name) {
		w.order = append(w.order, name)
	}
}

func (w *world) sees(a, b string) bool {
	return w.nodes[a].up && w.nodes[b].up && w.group[a] == w.group[b]
}

// members is what a sees of the fleet.
func (w *world) members(a string) []Member {
	var out []Member
	for _, b := range w.order {
		if b == a {
			continue
		}
		nb := w.nodes[b]
		m := Member{
			Name: b, Alive: w.sees(a, b), Ranks: nb.s.Ranks(), Moves: nb.s.Moves(),
			Claims: nb.s.Claimed(), Known: w.known,
		}
		if h := w.tags[b]; w.tagLag > 0 && len(h) > 0 {
			tv := h[max(0, len(h)-1-w.tagLag)]
			m.Ranks, m.Moves = maps.Clone(tv.ranks), tv.moves
			for _, v := range m.Claims { // as the fleet reads a claim
				if _, ok := m.Ranks[v]; !ok {
					m.Ranks[v] = Configured
				}
			}
		}
		if nb.held != nil {
			m.Claims, m.Known = nil, false
			if nb.heldBy[a] {
				m.Claims, m.Known = nb.held.Claims, nb.held.Known
			}
		}
		out = append(out, m)
	}
	return out
}

// round lets every node look once; it returns whether anything changed.
func (w *world) round() bool {
	w.now = w.now.Add(100 * time.Millisecond)
	if w.tags == nil {
		w.tags = map[string][]tagView{}
	}
	for _, n := range w.order {
		// As the fleet's tags: a defining node's rank is left out while it
		// routes the VIPA (its claim says so), unless it hands it over.
		st := w.nodes[n].s
		ranks, moves := st.Ranks(), st.Moves()
		for _, v := range st.Claimed() {
			if ranks[v] == Configured && moves[v] == "" {
				delete(ranks, v)
			}
		}
		w.tags[n] = append(w.tags[n], tagView{ranks, moves})
	}
	views := map[string][]Member{}
	for _, n := range w.order {
		views[n] = w.members(n)
	}
	changed := false
	for _, n := range w.order {
		nd := w.nodes[n]
		if !nd.up || nd.dead {
			continue
		}
		for _, c := range nd.s.Update(Inputs{Now: w.now, Members: views[n], Down: nd.down, Settled: w.settle, Conns: nd.conns}) {
			changed = true
			w.log = append(w.log, n+": "+c.String())
			w.byNode[n] = append(w.byNode[n], c)
		}
	}
	return changed
}

// settle runs rounds until nothing changes.
func (w *world) settleDown() {
	w.t.Helper()
	quiet := 0
	for range 20 + 3*w.tagLag {
		if w.round() {
			quiet = 0
		} else if quiet++; quiet > w.tagLag {
			return
		}
	}
	w.t.Fatalf("no steady state after 20 rounds:\n%v", w.log)
}

// owner checks that exactly one up node routes vip and every up node
// agrees on it, and returns it ("" if none routes it).
func (w *world) owner() string {
	w.t.Helper()
	var claimers []string
	for _, n := range w.order {
		if w.running(n) && slices.Contains(w.nodes[n].s.Claimed(), vip) {
			claimers = append(claimers, n)
		}
	}
	if len(claimers) > 1 {
		w.t.Fatalf("VIPA routed by %v at once", claimers)
	}
	want := ""
	if len(claimers) == 1 {
		want = claimers[0]
	}
	for _, n := range w.order {
		if !w.running(n) {
			continue
		}
		if r := w.row(n); r.Owner != want {
			w.t.Fatalf("%s says owner %q, want %q\n%v", n, r.Owner, want, w.log)
		}
	}
	return want
}

// running: the node's process runs and the others see it.
func (w *world) running(n string) bool { return w.nodes[n].up && !w.nodes[n].dead }

// kill ends n's process before serf notices: the others still see it
// alive and hold its claims as last fetched, and take it as down (their
// own detection is faster than serf's).
func (w *world) kill(n string) {
	nd := w.nodes[n]
	nd.held = &Member{Claims: nd.s.Claimed(), Known: true}
	nd.heldBy = map[string]bool{}
	nd.dead = true
	for _, o := range w.order {
		if o != n {
			w.nodes[o].down[n] = true
			nd.heldBy[o] = w.running(o)
		}
	}
}

// restart starts a new process of n, still before serf noticed the old
// one gone: the others hear it again and no longer take it as down, but
// hold the old process's claims, not known to be current, until fresh.
func (w *world) restart(n string, rank int, takeback string, maxWait time.Duration) {
	old := w.nodes[n]
	w.add(n, rank, takeback, maxWait)
	w.nodes[n].held, w.nodes[n].heldBy = &Member{Claims: old.held.Claims}, old.heldBy
	for _, o := range w.order {
		delete(w.nodes[o].down, n)
		if h := w.nodes[o].heldBy; h != nil {
			delete(h, n) // the new process holds nothing of o's old one
		}
	}
}

// fresh: the others have fetched n's current claims.
func (w *world) fresh(n string) { w.nodes[n].held, w.nodes[n].heldBy = nil, nil }

func (w *world) row(n string) Row {
	for _, r := range w.nodes[n].s.Rows() {
		if r.VIPA == vip {
			return r
		}
	}
	return Row{}
}

func (w *world) status(n string) vipa.VIPADynStatus { return w.row(n).Status }

func (w *world) wantOwner(want string) {
	w.t.Helper()
	w.settleDown()
	if got := w.owner(); got != want {
		w.t.Fatalf("owner %q, want %q\n%v", got, want, w.log)
	}
}

func TestRanks(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0}, member{"c", 50, "", 0}, member{"d", -1, "", 0})
	if s := w.status("a"); s != vipa.StatusActive {
		t.Fatalf("a: %s", s)
	}
	if s, r := w.status("b"), w.row("b").Rank; s != vipa.StatusBackup || r != 100 {
		t.Fatalf("b: %s rank %d", s, r)
	}
	if s := w.status("d"); s != vipa.StatusNone {
		t.Fatalf("d: %s", s)
	}
	w.nodes["a"].up = false
	w.wantOwner("b")
	w.nodes["b"].up = false
	w.wantOwner("c")
	w.nodes["c"].up = false
	w.wantOwner("")
}

func TestTiesGoToTheLowerName(t *testing.T) {
	w := aRoutes(t, member{"c", 100, "", 0}, member{"b", 100, "", 0})
	w.nodes["a"].up = false
	w.wantOwner("b")
}

// A partition gives each side an owner; the heal leaves one, the
// configured routing node, whatever the backups' takeback.
func TestPartitionHeals(t *testing.T) {
	for _, split := range [][]string{{"a"}, {"a", "c"}, {"b"}} {
		t.Run(fmt.Sprint(split), func(t *testing.T) {
			w := aRoutes(t, member{"b", 100, vipa.TakebackWhenIdle, time.Hour}, member{"c", 50, "", 0})
			w.nodes["b"].conns[vip] = 5 // when_idle would wait: a heal must not
			for _, n := range split {
				w.group[n] = 1
			}
			w.settleDown()
			for _, n := range w.order {
				if !slices.Contains(w.nodes[n].s.Claimed(), vip) {
					continue
				}
				if w.group[n] == w.group["a"] && n != "a" {
					t.Fatalf("%s routes on a's side", n)
				}
			}
			w.group = map[string]int{}
			w.wantOwner("a")
		})
	}
}

// A configured routing node that restarts waits for its backup to give the
// VIPA back; immediate gives it at once.
func TestTakebackImmediate(t *testing.T) {
	w := aRoutes(t, member{"b", 100, vipa.TakebackImmediate, 0})
	w.nodes["a"].up = false
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 5
	w.add("a", Configured, "", 0) // a new process
	w.round()
	if s := w.status("a"); s != vipa.StatusBackup {
		t.Fatalf("restarted a: %s, want backup while b holds the VIPA", s)
	}
	w.round()
	if s := w.status("b"); s != vipa.StatusMoving {
		t.Fatalf("b: %s, want moving", s)
	}
	w.wantOwner("a")
	if s := w.status("b"); s != vipa.StatusBackup {
		t.Fatalf("b after the takeback: %s", s)
	}
}

func TestTakebackWhenIdle(t *testing.T) {
	w := aRoutes(t, member{"b", 100, vipa.TakebackWhenIdle, time.Minute})
	w.nodes["a"].up = false
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 2
	w.add("a", Configured, "", 0)
	w.settleDown()
	if got := w.owner(); got != "b" || w.status("b") != vipa.StatusQuiescing || w.status("a") != vipa.StatusBackup {
		t.Fatalf("owner %s, b %s, a %s: want b quiescing while it has connections", got, w.status("b"), w.status("a"))
	}
	w.nodes["b"].conns[vip] = 0
	w.wantOwner("a")

	// max_wait: connections that never end.
	w.nodes["a"].up = false
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 7
	w.add("a", Configured, "", 0)
	w.settleDown()
	if got := w.owner(); got != "b" {
		t.Fatalf("owner %s before max_wait", got)
	}
	w.now = w.now.Add(time.Minute)
	w.wantOwner("a")
}

// A graceful stop gives the VIPA up, and the goodbye lets the backup claim
// it before serf says the node left.
func TestGracefulStop(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0}, member{"c", 50, "", 0})
	ch := w.nodes["a"].s.Stop(w.now)
	if len(ch) != 1 || !ch[0].Release {
		t.Fatalf("stop: %v", ch)
	}
	w.nodes["b"].down["a"] = true
	w.nodes["c"].down["a"] = true
	w.round() // a still looks alive to serf, but claims nothing
	w.round()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) {
		t.Fatalf("b did not claim within two rounds: %v", w.log)
	}
	w.nodes["a"].up = false
	w.wantOwner("b")
}

// Heartbeats confirmed missing count as gone before serf agrees: the
// backup claims while serf still says the owner is alive.
func TestDownBeforeSerf(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0})
	w.nodes["a"].s.Stop(w.now) // the process is gone; serf has not noticed
	w.nodes["a"].up = true
	w.nodes["b"].down["a"] = true
	w.round()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) {
		t.Fatalf("b did not claim: %v", w.log)
	}
}

// A member that flaps between alive and failed ends with one owner, the
// same on every node.
func TestFlappingMembers(t *testing.T) {
	for _, flapper := range []string{"a", "b"} {
		t.Run(flapper, func(t *testing.T) {
			w := aRoutes(t, member{"b", 100, vipa.TakebackImmediate, 0}, member{"c", 50, vipa.TakebackWhenIdle, 0})
			for i := range 30 {
				// seen failed by some, alive by others: a split that changes every round
				if i%3 == 0 {
					w.group[flapper] = 1
				} else {
					w.group[flapper] = 0
				}
				w.round()
			}
			w.group = map[string]int{}
			w.wantOwner("a")
		})
	}
}

// A manual move goes to the named node, even past a better backup, and
// stays: the configured routing node does not take it back.
func TestMove(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0}, member{"c", 50, vipa.TakebackImmediate, 0}, member{"d", -1, "", 0})
	if err := w.nodes["a"].s.Move(vip, "d", false, w.members("a"), w.now); err == nil {
		t.Fatal("moved to a node that cannot own the VIPA")
	}
	if err := w.nodes["b"].s.Move(vip, "c", false, w.members("b"), w.now); err == nil {
		t.Fatal("a node that does not route the VIPA moved it")
	}
	w.nodes["a"].conns[vip] = 1
	if err := w.nodes["a"].s.Move(vip, "c", true, w.members("a"), w.now); err != nil {
		t.Fatal(err)
	}
	w.settleDown()
	if w.owner() != "a" || w.status("a") != vipa.StatusQuiescing {
		t.Fatalf("owner %s, a %s: want a quiescing while it has a connection", w.owner(), w.status("a"))
	}
	w.nodes["a"].conns[vip] = 0
	w.wantOwner("c")
	if s := w.status("a"); s != vipa.StatusBackup {
		t.Fatalf("a after the move: %s", s)
	}
	// and back, now
	if err := w.nodes["c"].s.Move(vip, "a", false, w.members("c"), w.now); err != nil {
		t.Fatal(err)
	}
	w.wantOwner("a")
}

// A move holds though the moving node's tags (its move, its rank) reach
// the others after its claims do: the target does not take a late rank of
// the defining node for a takeback, and no other node claims by rank in
// between. From the defining node to a backup, on between backups, and
// back.
func TestMoveTagsLate(t *testing.T) {
	for _, lag := range []int{1, 3, 30} { // 30: 3 s, past a takeback's handWait
		t.Run(fmt.Sprint(lag), func(t *testing.T) {
			w := newWorld(t)
			w.tagLag = lag
			w.add("a", Configured, "", 0)
			w.add("b", 100, vipa.TakebackWhenIdle, 0)
			w.add("c", 50, vipa.TakebackImmediate, 0)
			w.wantOwner("a")
			for _, mv := range []struct{ from, to string }{{"a", "b"}, {"b", "c"}, {"c", "b"}, {"b", "a"}} {
				if err := w.nodes[mv.from].s.Move(vip, mv.to, false, w.members(mv.from), w.now); err != nil {
					t.Fatal(err)
				}
				w.wantOwner(mv.to)
				// The giver released it as the end of a hand-over begun
				// before the target's claim.
				var rel Change
				for _, c := range w.byNode[mv.from] {
					if c.Release {
						rel = c
					}
				}
				if !rel.HandOver || rel.HandStart.IsZero() || !rel.HandStart.Before(rel.Since) || rel.Owner != mv.to {
					t.Fatalf("%s's release: %+v; want the end of a hand-over to %s, begun before it", mv.from, rel, mv.to)
				}
				for range 2 * lag {
					w.round() // the late tags arrive: the move holds
				}
				w.wantOwner(mv.to)
			}
		})
	}
}

// A node that cannot tell yet (not joined, or a candidate's claims not
// fetched) claims nothing.
func TestWaitsUntilItKnows(t *testing.T) {
	w := newWorld(t)
	w.add("a", Configured, "", 0)
	w.add("b", 100, "", 0)
	w.settle = false
	w.settleDown()
	if got := w.owner(); got != "" {
		t.Fatalf("owner %s before the fleet settled", got)
	}
	w.settle, w.known = true, false
	w.settleDown()
	if got := w.owner(); got != "" {
		t.Fatalf("owner %s before the claims were known", got)
	}
	w.known = true
	w.wantOwner("a")
}

// The change log: every change once per node.
func TestChangesOnce(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0})
	w.log = nil
	w.nodes["a"].up = false
	w.wantOwner("b")
	w.settleDown()
	n := 0
	for _, l := range w.log {
		if l[:2] == "b:" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("b logged %d changes, want 1: %v", n, w.log)
	}
}

// Two nodes that both define a VIPA are a conflict for the definitions'
// rule to show and settle: neither yields here, and a backup still yields
// to them.
func TestTwoDefinersBothRoute(t *testing.T) {
	w := newWorld(t)
	w.add("a", Configured, "", 0)
	w.add("b", Configured, "", 0)
	w.add("c", 100, "", 0)
	w.settleDown()
	for _, n := range []string{"a", "b"} {
		if !slices.Contains(w.nodes[n].s.Claimed(), vip) {
			t.Fatalf("%s does not route its VIPA: %v", n, w.log)
		}
	}
	if slices.Contains(w.nodes["c"].s.Claimed(), vip) {
		t.Fatal("the backup routes too")
	}
}

// After a heal the node that keeps the VIPA announces it again once the
// other owner has given it up, so the link's neighbours stop sending to
// that one; the loser and the bystanders announce nothing.
func TestHealAnnouncesAgain(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0}, member{"c", 50, "", 0})
	w.group["a"] = 1
	w.settleDown()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) {
		t.Fatalf("b did not take over on its side: %v", w.log)
	}
	w.log = nil
	w.group = map[string]int{}
	w.settleDown()
	w.wantOwner("a")
	var announced []string
	for _, l := range w.log {
		if strings.HasSuffix(l, "announce=true") {
			announced = append(announced, l[:1])
		}
	}
	if !slices.Equal(announced, []string{"a"}) {
		t.Fatalf("announced by %v, want a once:\n%v", announced, strings.Join(w.log, "\n"))
	}
	// Steady: no more announcements.
	w.log = nil
	w.settleDown()
	if len(w.log) > 0 {
		t.Fatalf("changes in a steady state: %v", w.log)
	}
}

// A partition heals and the backup that routed the VIPA on its side gives
// it up before the routing node holds its claims: the routing node never
// sees a rival, but the link's neighbours may still send to the backup, so
// it announces the VIPA again when the backup's claims arrive. A member
// that cannot own the VIPA returning, or the same view again, announces
// nothing.
func TestReturnAnnouncesAgain(t *testing.T) {
	announced := func(cs []Change) bool {
		return slices.ContainsFunc(cs, func(c Change) bool { return c.Announce })
	}
	s := New(Config{Node: "a", Defined: []netip.Addr{vip}})
	b := Member{Name: "b", Alive: true, Known: true, Ranks: map[netip.Addr]int{vip: 200}}
	x := Member{Name: "x", Alive: true, Known: true} // a target only
	now := time.Unix(1e9, 0)
	look := func(ms ...Member) []Change {
		now = now.Add(100 * time.Millisecond)
		return s.Update(Inputs{Now: now, Members: ms, Settled: true})
	}
	if cs := look(b, x); !slices.ContainsFunc(cs, func(c Change) bool { return c.Claim }) {
		t.Fatalf("a did not claim its VIPA: %v", cs)
	}
	if cs := look(b, x); len(cs) > 0 {
		t.Fatalf("changes in a steady state: %v", cs)
	}
	b.Alive, b.Known, x.Alive, x.Known = false, false, false, false // partitioned
	if cs := look(b, x); len(cs) > 0 {
		t.Fatalf("a partition changed the routing node's row: %v", cs)
	}
	b.Alive, x.Alive = true, true // back, claims not fetched yet
	if cs := look(b, x); announced(cs) {
		t.Fatalf("announced before the returning backup's claims were known: %v", cs)
	}
	x.Known = true
	if cs := look(b, x); announced(cs) {
		t.Fatalf("a target's return announced the VIPA: %v", cs)
	}
	b.Known = true // it routes nothing any more
	if cs := look(b, x); !announced(cs) || len(cs) != 1 || cs[0].Status != vipa.StatusActive {
		t.Fatalf("the returning backup's claims known, a did not announce the VIPA again: %v", cs)
	}
	if cs := look(b, x); len(cs) > 0 {
		t.Fatalf("changes in a steady state: %v", cs)
	}
}

// A node that has just started sees members before it holds their claims
// (their definitions are fetched after serf shows them): a member whose
// claims it has never held may route the VIPA, so it does not claim it
// yet. The wait is bounded: a member whose definitions never arrive does
// not stop a takeover for good.
func TestUnknownMemberHoldsClaim(t *testing.T) {
	claimed := func(cs []Change) bool {
		return slices.ContainsFunc(cs, func(c Change) bool { return c.Claim })
	}
	backup := func() *State {
		return New(Config{Node: "b", Backups: []*vipa.Backup{{VIPA: vip, Rank: 200, Takeback: vipa.TakebackWhenIdle}}})
	}
	t0 := time.Unix(1e9, 0)

	// The routing node, its claims not fetched yet (its tags carry no rank
	// while its definition says it routes the VIPA); then fetched.
	s := backup()
	a := Member{Name: "a", Alive: true}
	if cs := s.Update(Inputs{Now: t0, Members: []Member{a}, Settled: true}); claimed(cs) {
		t.Fatalf("claimed beside a member whose claims are unknown: %v", cs)
	}
	a.Known, a.Claims = true, []netip.Addr{vip}
	if cs := s.Update(Inputs{Now: t0.Add(50 * time.Millisecond), Members: []Member{a}, Settled: true}); claimed(cs) || s.Rows()[0].Owner != "a" {
		t.Fatalf("claimed a VIPA its routing node routes: %v %+v", cs, s.Rows())
	}

	// A member that stays unknown holds the claim back for unknownWait only.
	s = backup()
	x := Member{Name: "x", Alive: true}
	for d := time.Duration(0); d < unknownWait; d += 500 * time.Millisecond {
		if cs := s.Update(Inputs{Now: t0.Add(d), Members: []Member{x}, Settled: true}); claimed(cs) {
			t.Fatalf("claimed %s after an unknown member came into view: %v", d, cs)
		}
	}
	if cs := s.Update(Inputs{Now: t0.Add(unknownWait), Members: []Member{x}, Settled: true}); !claimed(cs) {
		t.Fatalf("still no claim %s after the unknown member came into view: %v", unknownWait, cs)
	}

	// Known once, a member's later unknown versions (a change being
	// fetched) do not hold a takeover back; gone and back, it is new again.
	s = backup()
	k := Member{Name: "k", Alive: true, Known: true}
	s.Update(Inputs{Now: t0, Members: []Member{k}}) // not settled: no claim yet
	k.Known = false
	if cs := s.Update(Inputs{Now: t0.Add(time.Second), Members: []Member{k}, Settled: true}); !claimed(cs) {
		t.Fatalf("a known member's new version held the takeover back: %v", cs)
	}
	s = backup()
	s.Update(Inputs{Now: t0, Members: []Member{{Name: "k", Alive: true, Known: true}}})
	s.Update(Inputs{Now: t0, Members: []Member{{Name: "k"}}}) // gone
	if cs := s.Update(Inputs{Now: t0.Add(time.Second), Members: []Member{k}, Settled: true}); claimed(cs) {
		t.Fatalf("a member back from gone, its claims unknown, did not hold the claim back: %v", cs)
	}
}

// changesOf lists n's changes since the world began, as status/owner with
// a "!" for a release and a "+" for a claim; a mere re-announcement (no
// change of status or owner) is left out.
func (w *world) changesOf(n string) []string {
	var out []string
	for _, c := range w.byNode[n] {
		if c.Announce && !c.Claim && !c.Release && c.Status == c.OldStatus && c.Owner == c.OldOwner {
			continue
		}
		e := fmt.Sprintf("%s/%s", c.Status, c.Owner)
		if c.Claim {
			e = "+" + e
		}
		if c.Release {
			e = "!" + e
		}
		out = append(out, e)
	}
	return out
}

func (w *world) wantChanges(n string, want ...string) {
	w.t.Helper()
	if got := w.changesOf(n); !slices.Equal(got, want) {
		w.t.Fatalf("%s's changes:\n got %v\nwant %v\n%s", n, got, want, strings.Join(w.log, "\n"))
	}
}

// A killed routing node that restarts before serf has seen it fail is
// heard again while the others still hold its old process's claims: they
// are not known to be current, and they make no one give the VIPA up.
// The restarted node waits as a backup; when_idle keeps routing on the
// backup (quiescing) until it is idle, then hands the VIPA back once.
func TestReturnBeforeSerfWhenIdle(t *testing.T) {
	w := aRoutes(t, member{"b", 100, vipa.TakebackWhenIdle, time.Hour}, member{"c", 50, vipa.TakebackWhenIdle, time.Hour})
	w.kill("a")
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 1

	w.restart("a", Configured, "", 0)
	w.settleDown()
	if got := w.owner(); got != "b" || w.status("b") != vipa.StatusActive || w.status("a") != vipa.StatusBackup {
		t.Fatalf("a back, its claims from before held: owner %q, b %s, a %s; want b still active, a a backup\n%s",
			got, w.status("b"), w.status("a"), strings.Join(w.log, "\n"))
	}
	w.fresh("a") // a's current claims fetched: none
	w.settleDown()
	if got := w.owner(); got != "b" || w.status("b") != vipa.StatusQuiescing || w.status("a") != vipa.StatusBackup {
		t.Fatalf("a back and known: owner %q, b %s, a %s; want b quiescing with its connection, a a backup", got, w.status("b"), w.status("a"))
	}
	w.nodes["b"].conns[vip] = 0
	w.wantOwner("a")
	w.wantChanges("b", "backup/", "backup/a", "+active/b", "quiescing/b", "moving/b", "!backup/a")
	// make before break: c sees b hand over to a with no owner between
	w.wantChanges("c", "backup/", "backup/a", "backup/", "backup/b", "backup/a")
}

// takeback immediate: the backup gives the VIPA back at once, but only to
// the restarted node known to wait for it, by a hand-over (the restarted
// node claims), not on the old process's claims.
func TestReturnBeforeSerfImmediate(t *testing.T) {
	w := aRoutes(t, member{"b", 100, vipa.TakebackImmediate, 0})
	w.kill("a")
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 3
	w.restart("a", Configured, "", 0)
	w.settleDown()
	if got := w.owner(); got != "b" {
		t.Fatalf("owner %q before a's claims are known, want b still\n%s", got, strings.Join(w.log, "\n"))
	}
	w.fresh("a")
	w.wantOwner("a")
	w.wantChanges("b", "backup/", "backup/a", "+active/b", "moving/b", "!backup/a")
}

// A routing node that flaps: killed and restarted again and again before
// serf notices, and silent for a while without restarting (it routed the
// VIPA all along: the backup yields as after a partition, once it knows).
// Every change is logged once; the backup never gives the VIPA up while it
// has a connection on it unless the routing node still routes it too.
func TestFlappingReturns(t *testing.T) {
	w := aRoutes(t, member{"b", 100, vipa.TakebackWhenIdle, time.Hour}, member{"c", 50, vipa.TakebackWhenIdle, time.Hour})
	w.kill("a")
	w.wantOwner("b")
	w.nodes["b"].conns[vip] = 1
	for range 3 {
		w.restart("a", Configured, "", 0)
		w.settleDown()
		w.fresh("a")
		w.settleDown()
		if got := w.owner(); got != "b" || w.status("b") != vipa.StatusQuiescing {
			t.Fatalf("owner %q, b %s; want b quiescing\n%s", got, w.status("b"), strings.Join(w.log, "\n"))
		}
		w.kill("a")
		w.settleDown()
		if got := w.owner(); got != "b" || w.status("b") != vipa.StatusActive {
			t.Fatalf("a killed again: owner %q, b %s; want b active", got, w.status("b"))
		}
	}
	w.restart("a", Configured, "", 0)
	w.fresh("a")
	w.nodes["b"].conns[vip] = 0
	w.wantOwner("a")
	w.wantChanges("b", "backup/", "backup/a", "+active/b",
		"quiescing/b", "active/b", "quiescing/b", "active/b", "quiescing/b", "active/b",
		"moving/b", "!backup/a")

	// Silent without restarting: a routed the VIPA all along (a link that
	// carried nothing for a while). Heard again, its claims are fetched
	// first; known, they make b yield at once, as after a partition.
	w.byNode = map[string][]Change{}
	for _, o := range []string{"b", "c"} {
		w.nodes[o].down["a"] = true
	}
	w.settleDown()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) {
		t.Fatalf("b did not take over from a silent a\n%s", strings.Join(w.log, "\n"))
	}
	w.nodes["b"].conns[vip] = 1
	for _, o := range []string{"b", "c"} {
		delete(w.nodes[o].down, "a")
	}
	w.nodes["a"].held = &Member{Claims: []netip.Addr{vip}} // being fetched again
	w.settleDown()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) {
		t.Fatalf("b gave the VIPA up on claims not known to be current\n%s", strings.Join(w.log, "\n"))
	}
	w.fresh("a")
	w.wantOwner("a")
	w.wantChanges("b", "+active/b", "!backup/a")
}

// A node handing the VIPA back holds it until the successor is known to
// claim it: a claim held of a second node that returns before serf saw it
// fail (killed while it routed the VIPA) neither ends the hand-over nor
// shows as the owner.
func TestHandOverPastAStaleClaim(t *testing.T) {
	w := aRoutes(t, member{"b", 200, vipa.TakebackWhenIdle, time.Hour}, member{"c", 100, vipa.TakebackWhenIdle, time.Hour})
	w.kill("a")
	w.wantOwner("b")
	w.kill("b")
	w.wantOwner("c")
	w.byNode = map[string][]Change{}

	w.restart("a", Configured, "", 0)
	w.fresh("a")
	w.round() // c hands over: a is back and known, c is idle
	if s := w.status("c"); s != vipa.StatusMoving {
		t.Fatalf("c: %s, want moving\n%s", s, strings.Join(w.log, "\n"))
	}
	w.restart("b", 200, vipa.TakebackWhenIdle, time.Hour) // held: the killed b's claim
	w.round()
	if !slices.Contains(w.nodes["a"].s.Claimed(), vip) {
		t.Fatalf("a did not claim\n%s", strings.Join(w.log, "\n"))
	}
	if r := w.row("c"); r.Status != vipa.StatusMoving || r.Owner != "c" {
		t.Fatalf("c on b's old claim, before a's claim reached it: %+v, want still routing it, moving to a\n%s", r, strings.Join(w.log, "\n"))
	}
	w.fresh("b")
	w.wantOwner("a")
	w.wantChanges("c", "moving/c", "!backup/a")
}

// TestBystanderFollowsSerf: a node that backs up nothing watches no owner,
// so it learns of a killed owner from serf alone: while serf shows the
// owner alive it is the owner there (the best live claimant, beside the
// backup that took the VIPA on its own faster detection), and the backup
// once serf declares it failed.
func TestBystanderFollowsSerf(t *testing.T) {
	w := aRoutes(t, member{"b", 100, "", 0}, member{"c", -1, "", 0})
	w.kill("a")
	delete(w.nodes["c"].down, "a") // c has no owner watch
	w.settleDown()
	if !slices.Contains(w.nodes["b"].s.Claimed(), vip) || w.row("b").Owner != "b" {
		t.Fatalf("b did not take over on its own detection: %+v\n%v", w.row("b"), w.log)
	}
	if r := w.row("c"); r.Owner != "a" || r.Status != vipa.StatusNone {
		t.Fatalf("the bystander before serf declares a failed: %+v, want owner a, status none", r)
	}
	w.nodes["a"].up = false // serf declares a failed
	w.settleDown()
	if r := w.row("c"); r.Owner != "b" || r.Status != vipa.StatusNone {
		t.Fatalf("the bystander after serf declares a failed: %+v, want owner b", r)
	}
}

// A node that neither defines nor backs up a VIPA never claims it: not
// before its config names it (the fleet looks at the members before the
// node's first config is installed, itself among them), not on a move's
// tags naming it (a move is refused to a node that cannot own the VIPA,
// so such a tag is not a move this node may follow), not when no one else
// can own it.
func TestRanklessNeverClaims(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	claimed := func(cs []Change) bool {
		return slices.ContainsFunc(cs, func(c Change) bool { return c.Claim || c.Status == vipa.StatusActive })
	}
	a := Member{Name: "a", Alive: true, Known: true, Ranks: map[netip.Addr]int{vip: Configured}, Claims: []netip.Addr{vip}}

	// No config yet: no node name, no rank. The member list holds the node
	// itself, its claims unknown, beside the routing node.
	s := New(Config{})
	self := Member{Name: "b", Alive: true}
	for i, ms := range [][]Member{{a, self}, {{Name: "a", Alive: true, Ranks: a.Ranks, Claims: a.Claims}, self}, {self}, {a}} {
		for _, settled := range []bool{false, true} {
			if cs := s.Update(Inputs{Now: t0.Add(time.Duration(i) * time.Second), Members: ms, Settled: settled}); claimed(cs) {
				t.Fatalf("claimed before its config (members %d, settled %v): %v", i, settled, cs)
			}
		}
	}
	// Its config defines nothing: still nothing claimed, a routes it.
	s.Configure(Config{Node: "b"})
	if cs := s.Update(Inputs{Now: t0.Add(5 * time.Second), Members: []Member{a}, Settled: true}); claimed(cs) || len(s.Claimed()) > 0 {
		t.Fatalf("claimed once configured with no rank: %v %v", cs, s.Claimed())
	}
	if r := s.Rows(); len(r) != 1 || r[0].Owner != "a" || r[0].Status != vipa.StatusNone {
		t.Fatalf("rows of a node without a rank: %+v", r)
	}

	// A move's tags name this rankless node: with a still claiming, and
	// after a has dropped its claim.
	s = New(Config{Node: "c"})
	moving := a
	moving.Moves = map[netip.Addr]string{vip: "c"}
	if cs := s.Update(Inputs{Now: t0, Members: []Member{moving}, Settled: true}); claimed(cs) {
		t.Fatalf("claimed on a move naming a node without a rank: %v", cs)
	}
	moving.Claims = nil
	for d := time.Duration(0); d <= moveWait+time.Second; d += 10 * time.Second {
		if cs := s.Update(Inputs{Now: t0.Add(d), Members: []Member{moving}, Settled: true}); claimed(cs) || len(s.Claimed()) > 0 {
			t.Fatalf("claimed %s after a move's tags named a node without a rank: %v", d, cs)
		}
	}

	// The other nodes ignore such a tag too: a backup takes the VIPA its
	// lower-ranked owner dropped by the rule.
	s = New(Config{Node: "d", Backups: []*vipa.Backup{{VIPA: vip, Rank: 100}}})
	giver := Member{Name: "a", Alive: true, Known: true, Ranks: map[netip.Addr]int{vip: 50}, Moves: map[netip.Addr]string{vip: "c"}}
	target := Member{Name: "c", Alive: true, Known: true}
	if cs := s.Update(Inputs{Now: t0, Members: []Member{giver, target}, Settled: true}); !slices.Contains(s.Claimed(), vip) {
		t.Fatalf("the best backup did not claim beside a move's tags naming a node without a rank: %v %+v", cs, s.Rows())
	}

	// The giver: a move's target that no longer backs the VIPA up (its
	// config changed after the move was asked) ends the move, and the
	// giver keeps routing the VIPA and names no one in its tags.
	s = New(Config{Node: "a", Defined: []netip.Addr{vip}})
	target.Ranks = map[netip.Addr]int{vip: 100}
	s.Update(Inputs{Now: t0, Members: []Member{target}, Settled: true})
	if err := s.Move(vip, "c", false, []Member{target}, t0); err != nil {
		t.Fatal(err)
	}
	target.Ranks = nil
	for d := time.Duration(0); d <= moveWait+time.Second; d += 10 * time.Second {
		cs := s.Update(Inputs{Now: t0.Add(d), Members: []Member{target}, Settled: true})
		if r := s.Rows(); !slices.Contains(s.Claimed(), vip) || r[0].Status != vipa.StatusActive || len(s.Moves()) > 0 {
			t.Fatalf("%s after the move's target lost its rank: %v %+v moves %v", d, cs, r, s.Moves())
		}
	}

	// No one else can own it, no one claims it: it stays unrouted here.
	s = New(Config{Node: "c"})
	gone := Member{Name: "a", Ranks: a.Ranks}
	if cs := s.Update(Inputs{Now: t0, Members: []Member{gone, {Name: "d", Alive: true, Known: true}}, Settled: true}); claimed(cs) {
		t.Fatalf("claimed a VIPA no live node can own: %v", cs)
	}
}
