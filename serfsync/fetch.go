package serfsync

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// peer is what this node holds of another node, and the scheduling of its
// syncs: at most one in flight per peer, so answers apply in order.
type peer struct {
	name        string
	report      *report         // owners only: its latest accepted report
	defs        *defsVersion    // its latest accepted definitions
	delivered   []vipa.Listener // rows last given to OnReport
	droppedDefs digest          // the last definitions version dropped whole
	countDrops  bool            // a new report: count its invalid lines once

	inflight  bool
	pending   bool
	urgent    bool // pending because someone has news: goes first
	routine   bool // pending only for the period's anti-entropy: goes last
	notBefore time.Time
	backoff   time.Duration
}

const (
	dialTimeout     = time.Second
	exchangeTimeout = 3 * time.Second
	minBackoff      = 50 * time.Millisecond
)

var errDropped = errors.New("dropped by fault injection")

func (a *Agent) peer(name string) *peer {
	p := a.peers[name]
	if p == nil {
		p = &peer{name: name}
		a.peers[name] = p
	}
	return p
}

// scheduleLocked asks for a sync with name; urgent ignores its backoff
// (the peer told us it has news, or we have news for it).
func (a *Agent) scheduleLocked(name string, urgent bool) {
	p := a.peer(name)
	p.pending, p.routine = true, false
	if urgent {
		p.urgent = true
		p.notBefore = time.Time{}
	}
}

// scheduleRoutineLocked asks for the period's anti-entropy sync with name.
func (a *Agent) scheduleRoutineLocked(name string) {
	if p := a.peer(name); !p.pending {
		p.pending, p.routine = true, true
	}
}

// routineFetchers is how many fetchers anti-entropy may fill, so news finds
// one free even when slow peers hold the routine syncs up.
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

// dispatchLocked hands due syncs to the fetchers class by class, never more
// than the fetchers can run, so news never queues behind a fetch the tags
// asked for, nor that behind the period's anti-entropy (a fleet's worth of
// syncs); it returns when the next waiting sync falls due (zero: none).
func (a *Agent) dispatchLocked(now time.Time) (next time.Time) {
	for class := range classes {
		for name, p := range a.peers {
			if !p.pending || p.inflight || p.class() != class {
				continue
			}
			if !a.members[name].alive() {
				p.pending, p.urgent, p.routine = false, false, false
				continue
			}
			if now.Before(p.notBefore) {
				if next.IsZero() || p.notBefore.Before(next) {
					next = p.notBefore
				}
				continue
			}
			if a.running >= fetchers || class == classRoutine && a.running >= routineFetchers {
				return next // a fetcher's finish kicks the worker
			}
			a.running++
			a.jobs <- name // never blocks: capacity is fetchers
			p.inflight, p.pending, p.urgent, p.routine = true, false, false, false
		}
	}
	return next
}

// fetcher runs syncs handed out by the worker.
func (a *Agent) fetcher() {
	defer a.wg.Done()
	for {
		select {
		case <-a.stop:
			return
		case name := <-a.jobs:
			a.syncPeer(name)
			a.kick()
		}
	}
}

// syncPeer runs one exchange with name and applies the answer.
func (a *Agent) syncPeer(name string) {
	a.mu.Lock()
	m, p := a.members[name], a.peer(name)
	if !m.alive() {
		p.inflight = false
		a.running--
		a.mu.Unlock()
		return
	}
	own := a.own.Load()
	req := syncRequest{from: a.cfg.NodeName, report: own.report.digest, defs: own.defs.digest}
	if len(a.owned) > 0 {
		req.flags |= wantReport
		if p.report != nil {
			req.heldReport = p.report.digest
		}
	}
	if p.defs != nil {
		req.heldDefs = p.defs.digest
	}
	addr := m.addr
	a.mu.Unlock()

	a.stats.inc("sync_out")
	ans, err := a.exchange(name, addr, req.encode())

	a.mu.Lock()
	defer a.mu.Unlock()
	p.inflight = false
	a.running--
	if a.peers[name] != p {
		return // forgotten meanwhile
	}
	if err != nil {
		a.stats.inc("fetch_retry")
		if ce := a.logger.Check(zap.DebugLevel, "sync failed; retrying"); ce != nil {
			ce.Write(zap.String("peer", name), zap.Error(err))
		}
		if !p.urgent { // the peer's news that came meanwhile goes at once
			a.backoffLocked(p)
		}
		p.pending, p.routine = a.members[name].alive(), false
		return
	}
	a.applyAnswerLocked(p, req, ans)
	// Still behind the peer's tags (a stale tag, or a rejected answer):
	// try again, but not in a tight loop. Sweeps skip a peer while its sync
	// runs, so this is where tags that moved meanwhile are caught.
	owner := len(a.owned) > 0
	if m := a.members[name]; m.alive() && ((m.defs.gen != 0 && !a.holdsLocked(p, m.defs, true)) ||
		(owner && m.report.gen != 0 && !a.holdsLocked(p, m.report, false))) {
		// News that came meanwhile goes at once, and so does a report
		// this node did not want when the sync began.
		if !p.urgent && (req.flags&wantReport != 0 || !owner) {
			a.backoffLocked(p)
		}
		p.pending, p.routine = true, false
		return
	}
	p.backoff = 0
	if p.routine {
		p.pending, p.routine = false, false // this sync did the anti-entropy
	}
}

// backoffLocked delays p's next sync. The backoff grows by half each time:
// a lossy path that fails a few times in a row (each exchange is three
// messages) is retried within a second, a dead peer within a period.
func (a *Agent) backoffLocked(p *peer) {
	p.backoff = min(max(p.backoff*3/2, minBackoff), a.cfg.reconcilePeriod())
	p.notBefore = time.Now().Add(p.backoff)
}

// exchange sends one sync request over the state channel and returns the
// decoded answer.
func (a *Agent) exchange(name string, addr netip.AddrPort, req []byte) (syncAnswer, error) {
	if h := a.cfg.hooks; h != nil && h.dropRequest != nil && h.dropRequest(name) {
		return syncAnswer{}, errDropped
	}
	conn, err := a.dial(name, addr)
	if err != nil {
		return syncAnswer{}, err
	}
	defer a.untrack(conn)
	_ = conn.SetDeadline(time.Now().Add(exchangeTimeout))
	br := bufio.NewReader(conn)
	nonceC, err := a.keys.clientHello(conn)
	if err != nil {
		return syncAnswer{}, err
	}
	nonceS, err := readServerHello(br)
	if err != nil {
		return syncAnswer{}, err
	}
	s, err := a.keys.clientSession(nonceC, nonceS)
	if err != nil {
		return syncAnswer{}, err
	}
	if err := writeFrame(conn, s.seal(req)); err != nil {
		return syncAnswer{}, err
	}
	frame, err := readFrame(br, maxAnswerFrame)
	if err != nil {
		return syncAnswer{}, err
	}
	p, err := s.open(frame)
	if err != nil {
		a.stats.inc("auth_fail")
		return syncAnswer{}, err
	}
	if h := a.cfg.hooks; h != nil && h.dropAnswer != nil && h.dropAnswer(name) {
		return syncAnswer{}, errDropped
	}
	ans, err := decodeSyncAnswer(p)
	if err != nil {
		a.stats.inc("drop_decode")
	}
	return ans, err
}

// dial opens a stream to a peer's gossip port through the transport, so
// the channel sees the network memberlist sees.
func (a *Agent) dial(name string, addr netip.AddrPort) (net.Conn, error) {
	conn, err := a.mux.NodeAwareTransport.DialAddressTimeout(memberlist.Address{Addr: addr.String(), Name: name}, dialTimeout)
	if err != nil {
		return nil, err
	}
	if !a.track(conn) {
		return nil, net.ErrClosed
	}
	return conn, nil
}

// track registers an open stream so Stop can close it; false when stopping.
func (a *Agent) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		_ = c.Close()
		return false
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *Agent) untrack(c net.Conn) {
	_ = c.Close()
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}
