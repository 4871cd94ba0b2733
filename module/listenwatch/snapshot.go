// Package listenwatch finds the TCP listening sockets of the local host, so a
// target node can report which application instances serve a distributed
// port. On Linux it reads the kernel's socket table through NETLINK_SOCK_DIAG,
// asking only for sockets in LISTEN state, and falls back to /proc/net/tcp{,6}.
// Where no socket table can be read, a Watcher probes: it connects to the
// addresses an application would be dialed at.
package listenwatch

import "net/netip"

// Snapshot counts TCP sockets in LISTEN state per local address:port. Two
// SO_REUSEPORT sockets bound to one address count 2. IPv4-mapped IPv6
// addresses are stored unmapped; addresses carry no zone.
type Snapshot map[netip.AddrPort]int

// Count returns how many listening sockets serve port for a node whose
// advertise address is adv: sockets bound to the wildcard (0.0.0.0 or ::) or to
// adv itself count; any other address, in particular the VIPA, never counts.
// Lookups are direct, so Count costs the same on a host with many listeners.
func (s Snapshot) Count(port uint16, adv netip.Addr) int {
	n := s[netip.AddrPortFrom(netip.IPv4Unspecified(), port)] +
		s[netip.AddrPortFrom(netip.IPv6Unspecified(), port)]
	if adv.IsValid() {
		adv = adv.Unmap().WithZone("")
		if !adv.IsUnspecified() {
			n += s[netip.AddrPortFrom(adv, port)]
		}
	}
	return n
}

// add records one listening socket, normalising the address the way Count
// looks it up.
func (s Snapshot) add(ap netip.AddrPort) {
	s[netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())]++
}
