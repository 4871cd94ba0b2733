package serfsync

import (
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// core is one node's fleet state and the protocol's decisions, with no I/O:
// no goroutine, no clock, no socket, no serf. The shell (Agent) feeds it
// inputs (a member's word from serf, a sync request to answer, a sync's
// answer or failure, a reconcile tick, a local report or definitions) and
// then calls step, which returns the actions they lead to (syncs to run,
// tags to publish, rows to apply). Time is passed in. Not safe for
// concurrent use: the shell holds one lock over it.
type core struct {
	name   string
	adv    netip.Addr
	gen    uint64
	period time.Duration // reconcile period
	logger *zap.Logger
	stats  *stats

	own        ownState
	members    map[string]*memberInfo
	peers      map[string]*peer
	waiting    map[string]*peer // peers with a sync wanted (pending)
	due        []*peer          // dispatch's scratch
	queued     uint64           // syncs wanted so far: peer.seq
	names      []string         // members' names, sorted; nil when stale
	known      []KnownDefinition
	ownerOf    map[netip.Addr]string           // VIPA → owning routing node
	owned      map[netip.Addr]*vipa.Definition // VIPAs this node owns
	defOf      map[netip.Addr]*vipa.Definition // VIPA → its owner's definition
	defsDirty  bool
	dirty      map[string]bool                 // nodes whose rows to derive again
	running    int                             // syncs handed out, not yet answered
	epoch      uint64                          // member list refreshes
	listDirty  bool                            // the whole member list is wanted
	refreshed  time.Time                       // last member list read
	delivered  []vipa.Listener                 // this node's own rows last given out
	selfCount  bool                            // own report changed: count its drops once
	claims     map[netip.Addr][]string         // live members by advertise address, sorted
	touched    map[netip.Addr]bool             // addresses whose claims changed
	tagsDirty  bool                            // own digests changed since the last step
	slot       int                             // the next reconcile tick's sweep slot
	sweeps     uint                            // sweep slots ticked since the last step (bits)
	gone       []string                        // members gone since the last step
	standby    map[netip.Addr]bool             // VIPAs whose reports this node takes for another's routing
	orphans    map[netip.Addr]*vipa.Definition // definitions of gone routing nodes whose VIPAs have standbys
	released   map[netip.Addr]bool             // orphans whose routing node is live and stopped defining them
	vipadynTag string                          // this node's tagVIPADyn
}

// ownState is this node's own versioned state.
type ownState struct {
	report report
	defs   defsVersion
}

// syncJob is one sync for the shell to run: send req to peer at addr and
// hand the answer, or the failure, to core.answered.
type syncJob struct {
	peer    string
	addr    netip.AddrPort
	req     syncRequest
	recheck bool // it began after the peer's Recheck: its answer ends it
}

// reportCall gives a routing node's rows of one node; they replace what it
// had (empty: none).
type reportCall struct {
	node string
	rows []vipa.Listener
}

// actions are what one step asks of the shell, in this order: forget the
// gone members' rows, take the definitions, apply the rows, publish tags,
// start the syncs; call step again at wake (zero: only on new input).
type actions struct {
	gone        []string
	defsChanged bool
	defs        []KnownDefinition
	reports     []reportCall
	tags        bool
	syncs       []syncJob
	wake        time.Time
}

func newCore(name string, adv netip.Addr, gen uint64, period time.Duration, logger *zap.Logger, st *stats) *core {
	return &core{
		name: name, adv: adv, gen: gen, period: period, logger: logger, stats: st,
		own: ownState{
			report: report{digest: digest{gen: gen, hash: emptyReportHash}},
			defs:   defsVersion{digest: digest{gen: gen, hash: emptyDefsHash}},
		},
		members:   map[string]*memberInfo{},
		peers:     map[string]*peer{},
		waiting:   map[string]*peer{},
		claims:    map[netip.Addr][]string{},
		touched:   map[netip.Addr]bool{},
		ownerOf:   map[netip.Addr]string{},
		owned:     map[netip.Addr]*vipa.Definition{},
		defOf:     map[netip.Addr]*vipa.Definition{},
		orphans:   map[netip.Addr]*vipa.Definition{},
		released:  map[netip.Addr]bool{},
		dirty:     map[string]bool{},
		listDirty: true,
	}
}

// refreshGap is the least time between two reads of serf's member list.
const refreshGap = 10 * time.Millisecond

// sweepSlots splits the reconcile period: at each tick a routing node syncs
// with the members of one slot, so a period's syncs are spread over it
// rather than sent in one burst.
const sweepSlots = 8

// slotOf is a member's slot in the reconcile period.
func slotOf(name string) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % sweepSlots)
}

// tick is a reconcile tick: the shell calls it every period/sweepSlots
// (jittered). Once a period the whole member list is read, in case an
// event was missed.
func (c *core) tick() {
	c.sweeps |= 1 << c.slot
	if c.slot == 0 {
		c.listDirty = true
	}
	c.slot = (c.slot + 1) % sweepSlots
}

// listDue reports whether the shell should read serf's whole member list
// and hand it to membersListed before the next step. Listing the fleet
// costs O(fleet): at most once per refreshGap; when one is wanted sooner,
// retry says when.
func (c *core) listDue(now time.Time) (due bool, retry time.Time) {
	if !c.listDirty {
		return false, time.Time{}
	}
	if next := c.refreshed.Add(refreshGap); now.Before(next) {
		return false, next
	}
	return true, time.Time{}
}

// step derives what the inputs since the last step changed and returns the
// actions that follow.
func (c *core) step(now time.Time) actions {
	var out actions
	out.gone, c.gone = c.gone, nil
	// A sweep may learn an empty version and a new owner must sweep for
	// reports: a few rounds settle both.
	for range 3 {
		if !c.defsDirty {
			break
		}
		c.defsDirty = false
		changed, ownedChanged := c.updateView()
		if changed {
			out.defsChanged = true
		}
		// A standby derives its rows from the routing node's definition:
		// any change of the view may change them.
		if ownedChanged || (changed && len(c.standby) > 0) {
			c.dirty[c.name] = true
			for name := range c.peers {
				c.dirty[name] = true
			}
			c.sweep()
		}
	}
	if out.defsChanged {
		out.defs = cloneKnown(c.known)
	}
	if c.sweeps != 0 && len(c.own.defs.defs) > 0 {
		// Anti-entropy: a routing node syncs with every member once a
		// period, whatever the tags say; the sync carries its own versions
		// too, so members that missed its definitions fetch them.
		for _, name := range c.memberNames() {
			if c.members[name].alive() && c.sweeps&(1<<slotOf(name)) != 0 {
				c.scheduleRoutine(name)
			}
		}
	}
	c.sweeps = 0
	out.reports = c.deriveRows()
	out.tags, c.tagsDirty = c.tagsDirty, false
	out.syncs, out.wake = c.dispatch(now)
	if due, retry := c.listDue(now); !due && !retry.IsZero() && (out.wake.IsZero() || retry.Before(out.wake)) {
		out.wake = retry
	}
	return out
}

// deriveRows derives the rows of every dirty node and returns those that
// differ from what was last given out.
func (c *core) deriveRows() []reportCall {
	var calls []reportCall
	for name := range c.dirty {
		delete(c.dirty, name)
		if name == c.name {
			rows := c.rows(name, &c.own.report, c.selfCount)
			c.selfCount = false
			if !slices.Equal(rows, c.delivered) {
				c.delivered = rows
				calls = append(calls, reportCall{name, rows})
			}
			continue
		}
		p := c.peers[name]
		if p == nil || !c.members[name].alive() {
			continue
		}
		rows := c.rows(name, p.report, p.countDrops)
		p.countDrops = false
		if !slices.Equal(rows, p.delivered) {
			p.delivered = rows
			calls = append(calls, reportCall{name, rows})
		}
	}
	slices.SortFunc(calls, func(x, y reportCall) int { return strings.Compare(x.node, y.node) })
	return calls
}
