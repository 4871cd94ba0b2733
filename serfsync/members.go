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
}

func (m *memberInfo) alive() bool { return m != nil && m.status == serf.StatusAlive }

// refreshMembersLocked takes serf's member list and returns the members
// that are gone since: failed, leaving, left or reaped.
func (a *Agent) refreshMembersLocked(ms []serf.Member) (gone []string) {
	seen := make(map[string]bool, len(ms))
	for _, sm := range ms {
		if sm.Name == a.cfg.NodeName {
			continue
		}
		seen[sm.Name] = true
		ip, _ := netip.AddrFromSlice(sm.Addr)
		m := &memberInfo{
			addr:   netip.AddrPortFrom(ip.Unmap(), sm.Port),
			status: sm.Status,
		}
		if v, ok := sm.Tags[tagAdvertise]; ok {
			m.adv, _ = netip.ParseAddr(v)
			m.adv = m.adv.Unmap()
			m.advTag = true
		}
		m.report, _ = tagDigest(sm.Tags, tagReport)
		m.defs, _ = tagDigest(sm.Tags, tagDefs)
		if a.members[sm.Name].alive() && !m.alive() {
			gone = append(gone, sm.Name)
		}
		a.members[sm.Name] = m
	}
	for name, old := range a.members {
		if !seen[name] {
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
		if !seen[name] && !p.inflight {
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
