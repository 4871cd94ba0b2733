package serfsync

import (
	"net/netip"

	"github.com/hashicorp/serf/serf"
)

// memberInfo is what the worker keeps of one serf member.
type memberInfo struct {
	addr   netip.AddrPort // gossip address: where its state channel is
	adv    netip.Addr     // advertise address from its tags
	status serf.MemberStatus
	report digest // from its tags; zero when absent or malformed
	defs   digest
	advTag bool

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

// refreshMembersLocked takes serf's member list and returns the members
// that are gone since: failed, leaving, left or reaped. It runs on every
// member event, so unchanged members cost a compare, not a parse.
func (a *Agent) refreshMembersLocked(ms []serf.Member) (gone []string) {
	a.epoch++
	for i := range ms {
		sm := &ms[i]
		if sm.Name == a.cfg.NodeName {
			continue
		}
		ip, _ := netip.AddrFromSlice(sm.Addr)
		addr := netip.AddrPortFrom(ip.Unmap(), sm.Port)
		old := a.members[sm.Name]
		m := old
		if m == nil || !m.sameAs(sm, addr) {
			m = newMemberInfo(sm, addr)
			a.members[sm.Name] = m
		}
		m.epoch = a.epoch
		if old.alive() && !m.alive() {
			gone = append(gone, sm.Name)
		}
	}
	for name, old := range a.members {
		if old.epoch != a.epoch {
			if old.alive() {
				gone = append(gone, name)
			}
			delete(a.members, name)
		}
	}
	for _, name := range gone {
		a.forgetLocked(name)
	}
	// Peers no longer listed and idle can go altogether.
	for name, p := range a.peers {
		if a.members[name] == nil && !p.inflight {
			delete(a.peers, name)
		}
	}
	return gone
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
	owner := len(a.owned) > 0
	for name, m := range a.members {
		if !m.alive() {
			continue
		}
		p := a.peer(name)
		need := false
		if m.defs.gen != 0 {
			need = need || !a.holdsLocked(p, m.defs, true)
		}
		if owner && m.report.gen != 0 {
			need = need || !a.holdsLocked(p, m.report, false)
		}
		if need {
			a.scheduleLocked(name, false)
		}
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
