package module

import (
	"net/netip"

	"github.com/caddy-vipa/caddy-vipa/module/listenwatch"
	"github.com/caddy-vipa/caddy-vipa/module/tables"
	"github.com/caddy-vipa/caddy-vipa/serfsync"
)

// localReport lists this node's DPT rows: for every definition that names
// it as a candidate, each distributed port with at least one application
// listening on the wildcard or the advertise address (never the VIPA).
func localReport(s listenwatch.Snapshot, node string, adv netip.Addr, defs []serfsync.KnownDefinition) []tables.Row {
	var rows []tables.Row
	for _, d := range defs {
		if !d.Owner || !d.Candidate(node, adv) {
			continue
		}
		ready := make(map[uint16]int)
		for ap, n := range s {
			if serves(ap.Addr(), adv) && ap.Addr() != d.VIPA && d.Ports.Contains(ap.Port()) {
				ready[ap.Port()] += n
			}
		}
		for port, n := range ready {
			rows = append(rows, tables.Row{
				VIPA:    d.VIPA,
				Port:    port,
				Node:    node,
				Address: netip.AddrPortFrom(adv, port),
				Ready:   n,
				Weight:  1,
				State:   tables.Active,
			})
		}
	}
	return rows
}

// serves reports whether a socket bound to addr accepts connections dialed
// to adv: the same address, or a wildcard of its family (:: is dual-stack).
func serves(addr, adv netip.Addr) bool {
	switch {
	case addr == adv:
		return true
	case addr == netip.IPv6Unspecified():
		return true
	case addr == netip.IPv4Unspecified():
		return adv.Is4()
	}
	return false
}
