package serfsync

import (
	"math/rand/v2"
	"time"
)

// work is the agent's one worker: it feeds the core the member events and
// reconcile ticks, runs its steps and carries out their actions: syncs to
// the fetchers, tags to the tagger, and the callbacks, outside the lock,
// one at a time.
func (a *Agent) work() {
	defer a.wg.Done()
	period := a.cfg.reconcilePeriod()
	tick := time.NewTimer(jitter(period / sweepSlots))
	defer tick.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-a.kickCh:
		case <-wake.C:
		case <-tick.C:
			a.mu.Lock()
			a.core.tick()
			a.mu.Unlock()
			tick.Reset(jitter(period / sweepSlots))
		}
		next := a.step()
		wake.Stop()
		if !next.IsZero() {
			wake.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// jitter spreads the fleet's reconcile ticks over ±10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// step does one round of the worker and returns when the core wants the
// next (zero: on news only).
func (a *Agent) step() time.Time {
	updates := a.takeMemberUpdates()
	a.mu.Lock()
	list, _ := a.core.listDue(time.Now())
	a.mu.Unlock()
	var views []memberView
	if list {
		ms := a.serf.Members() // outside the lock: O(fleet)
		views = make([]memberView, len(ms))
		for i := range ms {
			views[i] = viewOf(&ms[i])
		}
	}
	a.mu.Lock()
	now := time.Now()
	if list {
		a.core.membersListed(views, now) // newer than the events
	} else if updates != nil {
		a.core.membersChanged(updates)
	}
	acts := a.core.step(now)
	a.mu.Unlock()

	for _, j := range acts.syncs {
		a.jobs <- j // never blocks: the core runs at most fetchers
	}
	if acts.tags {
		a.kickTags()
	}
	for _, name := range acts.gone {
		if a.OnMemberGone != nil {
			a.OnMemberGone(name)
		}
	}
	if acts.defsChanged && a.OnDefinitions != nil {
		a.OnDefinitions(acts.defs)
	}
	if a.OnReport != nil {
		for _, c := range acts.reports {
			a.OnReport(c.node, c.rows)
		}
	}
	return acts.wake
}
