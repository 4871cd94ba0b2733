package serfsync

import (
	"net/netip"
	"slices"

	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"
)

// memberInfo is what the worker keeps of one serf member.
type memberInfo struct {
	addr   netip.AddrPort // gossip address: where its state channel is
	adv    netip.Addr     // advertise address from its tags
	status serf.MemberStatus
	report digest // from its tags; zero when absent or malformed
	defs   digest
	advTag bool
	// conflict: another live member, or this node, advertises adv too;
	// neither is trusted for it (see checkAddressesLocked).
	conflict bool

	rawAdv, rawReport, rawDefs string // the tags parsed, to skip a re-parse
	epoch                      uint64 // the refresh that last listed it
}

func (m *memberInfo) alive() bool { return m != nil && m.status == serf.StatusAlive }

// sameAs reports whether serf's view of the member is what m was made from.
func (m *memberInfo) sameAs(sm *serf.Member, addr netip.AddrPort) bool {
	return m.status == sm.Status && m.addr == addr && m.rawAdv == sm.Tags[tagAdvertise] &&
		m.rawReport == sm.Tags[tagReport] && m.rawDefs == sm.Tags[tagDefs]
}

func newMemberInfo(sm *serf.Member, addr netip.AddrPort) *memberInfo {
	m := &memberInfo{addr: addr, status: sm.Status,
		rawAdv: sm.Tags[tagAdvertise], rawReport: sm.Tags[tagReport], rawDefs: sm.Tags[tagDefs]}
	if _, ok := sm.Tags[tagAdvertise]; ok {
		m.adv, _ = netip.ParseAddr(m.rawAdv)
		m.adv = m.adv.Unmap()
		m.advTag = true
	}
	m.report, _ = parseDigest(m.rawReport)
	m.defs, _ = parseDigest(m.rawDefs)
	return m
}

// memberUpdate is the latest a serf member event said of one member.
type memberUpdate struct {
	member serf.Member
	reaped bool
}

// queueMemberEvent keeps the members of a serf member event for the worker;
// only the latest word on each member counts.
func (a *Agent) queueMemberEvent(e serf.MemberEvent) {
	a.updMu.Lock()
	for _, m := range e.Members {
		a.updates[m.Name] = memberUpdate{member: m, reaped: e.Type == serf.EventMemberReap}
	}
	a.updMu.Unlock()
}

// takeMemberUpdates hands the worker the updates queued since last time.
func (a *Agent) takeMemberUpdates() map[string]memberUpdate {
	a.updMu.Lock()
	defer a.updMu.Unlock()
	if len(a.updates) == 0 {
		return nil
	}
	u := a.updates
	a.updates = map[string]memberUpdate{}
	return u
}

// applyMemberUpdatesLocked applies serf's events member by member, so a
// join storm costs each node work in proportion to the joiners, not to the
// fleet times the events. It returns the members gone.
func (a *Agent) applyMemberUpdatesLocked(us map[string]memberUpdate) (gone []string) {
	for name, u := range us {
		if name == a.cfg.NodeName {
			continue
		}
		if u.reaped {
			if a.members[name].alive() {
				gone = append(gone, name)
				a.forgetLocked(name)
				a.addrsDirty = true
			}
			delete(a.members, name)
			a.dropIdlePeerLocked(name)
			continue
		}
		if a.updateMemberLocked(&u.member) {
			gone = append(gone, name)
		}
		a.sweepMemberLocked(name)
	}
	a.checkAddressesLocked()
	return gone
}

// refreshMembersLocked takes serf's whole member list and returns the
// members that are gone since: failed, leaving, left or reaped. It runs at
// start, once a reconcile period, and when a node not yet listed syncs with
// this one; events update members one by one between.
func (a *Agent) refreshMembersLocked(ms []serf.Member) (gone []string) {
	a.epoch++
	for i := range ms {
		sm := &ms[i]
		if sm.Name == a.cfg.NodeName {
			continue
		}
		if a.updateMemberLocked(sm) {
			gone = append(gone, sm.Name)
		}
		a.members[sm.Name].epoch = a.epoch
	}
	for name, old := range a.members {
		if old.epoch != a.epoch {
			if old.alive() {
				gone = append(gone, name)
				a.forgetLocked(name)
				a.addrsDirty = true
			}
			delete(a.members, name)
		}
	}
	for name := range a.peers {
		a.dropIdlePeerLocked(name)
	}
	a.checkAddressesLocked()
	return gone
}

// updateMemberLocked takes serf's view of one member; unchanged members
// cost a compare, not a parse. It reports whether the member went from
// alive to not alive, and forgets it then.
func (a *Agent) updateMemberLocked(sm *serf.Member) (gone bool) {
	ip, _ := netip.AddrFromSlice(sm.Addr)
	addr := netip.AddrPortFrom(ip.Unmap(), sm.Port)
	old := a.members[sm.Name]
	m := old
	if m == nil || !m.sameAs(sm, addr) {
		m = newMemberInfo(sm, addr)
		if old != nil {
			m.epoch, m.conflict = old.epoch, old.conflict
		}
		if old == nil || old.adv != m.adv || old.alive() != m.alive() {
			a.addrsDirty = true
		}
		a.members[sm.Name] = m
	}
	if old.alive() && !m.alive() {
		a.forgetLocked(sm.Name)
		return true
	}
	return false
}

// dropIdlePeerLocked drops what is kept of a peer no longer listed, unless
// a sync with it is still running.
func (a *Agent) dropIdlePeerLocked(name string) {
	if p := a.peers[name]; p != nil && a.members[name] == nil && !p.inflight {
		delete(a.peers, name)
	}
}

// forgetLocked drops what this node holds of a gone member, so a return,
// with the same generation or a new one, is fetched and reported afresh.
func (a *Agent) forgetLocked(name string) {
	p := a.peers[name]
	if p == nil {
		return
	}
	if p.defs != nil {
		a.defsDirty = true
	}
	p.report, p.defs, p.delivered = nil, nil, nil
	p.pending, p.backoff = false, 0
	delete(a.dirty, name)
}

// sweepLocked compares every live member's tags with what this node holds
// and schedules a sync where it holds less.
func (a *Agent) sweepLocked() {
	for name := range a.members {
		a.sweepMemberLocked(name)
	}
}

// sweepMemberLocked schedules a sync with name if its tags announce more
// than this node holds. A sync under way compares the tags when it ends.
func (a *Agent) sweepMemberLocked(name string) {
	m := a.members[name]
	if !m.alive() {
		return
	}
	p := a.peer(name)
	if p.inflight {
		return
	}
	need := false
	if m.defs.gen != 0 {
		need = need || !a.holdsLocked(p, m.defs, true)
	}
	if len(a.owned) > 0 && m.report.gen != 0 {
		need = need || !a.holdsLocked(p, m.report, false)
	}
	if need {
		a.scheduleLocked(name, false)
	}
}

// holdsLocked reports whether p's held state covers version d, taking an
// announced empty state as known without a fetch.
func (a *Agent) holdsLocked(p *peer, d digest, defs bool) bool {
	if defs {
		if p.defs != nil && p.defs.covers(d) {
			return true
		}
		if d.hash == emptyDefsHash && (p.defs == nil || p.defs.gen == d.gen) {
			if p.defs != nil {
				a.defsDirty = true
			}
			p.defs = &defsVersion{digest: d}
			return true
		}
		return false
	}
	if p.report != nil && p.report.covers(d) {
		return true
	}
	if d.hash == emptyReportHash && (p.report == nil || p.report.gen == d.gen) {
		p.report = &report{digest: d}
		a.dirty[p.name] = true
		return true
	}
	return false
}

// checkAddressesLocked flags live members that advertise one address with
// another live member or with this node: a member could otherwise claim
// another's address and take its connections. Neither is trusted for the
// address: their report lines are dropped (address_conflict) until the
// conflict ends. Each conflict is logged once when it starts. It runs once
// per batch of member updates, and only when an address or a liveness
// changed.
func (a *Agent) checkAddressesLocked() {
	if !a.addrsDirty {
		return
	}
	a.addrsDirty = false
	claims := map[netip.Addr][]string{}
	for name, m := range a.members {
		if m.alive() && m.advTag && m.adv.IsValid() {
			claims[m.adv] = append(claims[m.adv], name)
		}
	}
	var started []netip.Addr
	for name, m := range a.members {
		c := m.alive() && m.advTag && m.adv.IsValid() && (len(claims[m.adv]) > 1 || m.adv == a.cfg.Advertise)
		if c == m.conflict {
			continue
		}
		m.conflict = c
		a.dirty[name] = true
		if p := a.peers[name]; p != nil && c {
			p.countDrops = true
		}
		if c && !slices.Contains(started, m.adv) {
			started = append(started, m.adv)
		}
	}
	for _, adv := range started {
		names := slices.Sorted(slices.Values(claims[adv]))
		if adv == a.cfg.Advertise {
			names = append(names, a.cfg.NodeName+" (this node)")
		}
		a.logger.Error("fleet members advertise one address: none of them is trusted for it until it is theirs alone",
			zap.String("address", adv.String()), zap.Strings("members", names))
	}
}
