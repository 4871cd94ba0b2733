package serfsync

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// work is the agent's one worker: it turns marks (member events, fetched
// versions, local changes, the reconcile tick) into derived state and calls
// the callbacks, outside the lock, one at a time.
func (a *Agent) work() {
	defer a.wg.Done()
	tick := time.NewTimer(jitter(a.cfg.reconcilePeriod() / sweepSlots))
	defer tick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	slot := 0
	for {
		periodic := -1
		select {
		case <-a.stop:
			return
		case <-a.kickCh:
		case <-wake.C:
		case <-tick.C:
			periodic = slot
			if slot == 0 {
				// Events keep the member list current; once a period it
				// is read whole, in case one was missed.
				a.memberDirty.Store(true)
			}
			slot = (slot + 1) % sweepSlots
			tick.Reset(jitter(a.cfg.reconcilePeriod() / sweepSlots))
		}
		next := a.step(periodic)
		wake.Stop()
		if !next.IsZero() {
			wake.Reset(max(time.Until(next), time.Millisecond))
		}
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

// jitter spreads the fleet's reconcile ticks over ±10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

type reportCall struct {
	node string
	rows []vipa.Listener
}

// step does one round of the worker and returns when a waiting sync falls due.
// periodic is the sweep slot of a reconcile tick, or -1.
func (a *Agent) step(periodic int) time.Time {
	var ms []serf.Member
	var refreshAt time.Time
	updates := a.takeMemberUpdates()
	if a.memberDirty.Load() {
		// Listing the whole fleet costs every node O(fleet): at most once
		// per refreshGap; the worker wakes for the rest.
		if since := time.Since(a.refreshed); since < refreshGap {
			refreshAt = a.refreshed.Add(refreshGap)
		} else if a.memberDirty.Swap(false) {
			ms = a.serf.Members()
			a.refreshed = time.Now()
			updates = nil // the list is newer
		}
	}
	a.mu.Lock()
	var gone []string
	if ms != nil {
		gone = a.refreshMembersLocked(ms)
		a.sweepLocked()
	} else if updates != nil {
		gone = a.applyMemberUpdatesLocked(updates)
	}
	var defsCall []KnownDefinition
	defsChanged := false
	// A sweep may learn an empty version and a new owner must sweep for
	// reports: a few rounds settle both.
	for range 3 {
		if !a.defsDirty {
			break
		}
		a.defsDirty = false
		changed, ownedChanged := a.updateViewLocked()
		if changed {
			defsChanged = true
		}
		if ownedChanged {
			a.dirty[a.cfg.NodeName] = true
			for name := range a.peers {
				a.dirty[name] = true
			}
			a.sweepLocked()
		}
	}
	if defsChanged {
		defsCall = cloneKnown(a.known)
	}
	if periodic >= 0 && len(a.own.Load().defs.defs) > 0 {
		// Anti-entropy: a routing node syncs with every member once a
		// period, whatever the tags say; the sync carries its own versions
		// too, so members that missed its definitions fetch them.
		for name, m := range a.members {
			if m.alive() && slotOf(name) == periodic {
				a.scheduleRoutineLocked(name)
			}
		}
	}
	calls := a.deriveRowsLocked()
	next := a.dispatchLocked(time.Now())
	a.mu.Unlock()
	if !refreshAt.IsZero() && (next.IsZero() || refreshAt.Before(next)) {
		next = refreshAt
	}

	for _, name := range gone {
		if a.OnMemberGone != nil {
			a.OnMemberGone(name)
		}
	}
	if defsChanged && a.OnDefinitions != nil {
		a.OnDefinitions(defsCall)
	}
	if a.OnReport != nil {
		for _, c := range calls {
			a.OnReport(c.node, c.rows)
		}
	}
	return next
}

// deriveRowsLocked derives the rows of every dirty node and returns those
// that differ from what OnReport last got.
func (a *Agent) deriveRowsLocked() []reportCall {
	var calls []reportCall
	for name := range a.dirty {
		delete(a.dirty, name)
		if name == a.cfg.NodeName {
			own := a.own.Load().report
			rows := a.rowsLocked(name, &own, a.selfCount)
			a.selfCount = false
			if !slices.Equal(rows, a.delivered) {
				a.delivered = rows
				calls = append(calls, reportCall{name, rows})
			}
			continue
		}
		p := a.peers[name]
		if p == nil || !a.members[name].alive() {
			continue
		}
		rows := a.rowsLocked(name, p.report, p.countDrops)
		p.countDrops = false
		if !slices.Equal(rows, p.delivered) {
			p.delivered = rows
			calls = append(calls, reportCall{name, rows})
		}
	}
	slices.SortFunc(calls, func(x, y reportCall) int {
		switch {
		case x.node < y.node:
			return -1
		case x.node > y.node:
			return 1
		}
		return 0
	})
	return calls
}

// selfDirtyLocked marks this node's own rows for derivation.
func (a *Agent) selfDirtyLocked() { a.dirty[a.cfg.NodeName] = true }
