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
// and no other live member's (checkAddressesLocked).
// Lines for VIPAs another node owns are not ours to judge and are skipped.

// applyAnswerLocked applies a sync answer from p.
func (a *Agent) applyAnswerLocked(p *peer, req syncRequest, ans syncAnswer) {
	if ans.from != p.name {
		a.stats.inc("drop_identity")
		return
	}
	if !a.members[p.name].alive() {
		return
	}
	a.applyDefsLocked(p, ans.defs, ans.defsBody)
	if req.flags&wantReport != 0 {
		a.applyReportLocked(p, ans.report, ans.reportBody)
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
func (a *Agent) admit(held *digest, d digest, kind byte, body []byte) admission {
	switch r := versionCheck(held, d); r {
	case "":
	case "same":
		return admitNone
	default:
		a.stats.inc("drop_" + r)
		return admitNone
	}
	if len(body) == 0 {
		if d.hash == hashBody(kind, nil) {
			return admitEmpty
		}
		return admitNone // not sent: the peer thought we held it
	}
	if hashBody(kind, body) != d.hash {
		a.stats.inc("drop_hash")
		return admitNone
	}
	return admitBody
}

func (a *Agent) applyDefsLocked(p *peer, d digest, body []byte) {
	var held *digest
	if p.defs != nil {
		held = &p.defs.digest
	}
	switch a.admit(held, d, kindDefs, body) {
	case admitEmpty:
		p.defs = &defsVersion{digest: d}
		a.defsDirty = true
	case admitBody:
		defs, err := decodeDefs(body, p.name, func(def *vipa.Definition, err error) {
			a.stats.inc("drop_definition")
			a.logger.Warn("dropped a peer's definition", zap.String("node", p.name),
				zap.Stringer("vipa", def.VIPA), zap.Error(err))
		})
		if err != nil {
			a.stats.inc(dropReason(err))
			// Logged once per version: the peer offers it again every
			// reconcile period until it changes.
			if p.droppedDefs != d {
				p.droppedDefs = d
				a.logger.Warn("dropped a peer's definitions: every VIPA it routes is unknown here",
					zap.String("node", p.name), zap.String("reason", dropReason(err)), zap.Int("bytes", len(body)))
			}
			return
		}
		p.defs = &defsVersion{digest: d, defs: defs, body: body}
		a.defsDirty = true
		a.stats.inc("defs_applied")
	}
}

func (a *Agent) applyReportLocked(p *peer, d digest, body []byte) {
	var held *digest
	if p.report != nil {
		held = &p.report.digest
	}
	switch a.admit(held, d, kindReport, body) {
	case admitEmpty:
		p.report = &report{digest: d}
		a.dirty[p.name] = true
	case admitBody:
		adv, lines, err := decodeReport(body)
		if err != nil {
			a.stats.inc(dropReason(err))
			return
		}
		p.report = &report{digest: d, adv: adv, lines: lines, body: body}
		p.countDrops = true
		a.dirty[p.name] = true
		a.stats.inc("report_applied")
	}
}

func dropReason(err error) string {
	if err == errSize {
		return "drop_size"
	}
	return "drop_decode"
}

// rowsLocked derives the rows of node's report for the VIPAs this node
// owns; count says to count the lines it drops (once per new version).
func (a *Agent) rowsLocked(node string, rep *report, count bool) []vipa.Listener {
	if rep == nil || len(rep.lines) == 0 || len(a.owned) == 0 {
		return nil
	}
	adv := a.cfg.Advertise
	if node != a.cfg.NodeName {
		m := a.members[node]
		if m == nil || !m.advTag || !m.adv.IsValid() || m.adv != rep.adv {
			if count && a.reportTouchesOwnedLocked(rep) {
				a.stats.inc("drop_address")
			}
			return nil
		}
		if m.conflict {
			if count && a.reportTouchesOwnedLocked(rep) {
				a.stats.inc("drop_address_conflict")
			}
			return nil
		}
		adv = m.adv
	}
	drop := func(reason string) {
		if count {
			a.stats.inc("drop_" + reason)
		}
	}
	var rows []vipa.Listener
	for _, l := range rep.lines {
		def := a.defOf[l.VIPA]
		switch {
		case def == nil:
			drop("unknown_vipa")
			continue
		case def.RoutingNode != a.cfg.NodeName:
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
		rows = append(rows, vipa.Listener{VIPA: l.VIPA, Port: l.Port, Address: netip.AddrPortFrom(adv, l.Port), Ready: l.Ready, Conns: l.Conns})
	}
	return rows
}

func (a *Agent) reportTouchesOwnedLocked(rep *report) bool {
	return slices.ContainsFunc(rep.lines, func(l vipa.Listener) bool { return a.owned[l.VIPA] != nil })
}
