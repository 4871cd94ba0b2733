package serfsync

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// tagVIPADyn lists the VIPAs a node can own besides those it routes: its
// rank for each (0: it defines the VIPA but does not route it now; 1-254:
// a backup routing node) and, after ">", the node it hands the VIPA to.
// Entries are sorted and comma-separated, e.g. "10.0.0.100=100,10.0.0.101=0>caddy-b".
const tagVIPADyn = "v"

// maxVIPADynTag bounds the tag: serf's 512 bytes hold the digests and the
// advertise address too.
const maxVIPADynTag = 320

// VIPADyn is what a member's tags say it can own.
type VIPADyn struct {
	Ranks map[netip.Addr]int    // 0: defines but does not route; 1-254: backup rank
	Moves map[netip.Addr]string // VIPAs it hands to the named node
}

// encodeVIPADyn writes the tag value; entries that do not fit are left out
// and returned.
func encodeVIPADyn(d VIPADyn) (string, []netip.Addr) {
	vs := make([]netip.Addr, 0, len(d.Ranks))
	for v := range d.Ranks {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, netip.Addr.Compare)
	var b strings.Builder
	var left []netip.Addr
	for _, v := range vs {
		e := v.String() + "=" + strconv.Itoa(d.Ranks[v])
		if to := d.Moves[v]; to != "" {
			e += ">" + to
		}
		if b.Len()+len(e)+1 > maxVIPADynTag {
			left = append(left, v)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e)
	}
	return b.String(), left
}

// parseVIPADyn reads a peer's tag; malformed entries are skipped.
func parseVIPADyn(s string) VIPADyn {
	d := VIPADyn{Ranks: map[netip.Addr]int{}, Moves: map[netip.Addr]string{}}
	if s == "" || len(s) > 512 {
		return d
	}
	for _, e := range strings.Split(s, ",") {
		vs, rest, ok := strings.Cut(e, "=")
		if !ok {
			continue
		}
		rs, to, _ := strings.Cut(rest, ">")
		v, err := vipa.ParseVIPA(vs)
		r, rerr := strconv.Atoi(rs)
		if err != nil || rerr != nil || r < 0 || r > vipa.MaxRank || (r > 0 && vipa.ValidateRank(r) != nil) {
			continue
		}
		if to != "" && vipa.ValidateNodeName(to) != nil {
			continue
		}
		d.Ranks[v] = r
		if to != "" {
			d.Moves[v] = to
		}
	}
	return d
}

// SetVIPADyn publishes what this node can own (see tagVIPADyn) and makes
// it a standby for those VIPAs: it takes the targets' reports for them
// while another node routes them (OnReport), so it routes from a current
// DPT the moment it takes one over. Targets send their reports to the
// standbys of each VIPA as they send them to its routing node.
func (a *Agent) SetVIPADyn(d VIPADyn) {
	tag, left := encodeVIPADyn(d)
	if len(left) > 0 {
		a.logger.Error("too many backup VIPAs for the serf tags; left out", zap.Int("left_out", len(left)))
	}
	a.mu.Lock()
	changed := a.core.setVIPADyn(tag, d, left)
	a.mu.Unlock()
	if changed {
		a.kick()
	}
}

// DefsKnown says whether this node holds the current definitions of the
// named live member, so what it routes is known here.
func (a *Agent) DefsKnown(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.core.defsKnown(name)
}

// Recheck holds the definitions of the named live member as not known to
// be current (DefsKnown is false) until a sync with it that begins now
// answers. Call it when a member this node took as gone before serf said
// so answers again: it may be a new process (killed and restarted before
// serf noticed), whose definitions serf's view still shows as the old
// one's.
func (a *Agent) Recheck(name string) {
	a.mu.Lock()
	a.core.recheck(name)
	a.mu.Unlock()
	a.kick()
}

// setVIPADyn installs this node's vipadyn tag and standby VIPAs; it
// reports whether they changed.
func (c *core) setVIPADyn(tag string, d VIPADyn, left []netip.Addr) bool {
	standby := make(map[netip.Addr]bool, len(d.Ranks))
	for v := range d.Ranks {
		if !slices.Contains(left, v) {
			standby[v] = true
		}
	}
	changed := tag != c.vipadynTag || len(standby) != len(c.standby)
	for v := range standby {
		changed = changed || !c.standby[v]
	}
	if !changed {
		return false
	}
	c.vipadynTag, c.standby = tag, standby
	c.tagsDirty, c.defsDirty = true, true
	c.dirty[c.name] = true
	for name := range c.peers {
		c.dirty[name] = true
	}
	c.sweep()
	return true
}

// wantsReports says whether this node takes targets' reports: it routes a
// VIPA or stands by for one.
func (c *core) wantsReports() bool {
	return len(c.owned) > 0 || len(c.standby) > 0
}

// routedHere says whether this node derives DPT rows for v.
func (c *core) routedHere(v netip.Addr) bool {
	return c.owned[v] != nil || c.standby[v]
}

// standbys lists the live members that stand by for v.
func (c *core) standbys(v netip.Addr) []string {
	var out []string
	for _, name := range c.memberNames() {
		if m := c.members[name]; m.alive() {
			if _, ok := m.vipadyn.Ranks[v]; ok {
				out = append(out, name)
			}
		}
	}
	return out
}

// defsKnown says whether this node holds the current definitions of the
// live member name.
func (c *core) defsKnown(name string) bool {
	m, p := c.members[name], c.peers[name]
	if !m.alive() || m.defs.gen == 0 {
		return false
	}
	return p != nil && !p.recheck && p.defs != nil && p.defs.covers(m.defs)
}
