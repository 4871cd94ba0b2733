package module

import "net/netip"

// probeAddrs lists where a probing listener watch connects: this node's
// advertise address on every port of the VIPAs it is a candidate target of,
// never a VIPA itself.
func (f *fleet) probeAddrs() []netip.AddrPort {
	f.mu.Lock()
	defer f.mu.Unlock()
	adv := f.cfg.advertise
	seen := make(map[uint16]bool)
	var out []netip.AddrPort
	for _, d := range f.known {
		if !d.Owner || !d.Candidate(f.cfg.node, adv) || d.VIPA == adv {
			continue
		}
		for _, p := range d.Ports.Ports() {
			if !seen[uint16(p)] {
				seen[uint16(p)] = true
				out = append(out, netip.AddrPortFrom(adv, uint16(p)))
			}
		}
	}
	return out
}
