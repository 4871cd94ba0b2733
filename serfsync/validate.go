package serfsync

import (
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-vipa/caddy-vipa/vipa"
)

// Validation happens in two places. A fetched body is accepted as the
// peer's new version only if its hash verifies, it decodes within bounds
// and its seq does not go back within its gen (a new gen replaces the old
// version whole: the process restarted). Then each line of an accepted
// report becomes a row only if this node owns its VIPA, the port is in the
// owner's definition, the sender is a candidate and Ready is in range; the
// report's address must be the sender's advertise address from its tags,
// and no other live member's (checkAddresses).
// Lines for VIPAs another node owns are not ours to judge and are skipped.

// applyAnswer applies a sync answer from p.
func (c *core) applyAnswer(p *peer, req syncRequest, ans syncAnswer) {
	if ans.from != p.name {
		c.stats.inc("drop_identity")
		return
	}
	if !c.members[p.name].alive() {
		return
	}
	c.applyDefs(p, ans.defs, ans.defsBody)
	if req.flags&wantReport != 0 {
		c.applyReport(p, ans.report, ans.reportBody)
	}
}

// versionCheck classifies version d against the held one: "" to go on,
// "same" when nothing is new, or a drop reason.
func versionCheck(held *digest, d digest) string {
	switch {
	case d.gen == 0:
		return "decode"
	case held == nil || held.gen != d.gen || d.seq > held.seq:
		return ""
	case d.seq < held.seq:
		return "seq"
	case d.hash != held.hash:
		return "hash"
	}
	return "same"
}

// admission is what admit decides about a peer's version.
type admission int

const (
	admitNone  admission = iota // nothing new, not sent, or dropped (counted)
	admitEmpty                  // the empty version, which carries no body
	admitBody                   // a new version whose body verified: decode it
)

// admit checks version d of a peer's body of kind against the held one and,
// when the body came along, its hash.
func (c *core) admit(held *digest, d digest, kind byte, body []byte) admission {
	switch r := versionCheck(held, d); r {
	case "":
	case "same":
		return admitNone
	default:
		c.stats.inc("drop_" + r)
		return admitNone
	}
	if len(body) == 0 {
		if d.hash == hashBody(kind, nil) {
			return admitEmpty
		}
		return admitNone // not sent: the peer thought we held it
	}
	if hashBody(kind, body) != d.hash {
		c.stats.inc("drop_hash")
		return admitNone
	}
	return admitBody
}

func (c *core) applyDefs(p *peer, d digest, body []byte) {
	var held *digest
	if p.defs != nil {
		held = &p.defs.digest
	}
	switch c.admit(held, d, kindDefs, body) {
	case admitEmpty:
		if p.defs.defines() {
			c.keepOrphans(p.defs.defs, nil, p.name)
			c.defsDirty = true
		}
		p.defs = &defsVersion{digest: d}
	case admitBody:
		defs, err := decodeDefs(body, p.name, func(def *vipa.Definition, err error) {
			c.stats.inc("drop_definition")
			c.logger.Warn("dropped a peer's definition", zap.String("node", p.name),
				zap.Stringer("vipa", def.VIPA), zap.Error(err))
		})
		if err != nil {
			c.stats.inc(dropReason(err))
			// Logged once per version: the peer offers it again every
			// reconcile period until it changes.
			if p.droppedDefs != d {
				p.droppedDefs = d
				c.logger.Warn("dropped a peer's definitions: every VIPA it routes is unknown here",
					zap.String("node", p.name), zap.String("reason", dropReason(err)), zap.Int("bytes", len(body)))
			}
			return
		}
		if p.defs != nil {
			c.keepOrphans(p.defs.defs, defs, p.name)
		}
		p.defs = &defsVersion{digest: d, defs: defs, body: body}
		c.defsDirty = true
		c.stats.inc("defs_applied")
	}
}

func (c *core) applyReport(p *peer, d digest, body []byte) {
	var held *digest
	if p.report != nil {
		held = &p.report.digest
	}
	switch c.admit(held, d, kindReport, body) {
	case admitEmpty:
		p.report = &report{digest: d}
		c.dirty[p.name] = true
	case admitBody:
		adv, lines, err := decodeReport(body)
		if err != nil {
			c.stats.inc(dropReason(err))
			return
		}
		p.report = &report{digest: d, adv: adv, lines: lines, body: body}
		p.countDrops = true
		c.dirty[p.name] = true
		c.stats.inc("report_applied")
	}
}

func dropReason(err error) string {
	if err == errSize {
		return "drop_size"
	}
	return "drop_decode"
}

// rows derives the rows of node's report for the VIPAs this node
// owns; count says to count the lines it drops (once per new version).
func (c *core) rows(node string, rep *report, count bool) []vipa.Listener {
	if rep == nil || len(rep.lines) == 0 || !c.wantsReports() {
		return nil
	}
	adv := c.adv
	if node != c.name {
		m := c.members[node]
		if m == nil || !m.advTag || !m.adv.IsValid() || m.adv != rep.adv {
			if count && c.reportTouchesOwned(rep) {
				c.stats.inc("drop_address")
			}
			return nil
		}
		if m.conflict {
			if count && c.reportTouchesOwned(rep) {
				c.stats.inc("drop_address_conflict")
			}
			return nil
		}
		adv = m.adv
	}
	drop := func(reason string) {
		if count {
			c.stats.inc("drop_" + reason)
		}
	}
	var rows []vipa.Listener
	for _, l := range rep.lines {
		def := c.defOf[l.VIPA]
		switch {
		case def == nil:
			drop("unknown_vipa")
			continue
		case def.RoutingNode != c.name && !c.standby[l.VIPA]:
			continue // another routing node's VIPA
		case !def.Ports.Contains(l.Port):
			drop("port")
			continue
		case !def.Candidate(node, adv):
			drop("not_candidate")
			continue
		case l.Ready < 1 || l.Ready > vipa.MaxReady:
			drop("ready")
			continue
		}
		rows = append(rows, vipa.Listener{VIPA: l.VIPA, Port: l.Port, Address: netip.AddrPortFrom(adv, l.Port), Ready: l.Ready, Conns: l.Conns, State: l.State, Weight: l.Weight})
	}
	return rows
}

func (c *core) reportTouchesOwned(rep *report) bool {
	return slices.ContainsFunc(rep.lines, func(l vipa.Listener) bool { return c.routedHere(l.VIPA) })
}
