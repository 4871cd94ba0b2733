package serfsync

import (
	"cmp"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// peer is what this node holds of another node, and the scheduling of its
// syncs: at most one in flight per peer, so answers apply in order.
type peer struct {
	name        string
	report      *report         // owners only: its latest accepted report
	defs        *defsVersion    // its latest accepted definitions
	delivered   []vipa.Listener // rows last given out
	droppedDefs digest          // the last definitions version dropped whole
	countDrops  bool            // a new report: count its invalid lines once

	inflight  bool
	pending   bool
	recheck   bool   // its definitions are not known to be current until a sync that began after Recheck answers
	seq       uint64 // when it began waiting: the first waits go first
	urgent    bool   // pending because someone has news: goes first
	routine   bool   // pending only for the period's anti-entropy: goes last
	notBefore time.Time
	backoff   time.Duration
}

// minBackoff is the first delay after a failed sync.
const minBackoff = 50 * time.Millisecond

func (c *core) peer(name string) *peer {
	p := c.peers[name]
	if p == nil {
		p = &peer{name: name}
		c.peers[name] = p
	}
	return p
}

// schedule asks for a sync with name; urgent ignores its backoff (the peer
// told us it has news, or we have news for it).
func (c *core) schedule(name string, urgent bool) {
	p := c.peer(name)
	c.wait(p)
	p.routine = false
	if urgent {
		p.urgent = true
		p.notBefore = time.Time{}
	}
}

// scheduleRoutine asks for the period's anti-entropy sync with name.
func (c *core) scheduleRoutine(name string) {
	if p := c.peer(name); !p.pending {
		c.wait(p)
		p.routine = true
	}
}

// wait marks a sync with p wanted; one already waiting keeps its place.
func (c *core) wait(p *peer) {
	if !p.pending {
		p.pending = true
		c.queued++
		p.seq = c.queued
	}
	c.waiting[p.name] = p
}

// routineFetchers is how many running syncs anti-entropy may fill, so news
// finds a fetcher free even when slow peers hold the routine syncs up.
const routineFetchers = fetchers / 2

// Classes of waiting syncs, in dispatch order.
const (
	classUrgent  = iota // news, told or to tell
	classNeeded         // the peer's tags announce what this node lacks
	classRoutine        // anti-entropy
	classes
)

func (p *peer) class() int {
	switch {
	case p.urgent:
		return classUrgent
	case p.routine:
		return classRoutine
	}
	return classNeeded
}

// dispatch hands out due syncs class by class, oldest first, never more
// than fetchers at once, so news never queues behind a fetch the tags asked
// for, nor that behind the period's anti-entropy (a fleet's worth of
// syncs); it returns them and when the next waiting sync falls due (zero:
// none, or an answer must free a fetcher first).
func (c *core) dispatch(now time.Time) (jobs []syncJob, next time.Time) {
	due := c.due[:0]
	for name, p := range c.waiting {
		switch {
		case !p.pending:
			delete(c.waiting, name)
		case !p.inflight: // one in flight is looked at again when it ends
			due = append(due, p)
		}
	}
	slices.SortFunc(due, func(x, y *peer) int {
		if d := x.class() - y.class(); d != 0 {
			return d
		}
		return cmp.Compare(x.seq, y.seq)
	})
	defer func() { clear(due); c.due = due[:0] }()
	for _, p := range due {
		m := c.members[p.name]
		if !m.alive() {
			p.pending, p.urgent, p.routine = false, false, false
			delete(c.waiting, p.name)
			continue
		}
		if now.Before(p.notBefore) {
			if next.IsZero() || p.notBefore.Before(next) {
				next = p.notBefore
			}
			continue
		}
		if c.running >= fetchers || p.class() == classRoutine && c.running >= routineFetchers {
			return jobs, next // an answer frees a fetcher and steps again
		}
		c.running++
		p.inflight, p.pending, p.urgent, p.routine = true, false, false, false
		delete(c.waiting, p.name)
		jobs = append(jobs, syncJob{peer: p.name, addr: m.addr, req: c.request(p), recheck: p.recheck})
	}
	return jobs, next
}

// request is the sync request to p: this node's versions and what it holds
// of p's.
func (c *core) request(p *peer) syncRequest {
	req := syncRequest{from: c.name, report: c.own.report.digest, defs: c.own.defs.digest}
	if c.wantsReports() {
		req.flags |= wantReport
		if p.report != nil {
			req.heldReport = p.report.digest
		}
	}
	if p.defs != nil {
		req.heldDefs = p.defs.digest
	}
	return req
}

// answered takes the end of a sync the core handed out: the peer's answer,
// or the error that ended it (then ans is not read).
func (c *core) answered(job syncJob, ans syncAnswer, err error, now time.Time) {
	c.running--
	p := c.peers[job.peer]
	if p == nil || !p.inflight {
		return
	}
	p.inflight = false
	if err != nil {
		c.stats.inc("fetch_retry")
		if ce := c.logger.Check(zap.DebugLevel, "sync failed; retrying"); ce != nil {
			ce.Write(zap.String("peer", job.peer), zap.Error(err))
		}
		if !p.urgent { // the peer's news that came meanwhile goes at once
			c.backoff(p, now)
		}
		p.routine = false
		if c.members[job.peer].alive() {
			c.wait(p)
		} else {
			p.pending = false
		}
		return
	}
	c.applyAnswer(p, job.req, ans)
	if job.recheck && c.members[job.peer].alive() {
		p.recheck = false // the answer is the member's current version
	}
	// Still behind the peer's tags (a stale tag, or a rejected answer):
	// try again, but not in a tight loop. Sweeps skip a peer while its sync
	// runs, so this is where tags that moved meanwhile are caught.
	owner := c.wantsReports()
	if m := c.members[job.peer]; m.alive() && ((m.defs.gen != 0 && !c.holds(p, m.defs, true)) ||
		(owner && m.report.gen != 0 && !c.holds(p, m.report, false))) {
		// News that came meanwhile goes at once, and so does a report
		// this node did not want when the sync began.
		if !p.urgent && (job.req.flags&wantReport != 0 || !owner) {
			c.backoff(p, now)
		}
		c.wait(p)
		p.routine = false
		return
	}
	p.backoff = 0
	if p.routine {
		p.pending, p.routine = false, false // this sync did the anti-entropy
	}
}

// backoff delays p's next sync. The backoff grows by half each time: a
// lossy path that fails a few times in a row (each exchange is three
// messages) is retried within a second, a dead peer within a period.
func (c *core) backoff(p *peer, now time.Time) {
	p.backoff = min(max(p.backoff*3/2, minBackoff), c.period)
	p.notBefore = now.Add(p.backoff)
}

// answer builds the reply to a peer's sync request and, when the
// requester's own versions are news to this node, schedules a sync back:
// that is the fast path by which a target's new report reaches its routing
// node.
func (c *core) answer(req syncRequest) syncAnswer {
	own := &c.own
	ans := syncAnswer{from: c.name, report: own.report.digest, defs: own.defs.digest}
	if req.flags&wantReport != 0 && req.heldReport != own.report.digest {
		ans.reportBody = own.report.body
	}
	if req.heldDefs != own.defs.digest {
		ans.defsBody = own.defs.body
	}
	if req.from == c.name {
		return ans
	}
	if c.members[req.from] == nil {
		c.listDirty = true // a joiner this node has not listed yet
	}
	p := c.peer(req.from)
	news := !c.holds(p, req.defs, true) || (c.wantsReports() && !c.holds(p, req.report, false))
	if news {
		c.schedule(req.from, true)
	}
	return ans
}

// recheck holds a live member's definitions as not known to be current
// until a sync that begins now answers: the member was silent and answers
// again, and may be a new process that serf has not told apart from the
// old one yet (its tags stay the old process's until the new one refutes
// them), so the definitions held are maybe those of a killed process.
func (c *core) recheck(name string) {
	if !c.members[name].alive() {
		return // forgotten when it went: its return is fetched afresh
	}
	c.peer(name).recheck = true
	c.schedule(name, true)
}
