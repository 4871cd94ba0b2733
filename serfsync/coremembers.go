package serfsync

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"
)

// memberView is serf's word on one member, as the shell hands it to the
// core: from a member event or from the whole member list.
type memberView struct {
	name   string
	addr   netip.AddrPort // gossip address: where its state channel is
	alive  bool           // serf's status is alive (not leaving, left, failed)
	tags   map[string]string
	reaped bool // serf forgot the member
}

// memberInfo is what the core keeps of one member.
type memberInfo struct {
	addr   netip.AddrPort
	adv    netip.Addr // advertise address from its tags
	live   bool
	report digest // from its tags; zero when absent or malformed
	defs   digest
	advTag bool
	// conflict: another live member, or this node, advertises adv too;
	// neither is trusted for it (see checkAddresses).
	conflict bool

	vipadyn VIPADyn // what it can own, from its tags

	rawAdv, rawReport, rawDefs, rawVIPADyn string // the tags parsed, to skip a re-parse
	epoch                                  uint64 // the refresh that last listed it
}

func (m *memberInfo) alive() bool { return m != nil && m.live }

// sameAs reports whether the view of the member is what m was made from.
func (m *memberInfo) sameAs(v *memberView) bool {
	return m.live == v.alive && m.addr == v.addr && m.rawAdv == v.tags[tagAdvertise] &&
		m.rawReport == v.tags[tagReport] && m.rawDefs == v.tags[tagDefs] && m.rawVIPADyn == v.tags[tagVIPADyn]
}

func newMemberInfo(v *memberView) *memberInfo {
	m := &memberInfo{addr: v.addr, live: v.alive,
		rawAdv: v.tags[tagAdvertise], rawReport: v.tags[tagReport], rawDefs: v.tags[tagDefs],
		rawVIPADyn: v.tags[tagVIPADyn]}
	m.vipadyn = parseVIPADyn(m.rawVIPADyn)
	if _, ok := v.tags[tagAdvertise]; ok {
		m.adv, _ = netip.ParseAddr(m.rawAdv)
		m.adv = m.adv.Unmap()
		m.advTag = true
	}
	m.report, _ = parseDigest(m.rawReport)
	m.defs, _ = parseDigest(m.rawDefs)
	return m
}

// membersChanged takes serf's events member by member (only the latest
// word on each), so a join storm costs each node work in proportion to the
// joiners, not to the fleet times the events.
func (c *core) membersChanged(vs []memberView) {
	for i := range vs {
		v := &vs[i]
		if v.name == c.name {
			continue
		}
		if v.reaped {
			c.removeMember(v.name)
			c.dropIdlePeer(v.name)
			continue
		}
		c.updateMember(v)
		c.sweepMember(v.name)
	}
	c.checkAddresses()
}

// membersListed takes serf's whole member list, read at now; members not
// in it are gone. The shell reads it when listDue says so: at start, once a
// reconcile period, and when a node not yet listed syncs with this one;
// events update members one by one between.
func (c *core) membersListed(vs []memberView, now time.Time) {
	c.listDirty, c.refreshed = false, now
	c.epoch++
	for i := range vs {
		v := &vs[i]
		if v.name == c.name {
			continue
		}
		c.updateMember(v)
		c.members[v.name].epoch = c.epoch
	}
	for _, name := range c.memberNames() {
		if c.members[name].epoch != c.epoch {
			c.removeMember(name)
		}
	}
	for name := range c.peers {
		c.dropIdlePeer(name)
	}
	c.checkAddresses()
	c.sweep()
}

// updateMember takes the view of one member; unchanged members cost a
// compare, not a parse. A member that went from alive to not alive is
// forgotten and listed as gone.
func (c *core) updateMember(v *memberView) {
	old := c.members[v.name]
	m := old
	if m == nil || !m.sameAs(v) {
		m = newMemberInfo(v)
		if old != nil {
			m.epoch, m.conflict = old.epoch, old.conflict
		} else {
			c.names = nil
		}
		if (old == nil && m.rawVIPADyn != "") || (old != nil && old.rawVIPADyn != m.rawVIPADyn) {
			c.defsDirty = true // orphaned definitions follow the standbys
		}
		c.members[v.name] = m
		c.claim(v.name, old, m)
	}
	if old.alive() && !m.alive() {
		c.forget(v.name)
		c.gone = append(c.gone, v.name)
	}
}

// removeMember forgets a member serf no longer lists; one that was alive
// is gone.
func (c *core) removeMember(name string) {
	old := c.members[name]
	if old == nil {
		return
	}
	if old.alive() {
		c.gone = append(c.gone, name)
		c.forget(name)
	}
	delete(c.members, name)
	c.names = nil
	c.claim(name, old, nil)
}

// dropIdlePeer drops what is kept of a peer no longer listed, unless a
// sync with it is still running.
func (c *core) dropIdlePeer(name string) {
	if p := c.peers[name]; p != nil && c.members[name] == nil && !p.inflight {
		delete(c.peers, name)
		delete(c.waiting, name)
	}
}

// memberNames lists the members' names, sorted, so what the core does in
// one round does not hang on a map's order.
func (c *core) memberNames() []string {
	if c.names == nil {
		c.names = slices.Sorted(maps.Keys(c.members))
	}
	return c.names
}

// forget drops what this node holds of a gone member, so a return, with
// the same generation or a new one, is fetched and reported afresh.
func (c *core) forget(name string) {
	p := c.peers[name]
	if p == nil {
		return
	}
	if p.defs.defines() {
		c.defsDirty = true
		for _, d := range p.defs.defs {
			if c.ownerOf[d.VIPA] == name {
				c.orphans[d.VIPA] = d
				delete(c.released, d.VIPA)
			}
		}
	}
	p.report, p.defs, p.delivered = nil, nil, nil
	p.pending, p.backoff, p.recheck = false, 0, false
	delete(c.dirty, name)
}

// sweep compares every live member's tags with what this node holds and
// schedules a sync where it holds less.
func (c *core) sweep() {
	for _, name := range c.memberNames() {
		c.sweepMember(name)
	}
}

// sweepMember schedules a sync with name if its tags announce more than
// this node holds. A sync under way compares the tags when it ends.
func (c *core) sweepMember(name string) {
	m := c.members[name]
	if !m.alive() {
		return
	}
	p := c.peer(name)
	if p.inflight {
		return
	}
	need := false
	if m.defs.gen != 0 {
		need = need || !c.holds(p, m.defs, true)
	}
	if c.wantsReports() && m.report.gen != 0 {
		need = need || !c.holds(p, m.report, false)
	}
	if need {
		c.schedule(name, false)
	}
}

// holds reports whether p's held state covers version d, taking an
// announced empty state as known without a fetch.
func (c *core) holds(p *peer, d digest, defs bool) bool {
	if defs {
		if p.defs != nil && p.defs.covers(d) {
			return true
		}
		if d.hash == emptyDefsHash && (p.defs == nil || p.defs.gen == d.gen) {
			if p.defs.defines() {
				c.keepOrphans(p.defs.defs, nil, p.name)
				c.defsDirty = true
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
		c.dirty[p.name] = true
		return true
	}
	return false
}

// claimOf is the address m claims: its advertise address while alive.
func claimOf(m *memberInfo) netip.Addr {
	if m.alive() && m.advTag && m.adv.IsValid() {
		return m.adv
	}
	return netip.Addr{}
}

// claim moves name's claim from what old claimed to what m claims (nil:
// the member is no more), for checkAddresses to judge the addresses
// touched. A member that claims nothing is in no conflict.
func (c *core) claim(name string, old, m *memberInfo) {
	was, is := claimOf(old), claimOf(m)
	if was == is {
		return
	}
	if was.IsValid() {
		c.claims[was] = slices.DeleteFunc(c.claims[was], func(n string) bool { return n == name })
		if len(c.claims[was]) == 0 {
			delete(c.claims, was)
		}
		c.touched[was] = true
	}
	if is.IsValid() {
		names := c.claims[is]
		i, _ := slices.BinarySearch(names, name)
		c.claims[is] = slices.Insert(names, i, name)
		c.touched[is] = true
	}
	if m != nil && !is.IsValid() && m.conflict {
		m.conflict = false
		c.dirty[name] = true
	}
}

// checkAddresses flags live members that advertise one address with
// another live member or with this node: a member could otherwise claim
// another's address and take its connections. Neither is trusted for the
// address: their report lines are dropped (address_conflict) until the
// conflict ends. Each conflict is logged once when it starts. It runs once
// per batch of member updates, over the addresses whose claims changed.
func (c *core) checkAddresses() {
	if len(c.touched) == 0 {
		return
	}
	touched := slices.SortedFunc(maps.Keys(c.touched), netip.Addr.Compare)
	clear(c.touched)
	for _, adv := range touched {
		names := c.claims[adv]
		conflict := len(names) > 1 || adv == c.adv
		started := false
		for _, name := range names {
			m := c.members[name]
			if m.conflict == conflict {
				continue
			}
			m.conflict = conflict
			c.dirty[name] = true
			if p := c.peers[name]; p != nil && conflict {
				p.countDrops = true
			}
			started = started || conflict
		}
		if started {
			names := slices.Clone(names)
			if adv == c.adv {
				names = append(names, c.name+" (this node)")
			}
			c.logger.Error("fleet members advertise one address: none of them is trusted for it until it is theirs alone",
				zap.String("address", adv.String()), zap.Strings("members", names))
		}
	}
}
